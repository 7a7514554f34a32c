"""The capabilities as the web pages describe them: name, label, description, example input, image fields."""

from __future__ import annotations

from typing import Any

from capabilities import CAPABILITIES, CORE_CAPABILITIES


def catalogue(names: tuple[str, ...] = CORE_CAPABILITIES) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "label": name.replace("_", " ").capitalize(),
            "description": CAPABILITIES[name].description,
            "example": CAPABILITIES[name].example_input,
            "image_fields": list(CAPABILITIES[name].image_fields),
        }
        for name in names
        if name in CAPABILITIES
    ]
