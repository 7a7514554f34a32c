"""Zero-shot text classification by a language model: each label scored by the model's likelihood of it as the
answer to a short instruction in the chat template, for texts MiniLM cannot read (Korean; see
capabilities.text._classifier_for).

A label's score is the mean log-probability of its tokens and of the end-of-turn token after them (so a label that
is a prefix of a longer answer is not favoured), softmaxed over the job's labels: one label, scores summing to 1,
the output shape of inference.backends.zero_shot. Every (job, label) pair is one row of a padded forward pass, rows
in chunks of about ROW_TOKENS tokens; only the label positions' logits are computed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from inference.backends.llm.engine import CausalLM, chat_prompt
from inference.errors import JobInputError

ROW_TOKENS = 4_096  # tokens per forward pass (rows x padded length), bounding activations on a CPU worker


def _prompt(lm: CausalLM, text: str, labels: list[str]) -> str:
    """One user turn: the text, the labels one a line, and the answer's form (chosen over a system turn and over a
    Korean instruction in trials with Qwen: the same or better labels on English and Korean examples)."""
    listed = "\n".join(f"- {label}" for label in labels)
    user = f'Text:\n"""\n{text}\n"""\n\nClassify the text into one of these labels:\n{listed}\n\n'
    user += "Answer with the label only."
    return chat_prompt(lm, [{"role": "user", "content": user}])


def _end_ids(lm: CausalLM) -> list[int]:
    """The token that closes the answer (the chat template's end of turn, the EOS of instruct models)."""
    eos = lm.tokenizer.eos_token_id
    return [eos] if lm.has_chat_template and eos is not None else []


def _rows(lm: CausalLM, inputs: list[dict[str, Any]]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, answer ids) for each job's labels in order."""
    tokenizer = lm.tokenizer
    end = _end_ids(lm)
    rows = []
    for item in inputs:
        prompt = tokenizer(_prompt(lm, item["text"], item["labels"]), add_special_tokens=False)["input_ids"]
        answers = [tokenizer(label, add_special_tokens=False)["input_ids"] + end for label in item["labels"]]
        longest = len(prompt) + max(len(answer) for answer in answers)
        if lm.window is not None and longest > lm.window:
            raise JobInputError(
                f"The text and labels are {longest} tokens; this model reads at most {lm.window}. Shorten the text."
            )
        rows += [(prompt, answer) for answer in answers]
    return rows


@torch.inference_mode()
def _mean_log_probs(lm: CausalLM, rows: list[tuple[list[int], list[int]]]) -> list[float]:
    """Each row's mean log-probability of its answer ids after its prompt ids. Rows are left-padded so that every
    answer ends at the last position: only the last (longest answer) positions' logits are computed."""
    pad = lm.tokenizer.pad_token_id
    sequences = [prompt + answer for prompt, answer in rows]
    width = max(len(sequence) for sequence in sequences)
    keep = max(len(answer) for _, answer in rows) + 1
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, width - len(sequence) :] = torch.tensor(sequence)
        mask[row, width - len(sequence) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = lm.model(
        input_ids=ids.to(lm.device),
        attention_mask=mask.to(lm.device),
        position_ids=positions.to(lm.device),
        logits_to_keep=keep,
    ).logits.float()
    log_probs = torch.log_softmax(logits, dim=-1)  # (rows, keep, vocab): position j predicts token width-keep+j+1
    means = []
    for row, (_, answer) in enumerate(rows):
        count = len(answer)
        predicted = log_probs[row, keep - 1 - count : keep - 1]  # the positions before each answer token
        target = torch.tensor(answer, device=predicted.device).unsqueeze(-1)
        means.append(float(predicted.gather(-1, target).mean()))
    return means


def _chunks(rows: list[tuple[list[int], list[int]]]) -> list[list[tuple[list[int], list[int]]]]:
    chunks: list[list[tuple[list[int], list[int]]]] = [[]]
    width = 0
    for row in rows:
        length = len(row[0]) + len(row[1])
        if chunks[-1] and max(width, length) * (len(chunks[-1]) + 1) > ROW_TOKENS:
            chunks.append([])
            width = 0
        chunks[-1].append(row)
        width = max(width, length)
    return chunks


def _softmax(values: list[float]) -> np.ndarray:
    logits = np.asarray(values, dtype=np.float64)
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def classify_by_likelihood(
    lm: CausalLM, inputs: list[dict[str, Any]], params: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One label per text with a score per label (summing to 1), as inference.backends.zero_shot does; multi_label
    and hypothesis_template are refused at submission for a language model (inference.services.submission)."""
    for item, options in zip(inputs, params, strict=True):
        if not item.get("labels"):
            raise JobInputError("`labels` are required: this model classifies zero-shot over the labels you give.")
        if options.get("multi_label"):
            raise JobInputError("multi_label is not supported by a language model; it picks one label.")
    rows = _rows(lm, inputs)
    means = [mean for chunk in _chunks(rows) for mean in _mean_log_probs(lm, chunk)]
    results = []
    start = 0
    for item in inputs:
        labels = item["labels"]
        probabilities = _softmax(means[start : start + len(labels)])
        start += len(labels)
        scores = {label: round(float(p), 4) for label, p in zip(labels, probabilities, strict=True)}
        results.append({"label": labels[int(np.argmax(probabilities))], "scores": scores})
    return results
