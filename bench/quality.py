"""Answer quality of every language model in the registry, side by side in one run, through the runners the workers
run (inference.backends.run_batch, in process, in each model's batch size).

Usage: .venv/bin/python bench/quality.py [--quick] [--split test|validation] [--models a,b] [--threads 1]
       [--log answers.jsonl]

Data (held out; prompts are tuned only on --split validation, never on the reported test split):
- Quoref extractive QA and XSum summarization from the `bigbench==1.0.0` sdist, downloaded once with
  `pip download --no-deps --no-binary :all:` into var/cache/bigbench/ and read with tarfile (never installed); the
  subsets are cached in var/cache/quality/. Quoref: one question per passage, passages shuffled with a fixed seed;
  the first 200 passages are the test split, the next 100 the validation split. XSum: articles of at most 500
  words (longer ones are summarized extractively by design), shuffled with a fixed seed; the first 100 are the test
  split, the next 30 the validation split.
- bench/data/ko_qa.json (34 Korean questions over Korean contexts) and bench/data/ko_dialogue.json (30 Korean
  customer messages), written for this benchmark.

Figures: QA exact match and token F1 (SQuAD normalisation; Korean answers compared without spaces or
punctuation); summarization ROUGE-L F1 (LCS of lower-cased word tokens, one reference) and guard_pass, the share of
articles whose summary is abstractive (first try or retry) rather than the extractive fallback; Korean dialogue:
mean share of Hangul letters, echo rate, loop rate, and ko_ok = the share of replies that are mostly Hangul and
neither echo nor loop (text.hangul_share, is_echo, is_looping); latency: p50 seconds per job (a batch's wall time
over its size) and completion tokens/s in dialogue. --quick uses 12 Quoref questions, 12 Korean questions, 4 XSum
articles and 6 Korean messages (64 new tokens a reply).

Defaults are chosen per capability by these figures: question answering by qa_f1, summarization by rougeL x
guard_pass, dialogue and text generation by ko_ok; a model within 0.02 of the best (0.05 for ko_ok) that is faster
wins on cost. The last line reports the question-answering default's figures:
`quality: qa_f1=... qa_em=... ko_qa_em=... rougeL=... guard_pass=... ko_ok=... default=<model>`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path
from statistics import median

from in_process import django_in_process
from text_metrics import exact_match, rouge_l, token_f1

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "cache"
SDIST = "bigbench-1.0.0.tar.gz"
QUOREF_TASK = (
    "bigbench-1.0.0/bigbench/benchmark_tasks/natural_instructions/subtask002_quoref_answer_generation/task.json"
)
XSUM_TASK = "bigbench-1.0.0/bigbench/benchmark_tasks/gem/xsum/task.json"
SEED = 2026
SIZES = {
    "full": {"quoref": 200, "ko_qa": 34, "xsum": 100, "ko_dialogue": 30},
    "quick": {"quoref": 12, "ko_qa": 12, "xsum": 4, "ko_dialogue": 6},
}
VALIDATION = {"quoref": 100, "xsum": 30}


# Data ---------------------------------------------------------------------------------------------------------------


def _sdist() -> Path:
    folder = CACHE / "bigbench"
    path = folder / SDIST
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "bigbench==1.0.0", "--no-deps", "--no-binary", ":all:", "-d",
             str(folder)],
            check=True,
        )  # fmt: skip
    return path


def _task(member: str) -> list[dict]:
    with tarfile.open(_sdist()) as archive:
        handle = archive.extractfile(member)
        assert handle is not None, member
        return json.load(handle)["examples"]


def _first(target: str | list[str]) -> str:
    return target if isinstance(target, str) else target[0]


def _order(key: str) -> str:
    return hashlib.sha256(f"{SEED}:{key}".encode()).hexdigest()


def datasets() -> dict[str, dict[str, list[dict]]]:
    """{"quoref": {"test": [...], "validation": [...]}, "xsum": {...}}, cached in var/cache/quality/."""
    cached = CACHE / "quality" / "subsets.json"
    if cached.exists():
        return json.loads(cached.read_text())
    passages: dict[str, list[dict]] = {}
    for example in _task(QUOREF_TASK):
        body, _, question = example["input"].rpartition("\nQuestion:")
        context = body.removeprefix("Passage:").strip()
        answers = [target.strip().removesuffix(".").strip() for target in example["target"]]
        passages.setdefault(context, []).append({"context": context, "question": question.strip(), "answers": answers})
    chosen = []
    for context in sorted(passages, key=_order):
        questions = passages[context]
        chosen.append(questions[int(_order(context + "q"), 16) % len(questions)])
    articles = [
        {"text": example["input"].strip(), "reference": _first(example["target"]).strip()}
        for example in _task(XSUM_TASK)
        if len(example["input"].split()) <= 500
    ]
    articles.sort(key=lambda article: _order(article["text"]))
    test_q, test_x = SIZES["full"]["quoref"], SIZES["full"]["xsum"]
    subsets = {
        "quoref": {"test": chosen[:test_q], "validation": chosen[test_q : test_q + VALIDATION["quoref"]]},
        "xsum": {"test": articles[:test_x], "validation": articles[test_x : test_x + VALIDATION["xsum"]]},
    }
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(subsets, ensure_ascii=False))
    return subsets


def _bench_data(name: str) -> dict:
    return json.loads((ROOT / "bench" / "data" / name).read_text())


# Running the capabilities -------------------------------------------------------------------------------------------


class Timer:
    def __init__(self) -> None:
        self.per_job: list[float] = []

    def run(self, capability: str, model: str, inputs: list[dict], params: list[dict], batch: int) -> list[dict]:
        from inference.backends import run_batch

        outputs = []
        for start in range(0, len(inputs), batch):
            chunk = slice(start, start + batch)
            began = time.perf_counter()
            outputs += run_batch(capability, model, inputs[chunk], params[chunk])
            seconds = time.perf_counter() - began
            self.per_job += [seconds / len(inputs[chunk])] * len(inputs[chunk])
        return outputs


def measure(model: str, data: dict, sizes: dict, log) -> dict:
    from capabilities.language import hangul_share
    from inference.backends import get_model
    from inference.backends.llm.text import is_echo, is_looping
    from inference.registry import get_model_spec

    batch = get_model_spec(model).batch_size
    get_model(model)
    timer = Timer()
    figures: dict = {"model": model}

    questions = data["quoref"][: sizes["quoref"]]
    answers = timer.run("question_answering", model, [{"question": q["question"], "context": q["context"]} for q in
                        questions], [{}] * len(questions), batch)  # fmt: skip
    figures["qa_em"] = _mean(exact_match(a["answer"], q["answers"]) for a, q in zip(answers, questions, strict=True))
    f1s = [token_f1(a["answer"], q["answers"]) for a, q in zip(answers, questions, strict=True)]
    figures["qa_f1"] = _mean(f1s)
    right = [a["score"] for a, f1 in zip(answers, f1s, strict=True) if f1 >= 0.5]
    wrong = [a["score"] for a, f1 in zip(answers, f1s, strict=True) if f1 < 0.5]
    figures["qa_score_right"], figures["qa_score_wrong"] = _mean(right), _mean(wrong)
    log({"model": model, "quoref": [[q["question"], q["answers"], a["answer"]] for q, a in zip(questions, answers,
        strict=True)]})  # fmt: skip

    korean = _bench_data("ko_qa.json")["items"][: sizes["ko_qa"]]
    answers = timer.run("question_answering", model, [{"question": q["question"], "context": q["context"]} for q in
                        korean], [{}] * len(korean), batch)  # fmt: skip
    figures["ko_qa_em"] = _mean(exact_match(a["answer"], q["answers"]) for a, q in zip(answers, korean, strict=True))
    figures["ko_qa_f1"] = _mean(token_f1(a["answer"], q["answers"]) for a, q in zip(answers, korean, strict=True))
    log({"model": model, "ko_qa": [[q["question"], q["answers"], a["answer"]] for q, a in zip(korean, answers,
        strict=True)]})  # fmt: skip

    articles = data["xsum"][: sizes["xsum"]]
    summaries = timer.run("summarization", model, [{"text": a["text"]} for a in articles],
                          [{"max_sentences": 1, "mode": "abstractive"}] * len(articles), batch)  # fmt: skip
    figures["rougeL"] = _mean(rouge_l(s["summary"], a["reference"]) for s, a in zip(summaries, articles, strict=True))
    methods = Counter(s["method"] for s in summaries)
    figures["guard_pass"] = (methods["abstractive"] + methods["abstractive_retry"]) / len(summaries)
    figures["guard_retry_pass"] = methods["abstractive_retry"] / len(summaries)
    log({"model": model, "xsum": [[s["method"], s["summary"]] for s in summaries]})

    messages = _bench_data("ko_dialogue.json")["messages"][: sizes["ko_dialogue"]]
    began, jobs_before = time.perf_counter(), len(timer.per_job)
    replies = timer.run("dialogue", model, [{"messages": [{"role": "user", "content": m}]} for m in messages],
                        [{"max_new_tokens": 64, "temperature": 0.7, "seed": 7}] * len(messages), batch)  # fmt: skip
    seconds = time.perf_counter() - began
    assert len(timer.per_job) - jobs_before == len(messages)
    texts = [r["message"]["content"] for r in replies]
    echoes = [is_echo(text, message) for text, message in zip(texts, messages, strict=True)]
    loops = [is_looping(text) for text in texts]
    shares = [hangul_share(text) for text in texts]
    figures["ko_hangul"] = _mean(shares)
    figures["ko_echo"] = _mean(echoes)
    figures["ko_loop"] = _mean(loops)
    figures["ko_ok"] = _mean(
        share >= 0.5 and not echo and not loop for share, echo, loop in zip(shares, echoes, loops, strict=True)
    )
    figures["tokens_per_s"] = sum(r["tokens"]["completion"] for r in replies) / seconds
    figures["p50_s_per_job"] = median(timer.per_job)
    log({"model": model, "ko_dialogue": [[m, t] for m, t in zip(messages, texts, strict=True)]})
    return {key: round(value, 4) if isinstance(value, float) else value for key, value in figures.items()}


def _mean(values) -> float:
    values = [float(value) for value in values]
    return sum(values) / len(values) if values else 0.0


def choose(results: list[dict]) -> dict[str, str]:
    """Each capability's default: the best model by its figure, or a faster one within the margin."""

    def pick(figure, margin: float) -> str:
        best = max(figure(r) for r in results)
        close = [r for r in results if figure(r) >= best - margin]
        return min(close, key=lambda r: r["p50_s_per_job"])["model"]

    dialogue = pick(lambda r: r["ko_ok"], 0.05)
    return {
        "question_answering": pick(lambda r: r["qa_f1"], 0.02),
        "summarization": pick(lambda r: r["rougeL"] * r["guard_pass"], 0.02),
        "dialogue": dialogue,
        "text_generation": dialogue,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--split", choices=["test", "validation"], default="test")
    parser.add_argument("--models", help="comma-separated; default: every LLM in the registry")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the cores are shared)")
    parser.add_argument("--log", type=Path, help="write every answer, summary and reply here (JSON lines)")
    args = parser.parse_args()
    django_in_process(args.threads)
    from inference.registry import model_specs

    sizes = dict(SIZES["quick" if args.quick else "full"])
    subsets = datasets()
    data = {name: subsets[name][args.split] for name in ("quoref", "xsum")}
    if args.split == "validation":
        sizes = {**sizes, "quoref": min(sizes["quoref"] * 2, len(data["quoref"]))}
    llms = [spec.name for spec in model_specs().values() if spec.family == "llm"]
    models = args.models.split(",") if args.models else llms
    log_file = args.log.open("w") if args.log else None

    def log(record: dict) -> None:
        if log_file:
            log_file.write(json.dumps(record, ensure_ascii=False) + "\n")
            log_file.flush()

    started = time.perf_counter()
    results = []
    for model in models:
        began = time.perf_counter()
        figures = measure(model, data, sizes, log)
        figures["wall_s"] = round(time.perf_counter() - began, 1)
        results.append(figures)
        print(json.dumps(figures), flush=True)
    columns = ["qa_f1", "qa_em", "ko_qa_em", "ko_qa_f1", "rougeL", "guard_pass", "ko_hangul", "ko_echo", "ko_loop",
               "ko_ok", "p50_s_per_job", "tokens_per_s", "wall_s"]  # fmt: skip
    print(f"{args.split} split, {'quick' if args.quick else 'full'}: {sizes}")
    print("| figure | " + " | ".join(r["model"] for r in results) + " |")
    print("|---|" + "---|" * len(results))
    for column in columns:
        print(f"| {column} | " + " | ".join(str(r[column]) for r in results) + " |")
    defaults = choose(results)
    print("defaults: " + ", ".join(f"{capability}={model}" for capability, model in defaults.items()))
    if len(results) > 1:
        by_name = {r["model"]: r for r in results}
        first, second = results[0], results[1]
        print(f"ratios {second['model']} / {first['model']}: qa_f1 x{_ratio(second, first, 'qa_f1')}, "
              f"p50 x{_ratio(second, first, 'p50_s_per_job')}")  # fmt: skip
    else:
        by_name = {results[0]["model"]: results[0]}
    chosen = by_name[defaults["question_answering"]]
    print(f"total wall {time.perf_counter() - started:.0f} s")
    print(
        f"quality: qa_f1={chosen['qa_f1']} qa_em={chosen['qa_em']} ko_qa_em={chosen['ko_qa_em']} "
        f"rougeL={by_name[defaults['summarization']]['rougeL']} "
        f"guard_pass={by_name[defaults['summarization']]['guard_pass']} "
        f"ko_ok={by_name[defaults['dialogue']]['ko_ok']} default={defaults['question_answering']}"
    )


def _ratio(a: dict, b: dict, key: str) -> str:
    return f"{a[key] / b[key]:.2f}" if b[key] else "inf"


if __name__ == "__main__":
    main()
