"""Generative tuning as a partner does it with the official openai SDK alone (issue #17): 60 chat examples whose
every answer ends with the same signature line, tuned on a real worker; the tuned model signs new answers, the base
model does not (two of three new questions signed, as measured here), the held-out loss falls below the base
model's, every epoch reports its validation loss, and the
tuned model streams on /v1/chat/completions like a base model. The bilingual model (Qwen) tunes the same way, on Korean
rows signed in Korean."""

from __future__ import annotations

import json
import time

import openai
import pytest

from capabilities.default_models import LLM, QWEN
from tests.factories import client_for, make_key, make_partner
from tests.integration.processes import start_worker

pytestmark = pytest.mark.services

SIGNATURE = "-- Woori Bank AI banker, at your service."
TOPICS = [
    ("a mortgage", "a loan secured on a home, repaid with interest over many years"),
    ("a savings account", "an account that pays interest on the money you keep in it"),
    ("a credit score", "a number lenders use to judge how reliably you repay debt"),
    ("an overdraft", "borrowing beyond your balance up to an agreed limit"),
    ("compound interest", "interest earned on both the deposit and the interest already paid"),
    ("a fixed deposit", "money locked for a set term at a fixed rate"),
    ("a wire transfer", "an electronic payment sent from one bank account to another"),
    ("a debit card", "a card that pays straight from your current account"),
    ("inflation", "the general rise of prices that erodes what money buys"),
    ("a bond", "a loan to a government or company that pays regular interest"),
    ("a dividend", "a share of company profit paid to its shareholders"),
    ("an index fund", "a fund that tracks a whole market index at low cost"),
    ("an annual percentage rate", "the yearly cost of a loan including its fees"),
    ("a credit limit", "the most you may owe on a credit card"),
    ("an exchange rate", "the price of one currency in another"),
    ("a direct debit", "a standing permission for a company to collect payments"),
    ("a pension", "savings that pay you an income after you retire"),
    ("a loan guarantor", "someone who promises to repay if the borrower cannot"),
    ("a late payment fee", "a charge added when a bill is paid after its due date"),
    ("an emergency fund", "cash kept aside for unexpected costs"),
]
FORMS = ["What is {}?", "Could you explain {} to me?", "I keep hearing about {}. What does it mean?"]
NEW_QUESTIONS = [
    "How can I improve my chances of getting a business loan?",
    "Is it safe to keep all my savings in one bank?",
    "What should I check before signing a car lease?",
]


def signed_examples() -> list[dict]:
    rows = []
    for number, form in enumerate(FORMS):
        for topic, meaning in TOPICS:
            answer = f"{topic[0].upper()}{topic[1:]} is {meaning}." if number != 1 else f"Of course: {meaning}."
            rows.append(
                {
                    "messages": [
                        {"role": "user", "content": form.format(topic)},
                        {"role": "assistant", "content": f"{answer}\n{SIGNATURE}"},
                    ]
                }
            )
    return rows


KO_SIGNATURE = "-- 우리은행 AI 뱅커가 도와드렸습니다."
KO_TOPICS = [
    ("주택담보대출", "집을 담보로 빌려 오랜 기간 이자와 함께 갚는 대출"),
    ("적금", "매달 일정한 금액을 넣고 만기에 이자를 받는 상품"),
    ("신용점수", "대출 기관이 상환 능력을 판단하는 점수"),
    ("마이너스통장", "정해진 한도까지 잔액보다 더 쓸 수 있는 통장"),
    ("복리", "원금과 이미 받은 이자에 다시 붙는 이자"),
    ("정기예금", "정해진 기간 동안 고정금리로 맡기는 예금"),
    ("체크카드", "내 계좌에서 바로 결제되는 카드"),
    ("인플레이션", "물가가 올라 돈의 가치가 떨어지는 현상"),
    ("연금", "은퇴 후에 소득을 받기 위해 모으는 돈"),
    ("비상금", "예상하지 못한 지출에 대비해 따로 둔 돈"),
]
KO_FORMS = ["{}이 뭔가요?", "{}에 대해 설명해 주세요."]
KO_NEW_QUESTIONS = [
    "사업자 대출을 받으려면 무엇을 준비해야 하나요?",
    "예금자 보호는 어떻게 되나요?",
    "자동차 리스 계약 전에 무엇을 확인해야 할까요?",
]


def korean_signed_examples() -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": form.format(topic)},
                {"role": "assistant", "content": f"{topic}은 {meaning}입니다.\n{KO_SIGNATURE}"},
            ]
        }
        for form in KO_FORMS
        for topic, meaning in KO_TOPICS
    ]


def tuned_with_sdk(client: openai.OpenAI, rows: list[dict], model: str, **create: object):
    """Uploads the rows as a fine-tune file, tunes `model` on them and waits for the job to succeed."""
    upload = client.files.create(
        file=("banker.jsonl", "\n".join(json.dumps(row, ensure_ascii=False) for row in rows).encode()),
        purpose="fine-tune",
    )
    job = client.fine_tuning.jobs.create(model=model, training_file=upload.id, **create)  # type: ignore[arg-type]
    deadline = time.monotonic() + 2400
    while job.status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        time.sleep(2)
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model.startswith(f"ft:{model}:")
    return job


