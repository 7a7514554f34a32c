"""Text helpers behind the LLM capabilities: sentences, the invented-fact guard, extractive ranking, answer spans.

Nothing here generates text; inference.backends.llm.runners run the language model and call these helpers. The
embedder passed in is a sentence_transformers.SentenceTransformer (all-MiniLM-L6-v2 by default).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sentence_transformers import SentenceTransformer


def _word_list(words: str) -> frozenset[str]:
    return frozenset(words.split())


_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f]+[\"'\u201d\u2019)\]]*\s+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_OPENING_QUOTES = "\"'\u201c\u2018"
_QUOTES = _OPENING_QUOTES + "\u201d\u2019`"
_ABBREVIATIONS = _word_list(
    "mr mrs ms dr prof sr jr st mt inc ltd co corp dept univ vs etc e.g i.e u.s u.k no fig al approx "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[^\W\d_]+(?:[-'\u2019][^\W\d_]+)*")
_TOKEN = re.compile(r"\w+(?:[-'\u2019.,]\w+)*")
_SENTENCE_OPENERS = _word_list(
    "a an the this that these those it its they their there he she his her we our i in on at after before during "
    "as also however overall meanwhile additionally furthermore moreover then finally both all some many most while "
    "when with for to by and but so because although according summary"
)
_STOPWORDS = _SENTENCE_OPENERS | _word_list(
    "is are was were be been being am do does did has have had of from into about or not no what which who whom "
    "whose why how where will would can could should may might must answer text context question"
)
_NUMBER_WORDS = _word_list("hundred thousand million billion trillion percent per cent %")
_MONTHS = _word_list(
    "january february march april june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)
_NUMERIC_QUESTION = re.compile(
    r"^\s*(when|what (year|date|time|day|month)|which (year|date|month)|how (many|much|long|old))\b"
)
_PERSON_QUESTION = re.compile(r"^\s*(who|whom|whose)\b")
_ANSWER_PREFIX = re.compile(r"^\s*(the\s+)?(short\s+)?answer(\s+is)?\s*[:\-]?\s*", re.IGNORECASE)


# Sentences -------------------------------------------------------------------------------------------------------


def split_sentences(text: str) -> list[str]:
    """Sentences as exact slices of `text` (stripped), split at end punctuation and blank lines."""
    sentences: list[str] = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        start = 0
        for match in _SENTENCE_END.finditer(paragraph):
            before = paragraph[start : match.start() + 1]
            if _ends_with_abbreviation(before) or _next_starts_lowercase(paragraph, match):
                continue
            sentences.append(paragraph[start : match.end()].strip())
            start = match.end()
        sentences.append(paragraph[start:].strip())
    return [sentence for sentence in sentences if sentence]


def _ends_with_abbreviation(chunk: str) -> bool:
    words = chunk.split()
    if not words:
        return False
    last = words[-1].lstrip(_OPENING_QUOTES + "([").rstrip(".").casefold()
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())


def _next_starts_lowercase(text: str, match: re.Match[str]) -> bool:
    return match.end() < len(text) and text[match.end()].islower()


def embed(embedder: SentenceTransformer, texts: Sequence[str]) -> np.ndarray:
    """Unit-length embeddings, one row per text."""
    if not texts:
        return np.zeros((0, 1), dtype=np.float32)
    return embedder.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


# The guard against invented facts ----------------------------------------------------------------------------------


def summary_rejection(summary: str, source: str) -> str | None:
    """Why an abstractive summary must not be used, or None when it passes.

    Rejects empty or degenerate output (one phrase repeated, not shorter than the source) and any number or
    capitalised (name-like) word that does not occur in the source.
    """
    if sum(char.isalnum() for char in summary) < 8:
        return "empty"
    if len(summary) >= len(source):
        return "not shorter than the source"
    if is_repetitive(summary):
        return "repetitive"
    invented = unsupported_facts(summary, source)
    if invented:
        return "not in the source: " + ", ".join(invented)
    return None


def unsupported_facts(summary: str, source: str) -> list[str]:
    """Numbers and capitalised words of `summary` that the source does not contain."""
    source_numbers = {_plain_number(number) for number in _NUMBER.findall(source)}
    source_words = _word_set(source)
    invented = [number for number in _NUMBER.findall(summary) if _plain_number(number) not in source_numbers]
    for match in _WORD.finditer(summary):
        word = _strip_possessive(match.group())
        if not word[0].isupper() or _is_known_word(word, source_words):
            continue
        if _at_sentence_start(summary, match.start()) and word.casefold() in _SENTENCE_OPENERS:
            continue
        invented.append(word)
    return invented


def is_repetitive(text: str) -> bool:
    sentences = [sentence.casefold() for sentence in split_sentences(text)]
    if len(set(sentences)) < len(sentences):
        return True
    words = [word.casefold() for word in _WORD.findall(text)]
    trigrams = list(zip(words, words[1:], words[2:], strict=False))
    return len(trigrams) >= 6 and len(set(trigrams)) < 0.6 * len(trigrams)


def _plain_number(number: str) -> str:
    return number.replace(",", "")


def _strip_possessive(word: str) -> str:
    return re.sub(r"['\u2019]s$", "", word)


def _word_set(text: str) -> set[str]:
    words = {_strip_possessive(word).casefold() for word in _WORD.findall(text)}
    return words | {part for word in words for part in re.split(r"[-'\u2019]", word)}


def _is_known_word(word: str, source_words: set[str]) -> bool:
    folded = word.casefold()
    return folded in source_words or all(part in source_words for part in re.split(r"[-'\u2019]", folded) if part)


def _at_sentence_start(text: str, position: int) -> bool:
    before = text[:position].rstrip(" (" + _OPENING_QUOTES)
    return not before or before[-1] in ".!?:\n"


# Extractive summaries -----------------------------------------------------------------------------------------------


def centrality(embeddings: np.ndarray) -> np.ndarray:
    """Mean cosine similarity of each sentence to the others (rows are unit length)."""
    count = len(embeddings)
    if count < 2:
        return np.ones(count, dtype=np.float32)
    similarity = embeddings @ embeddings.T
    return (similarity.sum(axis=1) - np.diag(similarity)) / (count - 1)


def top_sentences(sentences: Sequence[str], embeddings: np.ndarray, max_sentences: int) -> str:
    """The `max_sentences` most central sentences, in their original order."""
    if len(sentences) <= max_sentences:
        return " ".join(sentences)
    ranked = np.argsort(-centrality(embeddings), kind="stable")[:max_sentences]
    return " ".join(sentences[index] for index in sorted(ranked))


# Question answering: quoting the context -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    text: str
    sentence: str
    agreement: float


def tidy_answer(generated: str) -> str:
    """The model's answer without 'The answer is:', quotes, trailing punctuation or extra lines."""
    lines = [line.strip() for line in generated.strip().splitlines() if line.strip()]
    answer = _ANSWER_PREFIX.sub("", lines[0]) if lines else ""
    return answer.strip().strip(_QUOTES).rstrip(".!;,").strip()


