"""Showcase recipes: data, not code. A recipe is an ordered list of steps, each a capability (and optionally a model)
whose input is JSON in which strings may hold references, `{{input.<name>}}` (what the visitor typed) or
`{{steps.<id>.output.<path>}}` (an earlier step's output; path segments are names or list indices).

    {
      "inputs": [{"name": "message", "label": "Customer message", "example": "My bill is wrong again."}],
      "steps": [
        {"id": "reply", "capability": "dialogue",
         "input": {"messages": [{"role": "user", "content": "{{input.message}}"}]}},
        {"id": "note", "capability": "summarization",
         "input": {"text": "Customer: {{input.message}} Agent: {{steps.reply.output.message.content}}"}}
      ]
    }

A string that is exactly one reference takes the referenced value as it is (a list stays a list); a reference
inside longer text is written into it (a non-string as compact JSON). recipe_check validates a recipe when it is
saved (shape, capabilities, models, references to declared inputs and earlier steps only, params); render builds a
step's input when it runs. Everything here raises RecipeInvalid (InvalidInput) with `param` naming the place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from alliance.errors import DomainError, InvalidInput
from capabilities import CAPABILITIES, CORE_CAPABILITIES

MAX_RECIPE_BYTES = 20_000
MAX_STEPS = 8
MAX_INPUTS = 5
MAX_INPUT_CHARS = 4_000
NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
REFERENCE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_SEGMENT = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|\d+)$")
_STEP_KEYS = {"id", "capability", "model", "input", "params", "title", "title_ko"}
_INPUT_KEYS = {"name", "label", "label_ko", "example"}  # label_ko, title_ko: the Korean texts (localized)


class RecipeInvalid(InvalidInput):
    """The recipe (or a visitor's input to it) breaks a rule; `param` names the place, e.g. `recipe.steps[1].input`."""

    def __init__(self, message: str, *, param: str, code: str = "invalid_recipe") -> None:
        super().__init__(message, code=code, param=param)


@dataclass(frozen=True)
class Reference:
    """`input.<name>` -> ("input", name, ()); `steps.<id>.output.a.0` -> ("steps", id, ("a", "0"))."""

    kind: str
    name: str
    path: tuple[str, ...]

    def __str__(self) -> str:
        if self.kind == "input":
            return f"input.{self.name}"
        return ".".join(("steps", self.name, "output", *self.path))


def parse_reference(text: str, param: str) -> Reference:
    parts = text.split(".")
    if any(not _SEGMENT.match(part) for part in parts):
        raise RecipeInvalid(
            f"`{{{{{text}}}}}` is not a reference: use input.<name> or steps.<id>.output...", param=param
        )
    if parts[0] == "input" and len(parts) == 2:
        return Reference("input", parts[1], ())
    if parts[0] == "steps" and len(parts) >= 3 and parts[2] == "output":
        return Reference("steps", parts[1], tuple(parts[3:]))
    raise RecipeInvalid(
        f"`{{{{{text}}}}}` is not a reference: use input.<name> or steps.<id>.output[.<field>...].", param=param
    )


def references(value: Any, param: str) -> list[tuple[Reference, str]]:
    """Every reference in a JSON value, with the place it sits."""
    found: list[tuple[Reference, str]] = []
    if isinstance(value, str):
        found += [(parse_reference(match.group(1), param), param) for match in REFERENCE.finditer(value)]
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += references(item, f"{param}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += references(item, f"{param}.{key}")
    return found


def _resolve(reference: Reference, inputs: Mapping[str, str], outputs: Mapping[str, Any]) -> Any:
    if reference.kind == "input":
        return inputs[reference.name]
    value: Any = outputs[reference.name]
    for segment in reference.path:
        if isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        elif isinstance(value, dict) and segment in value:
            value = value[segment]
        else:
            raise RecipeInvalid(
                f"The output of step {reference.name!r} has no {'.'.join(reference.path)}.",
                param=str(reference),
                code="recipe_reference_missing",
            )
    return value


def render(template: Any, *, inputs: Mapping[str, str], outputs: Mapping[str, Any]) -> Any:
    """The template with its references replaced by the visitor's inputs and earlier steps' outputs."""
    if isinstance(template, list):
        return [render(item, inputs=inputs, outputs=outputs) for item in template]
    if isinstance(template, dict):
        return {key: render(item, inputs=inputs, outputs=outputs) for key, item in template.items()}
    if not isinstance(template, str):
        return template
    whole = REFERENCE.fullmatch(template.strip())
    if whole:
        return _resolve(parse_reference(whole.group(1), "template"), inputs, outputs)

    def text(match: re.Match[str]) -> str:
        value = _resolve(parse_reference(match.group(1), "template"), inputs, outputs)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    return REFERENCE.sub(text, template)


def _require(condition: bool, message: str, param: str) -> None:
    if not condition:
        raise RecipeInvalid(message, param=param)


def _check_inputs(declared: Any) -> list[dict[str, str]]:
    _require(
        isinstance(declared, list) and 1 <= len(declared) <= MAX_INPUTS,
        f"`inputs` must list 1 to {MAX_INPUTS} inputs.",
        "recipe.inputs",
    )
    names: set[str] = set()
    for index, item in enumerate(declared):
        param = f"recipe.inputs[{index}]"
        _require(isinstance(item, dict), "An input is an object with `name`, `label` and `example`.", param)
        unknown = sorted(set(item) - _INPUT_KEYS)
        _require(
            not unknown,
            f"Unknown field {unknown[0] if unknown else ''!r}; expected name, label, label_ko, example.",
            param,
        )
        name = item.get("name")
        _require(
            isinstance(name, str) and bool(NAME.match(name)),
            "`name` must be lower-case letters, digits and _.",
            f"{param}.name",
        )
        _require(name not in names, f"Input {name!r} is declared twice.", f"{param}.name")
        names.add(name)
        for field in ("label", "label_ko", "example"):
            value = item.get(field, "")
            _require(
                isinstance(value, str) and len(value) <= MAX_INPUT_CHARS, f"`{field}` must be text.", f"{param}.{field}"
            )
    clean = []
    for item in declared:
        entry = {"name": item["name"], "label": item.get("label") or item["name"], "example": item.get("example", "")}
        if item.get("label_ko", "").strip():
            entry["label_ko"] = item["label_ko"].strip()[:200]
        clean.append(entry)
    return clean


def recipe_check(recipe: Any, *, model_check: Callable[[str, str], object]) -> dict[str, Any]:
    """The recipe, checked and normalised; `{}` (no recipe) stays `{}`. model_check(capability, model) raises a
    domain error for a model the partner cannot use for that capability (inference.services.model_check)."""
    if recipe in (None, {}, ""):
        return {}
    _require(isinstance(recipe, dict), "A recipe is a JSON object with `inputs` and `steps`.", "recipe")
    _require(
        len(json.dumps(recipe)) <= MAX_RECIPE_BYTES, f"A recipe is at most {MAX_RECIPE_BYTES} bytes of JSON.", "recipe"
    )
    unknown = sorted(set(recipe) - {"inputs", "steps"})
    _require(
        not unknown, f"Unknown field {unknown[0] if unknown else ''!r}; a recipe has `inputs` and `steps`.", "recipe"
    )
    inputs = _check_inputs(recipe.get("inputs"))
    steps = recipe.get("steps")
    _require(
        isinstance(steps, list) and 1 <= len(steps) <= MAX_STEPS,
        f"`steps` must list 1 to {MAX_STEPS} steps.",
        "recipe.steps",
    )
    declared = {item["name"] for item in inputs}
    earlier: list[str] = []
    clean_steps = []
    for index, step in enumerate(steps):
        param = f"recipe.steps[{index}]"
        _require(isinstance(step, dict), "A step is an object with `id`, `capability` and `input`.", param)
        unknown = sorted(set(step) - _STEP_KEYS)
        _require(
            not unknown,
            f"Unknown field {unknown[0] if unknown else ''!r}; expected one of: {', '.join(sorted(_STEP_KEYS))}.",
            param,
        )
        step_id = step.get("id")
        _require(
            isinstance(step_id, str) and bool(NAME.match(step_id)),
            "`id` must be lower-case letters, digits and _.",
            f"{param}.id",
        )
        _require(step_id not in earlier, f"Step id {step_id!r} is used twice.", f"{param}.id")
        capability = step.get("capability")
        _require(
            capability in CORE_CAPABILITIES,
            f"Unknown capability {capability!r}; expected one of: {', '.join(CORE_CAPABILITIES)}.",
            f"{param}.capability",
        )
        model = step.get("model") or None
        _require(model is None or isinstance(model, str), "`model` must be a model name.", f"{param}.model")
        try:
            model_check(capability, model)
        except DomainError as exc:  # NotFound (not the partner's, or no such model), InvalidInput (another capability)
            raise RecipeInvalid(exc.message, param=f"{param}.model") from None
        template = step.get("input")
        _require(isinstance(template, dict) and bool(template), "`input` must be a JSON object.", f"{param}.input")
        fields = CAPABILITIES[capability].input_serializer().fields
        unknown = sorted(set(template) - set(fields))
        _require(
            not unknown,
            f"{capability} has no input field {unknown[0] if unknown else ''!r}; it takes: {', '.join(fields)}.",
            f"{param}.input",
        )
        for reference, place in references(template, f"{param}.input"):
            if reference.kind == "input":
                _require(reference.name in declared, f"`{{{{{reference}}}}}` names no declared input.", place)
            else:
                _require(
                    reference.name in earlier,
                    f"`{{{{{reference}}}}}` must name an earlier step (one of: {', '.join(earlier) or 'none'}).",
                    place,
                )
        params = step.get("params", {})
        _require(isinstance(params, dict), "`params` must be a JSON object.", f"{param}.params")
        serializer = CAPABILITIES[capability].params_serializer(data=params)
        if not serializer.is_valid():
            field, problems = next(iter(serializer.errors.items()))
            raise RecipeInvalid(
                f"{field}: {problems[0] if isinstance(problems, list) else problems}", param=f"{param}.params"
            )
        examples = {item["name"]: item["example"] for item in inputs}
        if not any(reference.kind == "steps" for reference, _ in references(template, param)) and all(
            examples.values()
        ):
            rendered = render(template, inputs=examples, outputs={})
            checked = CAPABILITIES[capability].input_serializer(data=rendered)
            if not checked.is_valid():
                field, problems = next(iter(checked.errors.items()))
                problem = problems[0] if isinstance(problems, list) and problems else problems
                raise RecipeInvalid(f"With the example inputs, {field}: {problem}", param=f"{param}.input")
        clean = {"id": step_id, "capability": capability, "input": template}
        if model:
            clean["model"] = model
        if params:
            clean["params"] = params
        for field in ("title", "title_ko"):
            _require(step.get(field) is None or isinstance(step[field], str), f"`{field}` must be text.", param)
            if (step.get(field) or "").strip():
                clean[field] = step[field].strip()[:100]
        clean_steps.append(clean)
        earlier.append(step_id)
    return {"inputs": inputs, "steps": clean_steps}


def step_title(step: Mapping[str, Any], *, korean: bool) -> str:
    return (korean and step.get("title_ko")) or step.get("title") or step["id"].replace("_", " ").capitalize()


def localized(recipe: dict[str, Any], language: str | None) -> dict[str, Any]:
    """The recipe with each input's `label` and each step's `title` in the language (Korean: `label_ko`,
    `title_ko`, when given), else as written; what the showcase page shows."""
    korean = (language or "en").lower().startswith("ko")
    inputs = [{**item, "label": (korean and item.get("label_ko")) or item["label"]} for item in recipe["inputs"]]
    steps = [{**step, "title": step_title(step, korean=korean)} for step in recipe["steps"]]
    return {**recipe, "inputs": inputs, "steps": steps}


def inputs_check(recipe: dict[str, Any], given: Any) -> dict[str, str]:
    """The visitor's inputs to a recipe: every declared one, as non-empty text; nothing else."""
    if not isinstance(given, dict):
        raise RecipeInvalid("`inputs` must be a JSON object.", param="inputs", code="invalid_type")
    declared = [item["name"] for item in recipe["inputs"]]
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise RecipeInvalid(
            f"Unknown input {unknown[0]!r}; this recipe takes: {', '.join(declared)}.",
            param=f"inputs.{unknown[0]}",
            code="unknown_field",
        )
    clean: dict[str, str] = {}
    for name in declared:
        value = given.get(name)
        if not isinstance(value, str) or not value.strip():
            raise RecipeInvalid(f"Input {name!r} is required text.", param=f"inputs.{name}", code="required")
        if len(value) > MAX_INPUT_CHARS:
            raise RecipeInvalid(
                f"Input {name!r} is over {MAX_INPUT_CHARS} characters.", param=f"inputs.{name}", code="too_long"
            )
        clean[name] = value.strip()
    return clean


def python_script(recipe: dict[str, Any], *, base_url: str, inputs: Mapping[str, str] | None = None) -> str:
    """The same recipe as a short Python script against the jobs API: one POST ?wait per step, in order."""
    values = dict(inputs or {item["name"]: item["example"] for item in recipe["inputs"]})
    lines = [
        "import os",
        "import requests",
        "",
        f'API = "{base_url.rstrip("/")}/api/v1/jobs"',
        'HEADERS = {"Authorization": f"Bearer {os.environ[\'ALLIANCE_API_KEY\']}"}',
        "",
        f"inputs = {json.dumps(values, ensure_ascii=False, indent=4)}",
        "outputs = {}",
        "",
        "",
        "def run(capability, data, model=None, params=None):",
        '    body = {"capability": capability, "input": data, "params": params or {}}',
        "    if model:",
        '        body["model"] = model',
        '    job = requests.post(API + "?wait=120", json=body, headers=HEADERS, timeout=150).json()',
        '    assert job.get("status") == "succeeded", job',
        '    return job["output"]',
        "",
    ]
    for step in recipe["steps"]:
        data = _python_value(step["input"])
        extra = ""
        if step.get("model"):
            extra += f", model={step['model']!r}"
        if step.get("params"):
            extra += f", params={_python_value(step['params'])}"
        lines += [
            "",
            f"# {step.get('title') or step['id']}: {step['capability']}",
            f'outputs["{step["id"]}"] = run("{step["capability"]}", {data}{extra})',
            f'print("{step["id"]}:", outputs["{step["id"]}"])',
        ]
    return "\n".join(lines) + "\n"


def _python_expression(reference: Reference) -> str:
    if reference.kind == "input":
        return f"inputs['{reference.name}']"
    return f"outputs['{reference.name}']" + "".join(
        f"[{segment}]" if segment.isdigit() else f"['{segment}']" for segment in reference.path
    )


def _python_value(value: Any) -> str:
    """A template as a Python expression: references become lookups, text around them an f-string."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)}: {_python_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_python_value(item) for item in value) + "]"
    if not isinstance(value, str):
        return repr(value)  # numbers, True / False / None as Python writes them
    whole = REFERENCE.fullmatch(value.strip())
    if whole:
        return _python_expression(parse_reference(whole.group(1), "template"))
    if not REFERENCE.search(value):
        return json.dumps(value, ensure_ascii=False)
    parts = REFERENCE.split(value)  # text, reference, text, ...
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append("{" + _python_expression(parse_reference(part, "template")) + "}")
        else:
            out.append(json.dumps(part, ensure_ascii=False)[1:-1].replace("{", "{{").replace("}", "}}"))
    return 'f"' + "".join(out) + '"'
