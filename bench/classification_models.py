"""Zero-shot text classification on each model that serves it, side by side in one run, through the runners the
workers run (inference.backends.run_batch, in process): the label each gives the Korean customer message MiniLM
misreads, an accuracy over a handful of English and Korean examples, and the p50 seconds per job.

Usage: .venv/bin/python bench/classification_models.py [--threads 1] [--repeats 3]

Examples (written for this benchmark, not tuned on): four customer messages per language over feeling labels, and
four English requests over kind labels. A job's latency is a batch's wall time over its size (each model in its
registry batch size, after one warm-up batch). The last line: `classification: <model>_ko=<label> ... ` with each
model's accuracy and seconds per job.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from in_process import django_in_process

ROOT = Path(__file__).resolve().parent.parent
FEELINGS = ["satisfied", "confused", "worried", "frustrated"]
KINDS = ["complaint", "praise", "question"]
ANGRY_KO = "인터넷이 이틀째 끊겼는데 고객센터에서 아무도 다시 전화를 주지 않아요. 정말 화가 납니다."
EXAMPLES: list[tuple[str, list[str], str]] = [
    (ANGRY_KO, FEELINGS, "frustrated"),
    ("정말 감사합니다! 직원분이 친절하게 도와주셔서 문제가 바로 해결됐어요.", FEELINGS, "satisfied"),
    ("다음 달 요금이 왜 두 배로 나올지 모르겠어요. 설명서를 읽어도 이해가 안 돼요.", FEELINGS, "confused"),
    ("내일 수술인데 보험 처리가 아직 안 됐어요. 혹시 문제가 생길까 봐 걱정돼요.", FEELINGS, "worried"),
    ("The new app is great, it solved my problem in two minutes. Thank you!", FEELINGS, "satisfied"),
    ("I waited on hold for an hour and then the call dropped. This is ridiculous.", FEELINGS, "frustrated"),
    ("What time does the store open on Sundays?", KINDS, "question"),
    ("I have called three times and nobody fixed the double charge on my bill.", KINDS, "complaint"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the cores are shared)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    django_in_process(args.threads)
    from inference.backends import get_model, run_batch
    from inference.registry import model_specs

    inputs = [{"text": text, "labels": labels} for text, labels, _ in EXAMPLES]
    figures: list[str] = []
    for spec in model_specs().values():
        if "text_classification" not in spec.capabilities:
            continue
        get_model(spec.name)
        size = spec.batch_size
        batches = [inputs[start : start + size] for start in range(0, len(inputs), size)]
        run_batch("text_classification", spec.name, batches[0], [{}] * len(batches[0]))  # warm-up
        per_job: list[float] = []
        outputs: list[dict] = []
        for repeat in range(args.repeats):
            for batch in batches:
                started = time.perf_counter()
                result = run_batch("text_classification", spec.name, batch, [{}] * len(batch))
                per_job.append((time.perf_counter() - started) / len(batch))
                outputs += result if repeat == 0 else []
        labels = [output["label"] for output in outputs]
        accuracy = sum(label == want for label, (_, _, want) in zip(labels, EXAMPLES, strict=True)) / len(EXAMPLES)
        seconds = statistics.median(per_job)
        print(f"{spec.name}: labels={labels} accuracy={accuracy:.2f} p50={seconds:.3f}s/job (batch {size})")
        figures += [f"{spec.name}_ko={labels[0]}", f"{spec.name}_acc={accuracy:.2f}", f"{spec.name}_s={seconds:.3f}"]
    print("classification: " + " ".join(figures))


if __name__ == "__main__":
    main()