def quote_answer(generated: str, question: str, context: str, evidence: Sequence[str]) -> Span:
    """A span of the context for the generated answer: the answer itself when the context contains it, else the
    span of the evidence sentences (best first) with the best token overlap with the answer, narrowed to a date,
    number or name when the question asks for one. The span always occurs in the context."""
    span = _quote(tidy_answer(generated), question, context, evidence)
    part = _name_part(span.text, question)
    return span if part == span.text else Span(part, span.sentence, span.agreement)


def _name_part(answer: str, question: str) -> str:
    """The first or last word of a multi-word name when the question asks for the first or last name."""
    folded = question.casefold()
    words = [m for m in _WORD.finditer(answer) if m.group()[0].isupper()]
    if len(words) < 2 or len(_TOKEN.findall(answer)) > 4:
        return answer
    if "first name" in folded or "given name" in folded:
        return words[0].group()
    if "last name" in folded or "surname" in folded or "family name" in folded:
        return words[-1].group()
    return answer


def _quote(answer: str, question: str, context: str, evidence: Sequence[str]) -> Span:
    question_words = _content_words(question)
    key = _content_words(answer) - question_words
    located = context.casefold().find(answer.casefold()) if answer and key else -1
    if located >= 0:
        quoted = context[located : located + len(answer)]
        sentence = next((s for s in evidence if quoted in s), None) or _sentence_containing(context, located)
        return Span(_narrow_long_quote(quoted, question, key), sentence, 1.0)
    best = _best_overlap(key, evidence)
    if best is None:
        sentence = evidence[0]
        return Span(_typed_run(sentence, question, key, near=None) or sentence, sentence, 0.0)
    sentence, (start, end), f1 = best
    span = sentence[start:end]
    return Span(
        _typed_run(span, question, key, near=None) or _typed_run(sentence, question, key, near=span) or span,
        sentence,
        f1,
    )


def word_overlap(question: str, sentence: str) -> float:
    """The share of the question's content words (stemmed) that occur in the sentence."""
    wanted = _content_words(question)
    return len(wanted & _content_words(sentence)) / len(wanted) if wanted else 0.0


def _content_words(text: str) -> set[str]:
    return {stem for token in _TOKEN.findall(text) if (stem := _content_stem(token))}


def _content_stem(token: str) -> str | None:
    folded = token.casefold()
    return None if folded in _STOPWORDS else _stem(folded)


