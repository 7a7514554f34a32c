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


def text_units(*texts: str) -> int:
    """Billing tokens for text: about four characters a token, at least one."""
    return max(1, math.ceil(sum(len(text) for text in texts) / 4))