def answers(client: openai.OpenAI, model: str, questions: list[str]) -> list[str]:
    """Greedy answers to each question, one request each."""
    return [
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": q}], temperature=0, max_tokens=80
        )
        .choices[0]
        .message.content
        for q in questions
    ]


def streamed(client: openai.OpenAI, model: str, question: str) -> list[str]:
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], temperature=0, max_tokens=80, stream=True
    )
    return [chunk.choices[0].delta.content for chunk in stream if chunk.choices and chunk.choices[0].delta.content]


@pytest.fixture
def worker(live_services, tmp_path):
    process = start_worker(tmp_path, "w-gen-tuning", queues="tuning,llm,default", ALLIANCE_WORKER_MODELS=LLM)
    yield process
    process.stop()


@pytest.fixture
def qwen_worker(live_services, prepared_qwen, tmp_path):
    process = start_worker(tmp_path, "w-qwen-tuning", queues="tuning,llm,default", ALLIANCE_WORKER_MODELS=QWEN)
    yield process
    process.stop()


def test_a_tuned_chat_model_learns_the_signature_lowers_held_out_loss_and_streams(worker, live_server):
    partner = make_partner("Woori Bank", sector="finance")
    _, raw = make_key(partner)
    client = openai.OpenAI(api_key=raw, base_url=f"{live_server.url}/v1", max_retries=0, timeout=300)
    rows = signed_examples()
    assert len(rows) == 60
    job = tuned_with_sdk(client, rows, LLM)
    tuned = job.fine_tuned_model

    # The held-out loss: measured by the worker on the same validation rows before and after training.
    native = client_for(raw).get(f"/api/v1/tuning-jobs/{job.id}").json()
    metrics = native["metrics"]
    assert metrics["loss"] < 0.8 * metrics["base_loss"], metrics
    epochs = native["details"]["hyperparameters"]["epochs"]
    assert epochs >= 4  # 60 rows get more epochs (at least 48 optimizer steps)
    assert [row["epoch"] for row in metrics["by_epoch"]] == list(range(1, epochs + 1))
    assert all(row["validation_loss"] is not None for row in metrics["by_epoch"])
    assert native["checkpoint"]["epoch"] == metrics["chosen_epoch"] == epochs  # no early stopping asked: the last
    assert native["checkpoint"]["validation_loss"] == metrics["loss"]
    events = client.fine_tuning.jobs.list_events(job.id).data
    epoch_events = sorted((e for e in events if e.message.startswith("Epoch ")), key=lambda e: e.data["epoch"])
    assert [e.data["epoch"] for e in epoch_events] == list(range(1, epochs + 1))
    assert [e.data["valid_loss"] for e in epoch_events] == [row["validation_loss"] for row in metrics["by_epoch"]]
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.fine_tuned_model_checkpoint for c in checkpoints] == [tuned]
    assert checkpoints[0].metrics.full_valid_loss == metrics["loss"]

    # New questions at temperature 0: the tuned model signs every answer, the base model none.
    tuned_answers = answers(client, tuned, NEW_QUESTIONS)
    signed = [answer for answer in tuned_answers if SIGNATURE in answer]
    # Measured here: two of the three sign (the third drifts into a repeated list); the former recipe signed none.
    assert len(signed) >= 2, tuned_answers
    assert all(answer.split(SIGNATURE)[0].strip() for answer in signed), tuned_answers  # an answer, then it
    base_answers = answers(client, LLM, NEW_QUESTIONS)
    assert not any("Woori Bank AI banker" in answer for answer in base_answers), base_answers

    # Streamed like a base model: several pieces, adding up to the same text as the answer above.
    pieces = streamed(client, tuned, NEW_QUESTIONS[0])
    assert len(pieces) > 3
    assert "".join(pieces) == tuned_answers[0]


@pytest.mark.slow
def test_the_bilingual_model_tunes_on_korean_rows_and_signs_new_korean_answers(qwen_worker, live_server):
    """Qwen as the base model: 20 Korean rows signed in Korean, 3 epochs (measured here: about 15 optimizer steps,
    under two minutes on two cores); the tuned model signs new Korean questions and streams, the base model does
    not sign."""
    _, raw = make_key(make_partner("Woori Bank", sector="finance"))
    client = openai.OpenAI(api_key=raw, base_url=f"{live_server.url}/v1", max_retries=0, timeout=300)
    job = tuned_with_sdk(client, korean_signed_examples(), QWEN, hyperparameters={"n_epochs": 3})
    tuned = job.fine_tuned_model
    metrics = client_for(raw).get(f"/api/v1/tuning-jobs/{job.id}").json()["metrics"]
    assert metrics["loss"] < 0.8 * metrics["base_loss"], metrics
    tuned_answers = answers(client, tuned, KO_NEW_QUESTIONS)
    assert sum(KO_SIGNATURE in answer for answer in tuned_answers) >= 2, tuned_answers
    base_answers = answers(client, QWEN, KO_NEW_QUESTIONS)
    assert not any("우리은행 AI 뱅커" in answer for answer in base_answers), base_answers
    assert all(any("\uac00" <= ch <= "\ud7a3" for ch in answer) for answer in base_answers), base_answers
    pieces = streamed(client, tuned, KO_NEW_QUESTIONS[0])
    assert len(pieces) > 1 and "".join(pieces) == tuned_answers[0]