def _stem(token: str) -> str:
    return token if any(char.isdigit() for char in token) else token[:5]


def _best_overlap(
    key: set[str], sentences: Sequence[str], max_tokens: int = 12
) -> tuple[str, tuple[int, int], float] | None:
    """The sentence, (start, end) and F1 of the span (up to `max_tokens` tokens) sharing most words with `key`."""
    best, best_rank = None, (0.0, 0)
    for sentence in sentences:
        tokens = [(m.start(), m.end(), _content_stem(m.group())) for m in _TOKEN.finditer(sentence)]
        for first in range(len(tokens)):
            for last in range(first, min(first + max_tokens, len(tokens))):
                words = {stem for _, _, stem in tokens[first : last + 1] if stem}
                f1 = _f1(words, key)
                rank = (f1, -(last - first))
                if f1 > 0 and rank > best_rank:
                    best, best_rank = (sentence, (tokens[first][0], tokens[last][1]), f1), rank
    return best


def _f1(found: set[str], wanted: set[str]) -> float:
    common = len(found & wanted)
    return 0.0 if not common else 2 * common / (len(found) + len(wanted))


def _narrow_long_quote(quoted: str, question: str, key: set[str]) -> str:
    """A quote of more than six tokens is narrowed to its part with the answer's own words (not the question's)."""
    if len(_TOKEN.findall(quoted)) <= 6:
        return quoted
    best = _best_overlap(key, [quoted])
    narrowed = quoted[best[1][0] : best[1][1]] if best else quoted
    return _typed_run(narrowed, question, key, near=None) or narrowed


def _typed_run(text: str, question: str, key: set[str], near: str | None) -> str | None:
    """The run of number/date tokens (or capitalised name tokens) of `text` that the question asks for, if any:
    the one sharing most words with the answer, else the longest, or the closest to `near`."""
    folded = question.casefold()
    if _NUMERIC_QUESTION.match(folded):
        runs = _runs(text, _is_numeric_token)
    elif _PERSON_QUESTION.match(folded):
        question_words = _content_words(question)
        runs = _runs(text, lambda token: token[0].isupper() and _content_stem(token) not in question_words | {None})
    else:
        return None
    if not runs:
        return None
    anchor = text.find(near) if near else -1
    if anchor >= 0:
        start, end = min(runs, key=lambda run: abs(run[0] - anchor))
    else:
        start, end = max(runs, key=lambda run: (len(_content_words(text[run[0] : run[1]]) & key), run[1] - run[0]))
    return text[start:end]


def _is_numeric_token(token: str) -> bool:
    return any(char.isdigit() for char in token) or token.casefold() in _MONTHS | _NUMBER_WORDS


def _runs(text: str, belongs: Callable[[str], bool]) -> list[tuple[int, int]]:
    """(start, end) of each run of adjacent tokens that belong (only spaces or commas between them)."""
    runs: list[tuple[int, int]] = []
    for match in _TOKEN.finditer(text):
        if not belongs(match.group()):
            continue
        if runs and not text[runs[-1][1] : match.start()].strip(" ,"):
            runs[-1] = (runs[-1][0], match.end())
        else:
            runs.append((match.start(), match.end()))
    return runs


def _sentence_containing(context: str, position: int) -> str:
    offset = 0
    for sentence in split_sentences(context):
        offset = context.find(sentence, offset)
        if offset <= position < offset + len(sentence):
            return sentence
        offset += len(sentence)
    return context.strip()


# Replies: language, echo and loops -----------------------------------------------------------------------------------

_LETTER = re.compile(r"[^\W\d_]")
_LOOP = re.compile(r"(.{1,24}?)\1{3,}", re.DOTALL)


def _char_ngrams(text: str, n: int = 3) -> set[str]:
    folded = "".join(text.casefold().split())
    return {folded[i : i + n] for i in range(max(0, len(folded) - n + 1))}


def is_echo(reply: str, message: str) -> bool:
    """The reply merely repeats the user's message: at least 70% of its character trigrams come from the message
    and it adds fewer than 12 characters of its own."""
    said, heard = _char_ngrams(reply), _char_ngrams(message)
    if not said or not heard:
        return False
    new = len(said - heard)
    return len(said & heard) / len(said) >= 0.7 and new < 12


def is_looping(text: str) -> bool:
    """The text loops: a piece of up to 24 characters with a letter in it repeated four or more times in a row
    (8 characters at least), or mostly repeated words or sentences (is_repetitive)."""
    loops = (m for m in _LOOP.finditer(text) if _LETTER.search(m.group(1)) and len(m.group()) >= 8)
    return next(loops, None) is not None or is_repetitive(text)
