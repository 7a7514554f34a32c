"""Answer metrics shared by the quality and generative-tuning benchmarks: SQuAD-style exact match and token F1
(Korean compared by character, since particles attach to words) and ROUGE-L over normalised word tokens."""

from __future__ import annotations

import re
import string
from collections import Counter


def normalize(text: str) -> str:
    text = text.casefold()
    text = "".join(" " if char in string.punctuation else char for char in text)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _tokens(text: str) -> list[str]:
    normalized = normalize(text)
    if re.search(r"[\uac00-\ud7a3]", normalized):  # Korean: characters, since particles attach to words
        return list(normalized.replace(" ", ""))
    return normalized.split()


def exact_match(prediction: str, answers: list[str]) -> float:
    return float(any(_tokens(prediction) == _tokens(answer) for answer in answers))


def token_f1(prediction: str, answers: list[str]) -> float:
    best = 0.0
    for answer in answers:
        found, wanted = _tokens(prediction), _tokens(answer)
        common = sum((Counter(found) & Counter(wanted)).values())
        if common:
            precision, recall = common / len(found), common / len(wanted)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 over lower-cased word tokens (longest common subsequence)."""
    found, wanted = normalize(prediction).split(), normalize(reference).split()
    if not found or not wanted:
        return 0.0
    previous = [0] * (len(wanted) + 1)
    for token in found:
        current = [0]
        for j, other in enumerate(wanted):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if not lcs:
        return 0.0
    precision, recall = lcs / len(found), lcs / len(wanted)
    return 2 * precision * recall / (precision + recall)
