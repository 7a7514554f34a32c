"""Token deltas from inside the batched generation loop: what is streamed adds up to what is stored."""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch

from inference.backends.llm.engine import CausalLM, _DeltaEmitter, generate, load_causal_lm
from inference.backends.llm.runners import run_dialogue, run_text_generation
from tests.backends.tiny_llama import save_tiny_llama

torch.set_num_threads(1)

GREEDY = {"temperature": 0.0, "max_new_tokens": 12}


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> CausalLM:
    path = tmp_path_factory.mktemp("tiny-llama-stream")
    return load_causal_lm(save_tiny_llama(path, hidden_size=32, heads=2, max_positions=256, initializer_range=0.5))


def collector():
    pieces: dict[int, list[str]] = defaultdict(list)
    return pieces, lambda index, text: pieces[index].append(text)


def test_batched_left_padded_deltas_add_up_to_each_final_text(tiny_lm):
    prompts = ["Hi", "A much longer prompt that makes the first one padded on the left", "Once upon a time"]
    params = [GREEDY, {**GREEDY, "max_new_tokens": 5}, {"temperature": 1.0, "seed": 3, "max_new_tokens": 9}]
    pieces, on_delta = collector()
    streamed = generate(tiny_lm, prompts, params, on_delta=on_delta)
    assert streamed == generate(tiny_lm, prompts, params)  # streaming changes nothing generated
    for index, generation in enumerate(streamed):
        assert "".join(pieces[index]) == generation.text
        assert len(pieces[index]) > 1, "tokens arrive one step at a time, not all at the end"
        assert all(pieces[index])


def test_deltas_never_pass_a_stop_string(tiny_lm):
    prompt = "Tell me a story"
    full = generate(tiny_lm, [prompt], [{**GREEDY, "max_new_tokens": 16}])[0]
    stop = full.text.strip()[4:7]
    pieces, on_delta = collector()
    [cut] = generate(tiny_lm, [prompt], [{**GREEDY, "max_new_tokens": 16, "stop": [stop]}], on_delta=on_delta)
    assert "".join(pieces[0]) == cut.text == full.text[: full.text.find(stop)]
    assert all(stop not in "".join(pieces[0][: i + 1]) for i in range(len(pieces[0])))


def _emit_steps(lm: CausalLM, completion: list[int], stops: tuple[str, ...] = ()) -> list[str]:
    """Feeds the emitter one token a step, as generate() does, and returns what it sent."""
    pieces: list[str] = []
    prompt = [lm.tokenizer.pad_token_id] * 3
    emitter = _DeltaEmitter(lm, [stops], len(prompt), lambda row, text: pieces.append(text))
    for step in range(1, len(completion) + 1):
        emitter(torch.tensor([prompt + completion[:step]]), torch.zeros(1, 1))
    emitter.finish(0, lm.tokenizer.decode(completion, skip_special_tokens=True))
    return pieces


def test_korean_is_never_split_inside_a_character(tiny_lm):
    text = "안녕하세요, 우리은행 고객센터입니다. 무엇을 도와드릴까요?"
    tokens = tiny_lm.tokenizer.encode(text, add_special_tokens=False)
    assert len(tokens) > len(text) / 2  # byte-level BPE: characters span several tokens
    pieces = _emit_steps(tiny_lm, tokens)
    assert "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)
    assert len(pieces) > 5


def test_a_possible_stop_string_start_is_held_back(tiny_lm):
    text = "The answer is 42. END of story"
    tokens = tiny_lm.tokenizer.encode(text, add_special_tokens=False)
    pieces = _emit_steps(tiny_lm, tokens, stops=("END",))
    streamed = ""
    for piece in pieces[:-1]:  # the last piece is finish()'s rest of the final text
        streamed += piece
        assert "E" not in streamed.split("42.")[-1]
    assert "".join(pieces) == text  # finish() sends what the final (uncut here) text holds


def test_runners_stream_what_they_store(tiny_lm):
    pieces, on_delta = collector()
    [result] = run_text_generation(tiny_lm, [{"prompt": "Say hello"}], [GREEDY], on_delta=on_delta)
    assert "".join(pieces[0]) == result["text"]
    pieces, on_delta = collector()
    conversations = [
        {"messages": [{"role": "user", "content": "Hello"}]},
        {"messages": [{"role": "user", "content": "Hi there"}]},
    ]
    results = run_dialogue(tiny_lm, conversations, [GREEDY, GREEDY], on_delta=on_delta)
    for index, result in enumerate(results):
        assert "".join(pieces[index]) == result["message"]["content"]
