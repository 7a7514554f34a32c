"""Zero-shot text classification by a language model, for texts MiniLM cannot read (Korean; see
capabilities.text._classifier_for): each label is put to the model as a yes/no question about the text, and the
answers' log-odds, calibrated, are compared across the labels.

A label's raw score is log P(yes) - log P(no) for the question `Does the label "<label>" describe this text? Answer
yes or no.` after the text (the first tokens of "yes" and "no", at the answer's first position). A small model says yes
to some labels whatever the text (Qwen2.5-0.5B leaned to `confused` and `satisfied`), so each label's score for
content-free texts ("N/A", "", "[MASK]"; contextual calibration, Zhao et al. 2021) is subtracted: what is left is
what this text adds. The calibrated scores, softmaxed over the job's labels, are one label and scores summing to 1,
the output shape of inference.backends.zero_shot.

Chosen on the validation rows of bench/data/ko_feelings.json (32 Korean messages, 4 feelings), Qwen: this 0.625;
yes/no without calibration 0.500; each label's mean log-probability as the answer to a question listing them all
(the former method) 0.438, calibrated 0.562; a system turn or a Korean instruction did not help; counting "Yes" and
"No" as well 0.594. SmolLM2-135M answers these questions below chance and serves no classification (the registry).
Test figures in bench/classification_models.py and the README.

Every (job, label) question is one row of a padded forward pass, rows in chunks of about ROW_TOKENS tokens; only
the last position's logits are computed. The content-free scores of a label set are kept per model (they depend on
nothing else).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from inference.backends.llm.engine import CausalLM, chat_prompt
from inference.errors import JobInputError

ROW_TOKENS = 4_096  # tokens per forward pass (rows x padded length), bounding activations on a CPU worker
CONTENT_FREE = ("N/A", "", "[MASK]")
_PRIORS_KEPT = 256  # label sets whose content-free scores a model keeps

_priors: OrderedDict[tuple[int, tuple[str, ...]], np.ndarray] = OrderedDict()
_priors_lock = threading.Lock()


def _question(lm: CausalLM, text: str, label: str) -> str:
    user = f'Text:\n"""\n{text}\n"""\n\nDoes the label "{label}" describe this text? Answer yes or no.'
    return chat_prompt(lm, [{"role": "user", "content": user}])


def _first_tokens(lm: CausalLM, words: tuple[str, ...]) -> list[int]:
    ids = {lm.tokenizer(word, add_special_tokens=False)["input_ids"][0] for word in words}
    return sorted(ids)


def _rows(lm: CausalLM, texts: list[str], labels: list[str]) -> list[list[int]]:
    tokenizer = lm.tokenizer
    rows = [
        tokenizer(_question(lm, text, label), add_special_tokens=False)["input_ids"]
        for text in texts
        for label in labels
    ]
    longest = max(len(row) for row in rows)
    if lm.window is not None and longest > lm.window:
        raise JobInputError(
            f"The text and labels are {longest} tokens; this model reads at most {lm.window}. Shorten the text."
        )
    return rows


@torch.inference_mode()
def _log_odds(lm: CausalLM, rows: list[list[int]]) -> list[float]:
    """Each row's log P(yes) - log P(no) at the position after it (rows left-padded so that every row ends at the
    last position, the only one whose logits are computed)."""
    yes, no = _first_tokens(lm, ("yes",)), _first_tokens(lm, ("no",))
    pad = lm.tokenizer.pad_token_id
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, width - len(row) :] = torch.tensor(row)
        mask[index, width - len(row) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = (
        lm.model(
            input_ids=ids.to(lm.device),
            attention_mask=mask.to(lm.device),
            position_ids=positions.to(lm.device),
            logits_to_keep=1,
        )
        .logits[:, -1]
        .float()
    )
    log_probs = torch.log_softmax(logits, dim=-1)
    odds = torch.logsumexp(log_probs[:, yes], dim=-1) - torch.logsumexp(log_probs[:, no], dim=-1)
    return odds.tolist()


def _scored(lm: CausalLM, rows: list[list[int]]) -> list[float]:
    chunks: list[list[list[int]]] = [[]]
    width = 0
    for row in rows:
        if chunks[-1] and max(width, len(row)) * (len(chunks[-1]) + 1) > ROW_TOKENS:
            chunks.append([])
            width = 0
        chunks[-1].append(row)
        width = max(width, len(row))
    return [odds for chunk in chunks for odds in _log_odds(lm, chunk)]


def _prior(lm: CausalLM, labels: list[str]) -> np.ndarray:
    """Each label's mean log-odds over the content-free texts: what the model says of the label whatever the text."""
    key = (id(lm), tuple(labels))
    with _priors_lock:
        if key in _priors:
            _priors.move_to_end(key)
            return _priors[key]
    odds = np.asarray(_scored(lm, _rows(lm, list(CONTENT_FREE), labels))).reshape(len(CONTENT_FREE), len(labels))
    prior = odds.mean(axis=0)
    with _priors_lock:
        _priors[key] = prior
        while len(_priors) > _PRIORS_KEPT:
            _priors.popitem(last=False)
    return prior


def _softmax(values: np.ndarray) -> np.ndarray:
    weights = np.exp(values - values.max())
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
    rows = [row for item in inputs for row in _rows(lm, [item["text"]], item["labels"])]
    odds = _scored(lm, rows)
    results = []
    start = 0
    for item in inputs:
        labels = item["labels"]
        calibrated = np.asarray(odds[start : start + len(labels)]) - _prior(lm, labels)
        start += len(labels)
        probabilities = _softmax(calibrated)
        scores = {label: round(float(p), 4) for label, p in zip(labels, probabilities, strict=True)}
        results.append({"label": labels[int(np.argmax(probabilities))], "scores": scores})
    return results
