from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers


class CapabilityUnavailable(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is an error rather than a silent default."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {unknown[0]: [f"Unknown field; expected one of: {', '.join(self.fields)}."]}
                )
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of turning them into text."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be an integer."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    default_error_messages = {"invalid": "Must be a number."}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


@dataclass(frozen=True)
class Capability:
    name: str
    description: str
    input_serializer: type[serializers.Serializer]
    params_serializer: type[serializers.Serializer]
    default_model: str
    cost: Callable[[dict[str, Any], dict[str, Any]], int]
    example_input: dict[str, Any]
    image_fields: tuple[str, ...] = ()
    required_with_base_model: tuple[str, ...] = ()
    # The default chosen by the input, where one input needs another model (a Korean text: the bilingual language
    # model); None from it, or no chooser, means default_model. The one place a job's default model is decided.
    input_default: Callable[[Any], str | None] | None = None
    # Params only the sentence-embedder path reads; another model refuses them when set to other than the default.
    embedder_only_params: tuple[str, ...] = ()

    def default_for(self, data: Any) -> str:
        """The model a job with this (unvalidated) input runs on when it names none."""
        chosen = self.input_default(data) if self.input_default is not None and isinstance(data, dict) else None
        return chosen or self.default_model


def text_units(*texts: str) -> int:
    """Billing tokens for text: about four characters a token, at least one."""
    return max(1, math.ceil(sum(len(text) for text in texts) / 4))


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class GenerationParams(StrictSerializer):
    """Sampling parameters shared by the generative text capabilities."""

    max_new_tokens = StrictIntegerField(min_value=1, max_value=512, default=64)
    temperature = StrictFloatField(min_value=0.0, max_value=2.0, default=0.7)
    top_p = StrictFloatField(min_value=0.01, max_value=1.0, default=0.95)
    stop = serializers.ListField(
        child=StrictCharField(max_length=32, trim_whitespace=False), max_length=4, default=list
    )
    seed = StrictIntegerField(min_value=0, max_value=2**31 - 1, required=False)
