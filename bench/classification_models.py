"""Zero-shot text classification on each model that serves it, side by side in one run, through the runners the
workers run (inference.backends.run_batch, in process): accuracy and macro-F1 on Korean customer messages labelled
by feeling, accuracy on a few English examples, the label each model gives the angry Korean message of the
counselling showcase, and the p50 seconds per job.

Usage: .venv/bin/python bench/classification_models.py [--split test|validation] [--threads 1] [--repeats 1]

Data: bench/data/ko_feelings.json, 64 Korean customer messages (telecom, banking, insurance, hospitals, schools,
shopping) written for the platform, 16 per feeling (satisfied, confused, worried, frustrated), half of them
validation rows and half test rows. Choices about how the language models classify (the prompt, the calibration in
inference.backends.llm.classify) are made on the validation rows; figures are reported on the test rows (the
default). The English examples (six, over feeling and kind labels) are a sanity check, not a benchmark.

A job's latency is a batch's wall time over its size (each model in its registry batch size, after one warm-up
batch). Last line: `classification: <model>_ko_acc=... <model>_ko_f1=... <model>_en_acc=... <model>_angry=<label>
<model>_s=...` for each model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path

from in_process import django_in_process

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "ko_feelings.json"
KINDS = ["complaint", "praise", "question"]
ANGRY_KO = "인터넷이 이틀째 끊겼는데 고객센터에서 아무도 다시 전화를 주지 않아요. 정말 화가 납니다."
ENGLISH: list[tuple[str, str, list[str] | None]] = [  # (text, label, labels: None for the feelings)
    ("The new app is great, it solved my problem in two minutes. Thank you!", "satisfied", None),
    ("I waited on hold for an hour and then the call dropped. This is ridiculous.", "frustrated", None),
    ("My surgery is tomorrow and the insurance has not approved it yet. What if it fails?", "worried", None),
    ("The bill says two plans and I cannot tell which one I am paying for.", "confused", None),
    ("What time does the store open on Sundays?", "question", KINDS),
    ("I have called three times and nobody fixed the double charge on my bill.", "complaint", KINDS),
]


def macro_f1(truth: list[str], predicted: list[str], labels: list[str]) -> float:
    scores = []
    for label in labels:
        tp = sum(t == label and p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != label and p == label for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label and p != label for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", choices=["test", "validation"], default="test")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the cores are shared)")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes over the examples")
    args = parser.parse_args()
    django_in_process(args.threads)
    from inference.backends import get_model, run_batch
    from inference.registry import model_specs

    document = json.loads(DATA.read_text())
    feelings: list[str] = document["labels"]
    korean = [item for item in document["items"] if item["split"] == args.split]
    inputs = [{"text": item["text"], "labels": feelings} for item in korean]
    inputs += [{"text": text, "labels": labels or feelings} for text, _, labels in ENGLISH]
    truth = [item["label"] for item in korean] + [label for _, label, _ in ENGLISH]
    if not any(item["text"] == ANGRY_KO for item in korean):
        inputs.append({"text": ANGRY_KO, "labels": feelings})
    print(f"{len(korean)} Korean {args.split} rows ({dict(Counter(item['label'] for item in korean))}), "
          f"{len(ENGLISH)} English examples", flush=True)  # fmt: skip
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
        ko_predicted, en_predicted = labels[: len(korean)], labels[len(korean) : len(korean) + len(ENGLISH)]
        ko_truth, en_truth = truth[: len(korean)], truth[len(korean) :]
        ko_acc = sum(p == t for p, t in zip(ko_predicted, ko_truth, strict=True)) / len(korean)
        ko_f1 = macro_f1(ko_truth, ko_predicted, feelings)
        en_acc = sum(p == t for p, t in zip(en_predicted, en_truth, strict=True)) / len(ENGLISH)
        angry = labels[[item["text"] for item in inputs].index(ANGRY_KO)]
        seconds = statistics.median(per_job)
        print(f"{spec.name}: Korean accuracy {ko_acc:.3f} macro-F1 {ko_f1:.3f} (predicted "
              f"{dict(Counter(ko_predicted))}), English {en_acc:.2f}, the angry message: {angry}, "
              f"p50 {seconds:.3f} s/job (batch {size})", flush=True)  # fmt: skip
        figures += [
            f"{spec.name}_ko_acc={ko_acc:.3f}",
            f"{spec.name}_ko_f1={ko_f1:.3f}",
            f"{spec.name}_en_acc={en_acc:.2f}",
            f"{spec.name}_angry={angry}",
            f"{spec.name}_s={seconds:.3f}",
        ]
    print("classification: " + " ".join(figures))


if __name__ == "__main__":
    main()
