"""The text capabilities served by the language model and the sentence embedder."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from capabilities import structured
from capabilities.base import (
    Capability,
    GenerationParams,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    text_units,
)
from capabilities.default_models import EMBEDDER, QWEN
from capabilities.language import is_korean

MAX_DOCUMENT_CHARS = 20_000


class TextGenerationInput(StrictSerializer):
    prompt = StrictCharField(max_length=8_000)


class CalledFunction(StrictSerializer):
    name = StrictCharField(max_length=64)
    arguments = StrictCharField(max_length=8_000, allow_blank=True, trim_whitespace=False)


class ToolCall(StrictSerializer):
    id = StrictCharField(max_length=64)
    type = serializers.ChoiceField(choices=["function"])
    function = CalledFunction()


class Message(StrictSerializer):
    """A turn: system, user, assistant (content, or tool_calls it made) or tool (a call's result, by tool_call_id)."""

    role = serializers.ChoiceField(choices=["system", "user", "assistant", "tool"])
    content = StrictCharField(max_length=8_000, allow_blank=True)
    tool_calls = serializers.ListField(child=ToolCall(), min_length=1, max_length=8, required=False)
    tool_call_id = StrictCharField(max_length=64, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("tool_calls") and attrs["role"] != "assistant":
            raise serializers.ValidationError({"tool_calls": ["Only assistant messages carry tool_calls."]})
        if (attrs["role"] == "tool") != ("tool_call_id" in attrs):
            raise serializers.ValidationError({"tool_call_id": ["Tool messages, and only they, need tool_call_id."]})
        if not attrs["content"] and not attrs.get("tool_calls"):
            raise serializers.ValidationError({"content": ["This field may not be blank."]})
        return attrs


class DialogueInput(StrictSerializer):
    messages = serializers.ListField(child=Message(), min_length=1, max_length=64)

    def validate_messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if messages[-1]["role"] not in ("user", "tool"):
            raise serializers.ValidationError("The last message must come from the user (or be a tool result).")
        if sum(len(message["content"]) for message in messages) > 32_000:
            raise serializers.ValidationError("The conversation is longer than 32,000 characters.")
        return messages


class DialogueParams(GenerationParams):
    """Sampling, `n`, and structured output (capabilities.structured): response_format, tools, tool_choice."""

    max_new_tokens = StrictIntegerField(min_value=1, max_value=512, default=128)
    n = StrictIntegerField(min_value=1, max_value=4, default=1)
    response_format = serializers.JSONField(required=False)
    tools = serializers.JSONField(required=False)
    tool_choice = serializers.JSONField(required=False)

    def validate_response_format(self, value: Any) -> Any:
        return structured.validate_response_format(value)

    def validate_tools(self, value: Any) -> Any:
        return structured.validate_tools(value)

    def validate_tool_choice(self, value: Any) -> Any:
        return structured.validate_tool_choice(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return structured.validate_combination(dict(attrs))


class EmbeddingsInput(StrictSerializer):
    texts = serializers.ListField(child=StrictCharField(max_length=8_000), min_length=1, max_length=256)


class SummarizationInput(StrictSerializer):
    text = StrictCharField(max_length=MAX_DOCUMENT_CHARS)


class SummarizationParams(StrictSerializer):
    max_sentences = StrictIntegerField(min_value=1, max_value=10, default=3)
    mode = serializers.ChoiceField(choices=["auto", "abstractive", "extractive"], default="auto")


class QuestionAnsweringInput(StrictSerializer):
    question = StrictCharField(max_length=1_000)
    context = StrictCharField(max_length=MAX_DOCUMENT_CHARS)


class QuestionAnsweringParams(StrictSerializer):
    max_new_tokens = StrictIntegerField(min_value=1, max_value=128, default=48)


class TextClassificationInput(StrictSerializer):
    text = StrictCharField(max_length=MAX_DOCUMENT_CHARS)
    labels = serializers.ListField(child=StrictCharField(max_length=100), min_length=2, max_length=32, required=False)

    def validate_labels(self, labels: list[str]) -> list[str]:
        if len({label.casefold() for label in labels}) != len(labels):
            raise serializers.ValidationError("Labels must be distinct.")
        return labels


class TextClassificationParams(StrictSerializer):
    multi_label = StrictBooleanField(default=False)
    hypothesis_template = StrictCharField(max_length=200, default="This text is about {}.")

    def validate_hypothesis_template(self, template: str) -> str:
        if template.count("{}") != 1:
            raise serializers.ValidationError("The template must contain `{}` exactly once.")
        return template


def _tools_text(params: dict[str, Any]) -> str:
    """What the model is told about the tools or the schema (billed as prompt text)."""
    return structured.plan_of(params).hint or ""


def _generation_cost(prompt_units: int, params: dict[str, Any]) -> int:
    return prompt_units + params.get("max_new_tokens", 64)


TEXT_GENERATION = Capability(
    name="text_generation",
    description="Continues or answers a prompt with the language model (Qwen2.5-Coder-0.5B-Instruct by default).",
    input_serializer=TextGenerationInput,
    params_serializer=GenerationParams,
    default_model=QWEN,
    cost=lambda data, params: _generation_cost(text_units(data["prompt"]), params),
    example_input={"prompt": "Write a one-line slogan for an AI fashion artist."},
)

DIALOGUE = Capability(
    name="dialogue",
    description="The next assistant turn of a conversation, with the model's chat template.",
    input_serializer=DialogueInput,
    params_serializer=DialogueParams,
    default_model=QWEN,
    cost=lambda data, params: (
        params.get("n", 1)
        * _generation_cost(text_units(*(m["content"] for m in data["messages"]), _tools_text(params)), params)
    ),
    example_input={"messages": [{"role": "user", "content": "What is the capital of France?"}]},
)

SUMMARIZATION = Capability(
    name="summarization",
    description="An abstractive summary guarded against invented facts, or an extractive one.",
    input_serializer=SummarizationInput,
    params_serializer=SummarizationParams,
    default_model=QWEN,
    cost=lambda data, params: text_units(data["text"]) + 128,
    example_input={
        "text": "The customer called about a double charge on the roaming plan. The agent confirmed the error, "
        "refunded 12,000 won and added a note to the account. The customer thanked the agent and ended the call."
    },
)

QUESTION_ANSWERING = Capability(
    name="question_answering",
    description="Answers a question with a span of its context, read by the LLM; evidence windows found with MiniLM.",
    input_serializer=QuestionAnsweringInput,
    params_serializer=QuestionAnsweringParams,
    default_model=QWEN,
    cost=lambda data, params: text_units(data["question"], data["context"]) + params.get("max_new_tokens", 48),
    example_input={
        "question": "When did Tilda appear at New York Fashion Week?",
        "context": "Tilda is an AI artist built by LG AI Research. Its fashion patterns appeared at New York "
        "Fashion Week in February 2022, in a collection made with designer Yoon-hee Park.",
    },
)


def _classifier_for(data: dict[str, Any]) -> str | None:
    """A Korean text is classified by the bilingual language model (Qwen, by its calibrated yes/no answer for each
    label): MiniLM is English-only and no multilingual embedder is available offline. Other texts: MiniLM."""
    text = data.get("text")
    return QWEN if isinstance(text, str) and is_korean(text) else None


TEXT_CLASSIFICATION = Capability(
    name="text_classification",
    description=(
        "Zero-shot classification over the given labels (MiniLM similarity, calibrated; a Korean text, or a job "
        "naming Qwen, by Qwen's calibrated yes/no answer for each label)."
    ),
    input_serializer=TextClassificationInput,
    params_serializer=TextClassificationParams,
    default_model=EMBEDDER,
    input_default=_classifier_for,
    embedder_only_params=("multi_label", "hypothesis_template"),
    cost=lambda data, params: text_units(data["text"], *data.get("labels", [])),
    required_with_base_model=("labels",),
    example_input={
        "text": "I have called three times and nobody fixed the double charge on my bill.",
        "labels": ["complaint", "praise", "question"],
    },
)

EMBEDDINGS = Capability(
    name="embeddings",
    description="Sentence embeddings (384 dimensions, L2-normalised) from all-MiniLM-L6-v2.",
    input_serializer=EmbeddingsInput,
    params_serializer=StrictSerializer,
    default_model=EMBEDDER,
    cost=lambda data, params: text_units(*data["texts"]),
    example_input={"texts": ["An AI banker tuned on finance language.", "A chatbot that summarises calls."]},
)
