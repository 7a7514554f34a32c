"""Generative tuning measured: LoRA on the registry's two language models (SmolLM2-135M-Instruct and
Qwen2.5-Coder-0.5B-Instruct) against each untuned model and prompt tuning, on a held-out finance-domain task with a
clear target style (an AI banker's call note), Korean and English.

Usage: .venv/bin/python bench/tuning_generation.py [--quick] [--models smollm2,qwen] [--threads N] [--rouge-rows N]

Data: bench/data/finance_notes_{train,test}.jsonl (written by this script when missing, deterministic): a customer's
message about one of 14 banking products in one of 12 situations, phrased in one of 4 ways, in English or Korean,
answered in a fixed three-part style ("Summary: ... Recommendation: ... Next step: ..." / "요약: ... 권장: ...
다음 단계: ..."). The 400 training and 120 test pairs are disjoint (product, situation, language) combinations, so
every test message is a combination never seen in training.

Methods, each trained by inference.backends.tuning.train (the platform's code) on the same rows, per base model:
- untuned: the base model, with its chat template, as served;
- LoRA, the platform's default generation recipe (rank 8 on every linear projection);
- LoRA rank 1 on q_proj/v_proj (SmolLM2's full run only): 57,600 parameters, exactly prompt tuning's 100 virtual
  tokens x 576;
- prompt tuning, 100 virtual tokens (57,600 parameters on SmolLM2, 89,600 on Qwen), lr 3e-2.
Reported per method: held-out loss and perplexity on the answer tokens (the chat template's context masked), ROUGE-L
(F1 over words, Korean and English alike) of greedy answers to the first --rouge-rows test messages, trainable
parameters and share, minutes per epoch on this machine's threads.

`--quick` (416 s on two idle cores): 96 training rows (Qwen: the first 48) and 24 test rows, 1 epoch,
8 ROUGE rows, without the rank-1 LoRA. Last line: `tuning_generation: ... lora_loss=... base_loss=...
prompt_tuning_loss=... lora_rouge_l=... qwen_lora_loss=... qwen_base_loss=... ...` (SmolLM2's keys unprefixed,
Qwen's prefixed `qwen_`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from peft import PeftModel
from text_metrics import rouge_l
from transformers import AutoModelForCausalLM, AutoTokenizer

from inference.backends.llm.engine import chat_prompt, generate, load_causal_lm
from inference.backends.llm.qwen import prepare_qwen
from inference.backends.llm.smollm2 import prepare_smollm2
from inference.backends.tuning import TrainingRequest, default_hyperparameters, train
from inference.backends.tuning.generation import render, validation_loss
from inference.backends.tuning.pool import AdapterPool

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parent.parent

# (English name, Korean name, English advice, Korean advice, English next step, Korean next step)
PRODUCTS = [
    (
        "a fixed deposit",
        "정기예금",
        "lock the money for twelve months at the fixed rate",
        "12개월 고정금리로 예치하세요",
        "book a deposit in the app",
        "앱에서 예금을 개설하세요",
    ),
    (
        "a savings account",
        "적금",
        "set up a monthly automatic transfer",
        "매달 자동이체를 설정하세요",
        "choose the transfer day",
        "이체일을 정하세요",
    ),
    (
        "a mortgage",
        "주택담보대출",
        "compare fixed and variable rates before applying",
        "신청 전에 고정금리와 변동금리를 비교하세요",
        "bring proof of income to a branch",
        "소득증빙을 지참하고 지점을 방문하세요",
    ),
    (
        "a personal loan",
        "신용대출",
        "borrow only what the monthly budget can repay",
        "월 예산으로 상환 가능한 금액만 빌리세요",
        "check the limit online",
        "온라인으로 한도를 조회하세요",
    ),
    (
        "a credit card",
        "신용카드",
        "keep the balance under a third of the limit",
        "사용액을 한도의 3분의 1 이하로 유지하세요",
        "turn on spending alerts",
        "사용 알림을 켜세요",
    ),
    (
        "an overdraft",
        "마이너스통장",
        "treat it as a short-term buffer only",
        "단기 비상자금으로만 쓰세요",
        "review the interest charged last month",
        "지난달 이자를 확인하세요",
    ),
    (
        "a foreign currency account",
        "외화예금",
        "convert in several steps to spread the exchange rate risk",
        "환율 위험을 나누도록 여러 번에 걸쳐 환전하세요",
        "set a target exchange rate alert",
        "목표 환율 알림을 설정하세요",
    ),
    (
        "an index fund",
        "인덱스펀드",
        "invest a fixed amount every month for the long term",
        "장기적으로 매달 일정 금액을 투자하세요",
        "complete the investor profile questionnaire",
        "투자성향 설문을 완료하세요",
    ),
    (
        "a pension savings plan",
        "연금저축",
        "use the yearly tax credit limit",
        "연간 세액공제 한도를 활용하세요",
        "check this year's remaining limit",
        "올해 남은 한도를 확인하세요",
    ),
    (
        "a car loan",
        "자동차대출",
        "keep the term shorter than the car's expected life",
        "대출 기간을 차량 사용 기간보다 짧게 하세요",
        "get a quote with the dealer's invoice",
        "딜러 견적서로 금리를 조회하세요",
    ),
    (
        "a business account",
        "사업자통장",
        "keep business and personal money apart",
        "사업 자금과 개인 자금을 분리하세요",
        "bring the business registration certificate",
        "사업자등록증을 지참하세요",
    ),
    (
        "a wire transfer abroad",
        "해외송금",
        "check the fee and the receiving bank's code first",
        "수수료와 수취 은행 코드를 먼저 확인하세요",
        "register the recipient in the app",
        "앱에서 수취인을 등록하세요",
    ),
    (
        "a housing subscription account",
        "주택청약통장",
        "pay in every month to build the record",
        "매달 납입해 실적을 쌓으세요",
        "check the monthly payment count",
        "납입 회차를 확인하세요",
    ),
    (
        "a debit card",
        "체크카드",
        "use it for daily spending to stay within the balance",
        "잔액 안에서 쓰도록 일상 지출에 사용하세요",
        "link it to the salary account",
        "급여통장과 연결하세요",
    ),
]
# (English situation, Korean situation, English summary, Korean summary)
SITUATIONS = [
    (
        "just started my first job",
        "첫 직장에 막 입사했어요",
        "a new earner starting to plan",
        "첫 소득으로 계획을 시작하는 고객",
    ),
    ("am getting married next year", "내년에 결혼해요", "a customer preparing for marriage", "결혼을 준비하는 고객"),
    (
        "just had a baby",
        "아이가 막 태어났어요",
        "a new parent reviewing the family budget",
        "가계 예산을 점검하는 새 부모",
    ),
    (
        "lost my job last month",
        "지난달 실직했어요",
        "a customer between jobs who needs stability",
        "안정이 필요한 구직 중인 고객",
    ),
    ("am retiring in two years", "2년 후 은퇴해요", "a customer close to retirement", "은퇴를 앞둔 고객"),
    ("run a small cafe", "작은 카페를 운영해요", "a small business owner", "소상공인 고객"),
    ("am moving to another city", "다른 도시로 이사해요", "a customer about to move home", "이사를 앞둔 고객"),
    (
        "have some money saved from a bonus",
        "보너스로 모은 돈이 있어요",
        "a customer with spare savings",
        "여유 자금이 있는 고객",
    ),
    (
        "am a student working part time",
        "아르바이트하는 대학생이에요",
        "a student with a small income",
        "소득이 적은 학생 고객",
    ),
    ("want to buy my first home", "첫 집을 사고 싶어요", "a first-time home buyer", "첫 주택 구매를 준비하는 고객"),
    (
        "send money to my parents abroad",
        "해외에 계신 부모님께 송금해요",
        "a customer supporting family abroad",
        "해외 가족을 돕는 고객",
    ),
    (
        "have too many card bills",
        "카드 청구서가 너무 많아요",
        "a customer under debt pressure",
        "부채 부담이 있는 고객",
    ),
]
FORMS_EN = [
    "Hello, I {situation}. Should I get {product}?",
    "I {situation} and I'm thinking about {product}. What do you suggest?",
    "Quick question: I {situation}. Is {product} a good idea for me?",
    "Hi there. I {situation}, so can you tell me how to use {product}?",
]
FORMS_KO = [
    "안녕하세요, {situation}. {product} 가입해도 될까요?",
    "{situation}. {product} 생각 중인데 어떻게 하면 좋을까요?",
    "질문이 있어요. {situation}. 저한테 {product} 괜찮을까요?",
    "{situation}. {product} 어떻게 활용하면 좋을지 알려주세요.",
]


def note(product: tuple, situation: tuple, korean: bool, form: int) -> dict:
    name_en, name_ko, advice_en, advice_ko, step_en, step_ko = product
    sit_en, sit_ko, summary_en, summary_ko = situation
    if korean:
        question = FORMS_KO[form].format(situation=sit_ko, product=name_ko)
        answer = f"요약: {summary_ko}의 {name_ko} 문의. 권장: {advice_ko}. 다음 단계: {step_ko}."
    else:
        question = FORMS_EN[form].format(situation=sit_en, product=name_en)
        answer = f"Summary: {summary_en} asking about {name_en}. Recommendation: {advice_en}. Next step: {step_en}."
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def write_data() -> None:
    """400 training and 120 test notes: the 336 (product, situation, language) combinations are split 276 / 60, and
    each gets two of its four phrasings, so no test combination is ever seen in training."""
    rng = random.Random(17)
    combos = [(p, s, k) for p in PRODUCTS for s in SITUATIONS for k in (False, True)]
    rng.shuffle(combos)
    rows = [[note(*combo, form) for form in sorted(rng.sample(range(4), 2))] for combo in combos]
    test = [row for pair in rows[:60] for row in pair]
    train = [row for pair in rows[60:] for row in pair]
    rng.shuffle(train)
    DATA.mkdir(exist_ok=True)
    for name, part in (("train", train[:400]), ("test", test)):
        (DATA / f"finance_notes_{name}.jsonl").write_text(
            "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in part)
        )


def read(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / f"finance_notes_{name}.jsonl").read_text().splitlines() if line]


def held_out_loss(base: Path, adapter: Path | None, test: list[dict]) -> float:
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    examples = [render(tokenizer, "chat", row, 256) for row in test]
    return validation_loss(model, examples, int(tokenizer.pad_token_id or tokenizer.eos_token_id))  # type: ignore[arg-type]


def rouge(base: Path, adapter: Path | None, rows: list[dict], pool: AdapterPool) -> float:
    inputs = [{"messages": row["messages"][:-1]} for row in rows]
    params = [{"temperature": 0.0, "max_new_tokens": 64}] * len(rows)
    if adapter is None:
        lm = load_causal_lm(base, "cpu", "float32")
        prompts = [chat_prompt(lm, item["messages"]) for item in inputs]
        texts = [g.text.strip() for g in generate(lm, prompts, params, add_special_tokens=False)]
    else:
        outputs = pool.generate(base, adapter, str(adapter), inputs, params, chat=True)
        texts = [output["message"]["content"] for output in outputs]
    scores = [rouge_l(text, row["messages"][-1]["content"]) for text, row in zip(texts, rows, strict=True)]
    return sum(scores) / len(scores)


# The base models measured: the name --models takes, the registry's model, its prepare hook, the prefix of its keys on
# the last line (SmolLM2, the default base model, keeps the unprefixed keys), and its methods.
BASES = {
    "smollm2": ("smollm2-135m-instruct", prepare_smollm2, ""),
    "qwen": ("qwen2.5-coder-0.5b-instruct", prepare_qwen, "qwen_"),
}
QUICK_QWEN_ROWS = 48  # --quick: a Qwen row takes ~1.5x a SmolLM2 row's time, and its prompt tuning ~2.5x


def methods_for(name: str, quick: bool) -> dict[str, tuple[str, dict]]:
    """The default LoRA and prompt tuning with 100 virtual tokens for every base; on SmolLM2's full run also LoRA r=1
    on q/v, exactly prompt tuning's parameter count there (Qwen's is ~4x slower per step, so it is left out)."""
    methods = {
        "lora": ("default", {}),
        "lora_r1_qv": (
            "lora",
            {"r": 1, "lora_alpha": 2, "target_modules": ["q_proj", "v_proj"], "learning_rate": 2e-3},
        ),
        "prompt_tuning": ("prompt_tuning", {"num_virtual_tokens": 100, "learning_rate": 3e-2}),
    }
    if quick or name != "smollm2":
        methods.pop("lora_r1_qv")
    return methods


def measure(
    name: str, base: Path, train_rows: list[dict], test_rows: list[dict], rouge_rows: list[dict], quick: bool
) -> dict[str, dict]:
    """The untuned base and each method trained on the same rows, by the platform's own code."""
    pool = AdapterPool("cpu")
    results: dict[str, dict] = {}
    loss = held_out_loss(base, None, test_rows)
    results["base"] = {"loss": loss, "rouge_l": rouge(base, None, rouge_rows, pool), "params": 0, "min_per_epoch": 0}
    print(
        f"{name} untuned: held-out loss {loss:.3f} (perplexity {math.exp(loss):.1f}), ROUGE-L "
        f"{results['base']['rouge_l']:.3f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as scratch:
        for method_name, (method, extra) in methods_for(name, quick).items():
            h = {**default_hyperparameters("chat", method, rows=len(train_rows)), **extra}
            if quick:
                h["epochs"] = 1
            output = Path(scratch) / method_name
            began = time.monotonic()
            result = train(
                TrainingRequest("chat", base, train_rows, [], method, h, output), lambda p: None, lambda: False
            )
            minutes = (time.monotonic() - began) / 60 / int(h["epochs"])
            loss = held_out_loss(base, output, test_rows)
            score = rouge(base, output, rouge_rows, pool)
            share = result.trainable_parameters / result.total_parameters
            results[method_name] = {
                "loss": loss,
                "rouge_l": score,
                "params": result.trainable_parameters,
                "share": share,
                "min_per_epoch": minutes,
                "epochs": int(h["epochs"]),
            }
            print(
                f"{name} {method_name}: {result.trainable_parameters:,} trainable ({share:.3%}), {h['epochs']} "
                f"epochs at {minutes:.2f} min/epoch; held-out loss {loss:.3f} (perplexity {math.exp(loss):.1f}), "
                f"ROUGE-L {score:.3f}",
                flush=True,
            )
    return results


def summary_fields(results: dict[str, dict], prefix: str) -> dict[str, object]:
    base_r, lora, prompt = results["base"], results["lora"], results["prompt_tuning"]
    fields: dict[str, object] = {
        "lora_params": lora["params"],
        "lora_share": f"{lora['share']:.4f}",
        "prompt_tuning_params": prompt["params"],
        "base_loss": f"{base_r['loss']:.3f}",
        "lora_loss": f"{lora['loss']:.3f}",
        "prompt_tuning_loss": f"{prompt['loss']:.3f}",
        "base_ppl": f"{math.exp(base_r['loss']):.2f}",
        "lora_ppl": f"{math.exp(lora['loss']):.2f}",
        "base_rouge_l": f"{base_r['rouge_l']:.3f}",
        "lora_rouge_l": f"{lora['rouge_l']:.3f}",
        "prompt_tuning_rouge_l": f"{prompt['rouge_l']:.3f}",
        "lora_min_per_epoch": f"{lora['min_per_epoch']:.2f}",
        "loss_ratio_vs_base": f"{lora['loss'] / base_r['loss']:.3f}",
    }
    if "lora_r1_qv" in results:
        fields["lora_r1_params"] = results["lora_r1_qv"]["params"]
        fields["lora_r1_loss"] = f"{results['lora_r1_qv']['loss']:.3f}"
        fields["lora_r1_rouge_l"] = f"{results['lora_r1_qv']['rouge_l']:.3f}"
    return {prefix + key: value for key, value in fields.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="smollm2,qwen", help=f"comma-separated, of: {', '.join(BASES)}")
    parser.add_argument("--rouge-rows", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None, help="training rows (default 400, quick 96)")
    parser.add_argument("--test-rows", type=int, default=None, help="test rows (default 120, quick 24)")
    args = parser.parse_args()
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in names if name not in BASES]
    if unknown or not names:
        parser.error(f"--models: unknown {unknown}; choose from {', '.join(BASES)}")
    torch.set_num_threads(args.threads)
    if not (DATA / "finance_notes_train.jsonl").exists():
        write_data()
    train_rows, test_rows = read("train"), read("test")
    train_rows = train_rows[: args.rows or (96 if args.quick else 400)]
    test_rows = test_rows[: args.test_rows or (24 if args.quick else 120)]
    rouge_rows = test_rows[: args.rouge_rows or (8 if args.quick else 40)]
    models_dir = Path(os.environ.get("ALLIANCE_MODELS_DIR", ROOT / "var" / "models"))
    print(
        f"{len(train_rows)} training rows, {len(test_rows)} test rows (Korean and English), ROUGE-L on "
        f"{len(rouge_rows)}; base models: {', '.join(names)}",
        flush=True,
    )
    started = time.monotonic()
    fields: dict[str, object] = {}
    for name in names:
        registry_name, prepare, prefix = BASES[name]
        base = prepare(models_dir / registry_name)
        rows = train_rows[:QUICK_QWEN_ROWS] if args.quick and name == "qwen" and not args.rows else train_rows
        fields.update(summary_fields(measure(name, base, rows, test_rows, rouge_rows, args.quick), prefix))
    fields["minutes"] = f"{(time.monotonic() - started) / 60:.1f}"
    print("tuning_generation: " + " ".join(f"{key}={value}" for key, value in fields.items()))


if __name__ == "__main__":
    main()
