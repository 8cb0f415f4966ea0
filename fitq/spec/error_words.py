"""Pydantic's validation errors said as fitq says its own: the field as the user wrote its
path (without the union tags pydantic puts in it), what was expected, what was received as
sent, and the closest allowed name where one was mistyped. The API's 422s and a sweep's
checks both speak through ``error_detail``."""

from __future__ import annotations

import re
from typing import Any

from fitq.errors import ErrorDetail
from fitq.spec.arguments import did_you_mean


def _loc(parts: tuple[Any, ...]) -> str:
    kept = [str(p) for p in parts if not str(p).startswith("function-")]
    if kept and kept[0] in {"body", "query", "path", "header"} and len(kept) > 1:
        kept = kept[1:]
    return ".".join(kept) or "body"


def _received(value: Any) -> Any:
    """Echo small inputs; summarise large ones (never send a data array back)."""
    if isinstance(value, bytes):  # a body sent with another Content-Type than JSON
        return f"{len(value):,} bytes that are not a JSON body (Content-Type: application/json)"
    if isinstance(value, list):  # each item too: [NaN, 1e400] must still encode as JSON
        return (
            f"an array of length {len(value)}" if len(value) > 8 else [_received(v) for v in value]
        )
    if isinstance(value, dict):
        return {k: _received(v) for k, v in list(value.items())[:16]}
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "…"
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return str(value)
    return value


def error_detail(error: dict[str, Any]) -> ErrorDetail:
    loc, keys = _per_output_keys(tuple(error.get("loc", ())))
    parts = tuple(
        keys.get(i, p) for i, p in enumerate(loc) if i in keys or not _is_union_segment(loc, i)
    )
    return ErrorDetail(
        loc=_loc(parts), message=_message(error), received=_received(error.get("input"))
    )


# What a JSON value of each pydantic type error's kind is called, in the user's words.
_EXPECTED = {
    "int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
    "string_type": "a string", "list_type": "an array", "tuple_type": "an array",
    "dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
}  # fmt: skip
_JSON_KINDS = {
    str: "a string", bool: "a boolean", int: "an integer", float: "a number",
    list: "an array", dict: "an object", type(None): "null",
}  # fmt: skip


def _message(error: dict[str, Any]) -> str:
    """Pydantic's message, said as fitq says its own: what was expected, what was received
    (as sent), and the closest allowed name where a name was mistyped."""
    kind, ctx, received = error.get("type"), error.get("ctx") or {}, error.get("input")
    if kind == "union_tag_invalid":
        allowed = [tag.strip("'") for tag in str(ctx.get("expected_tags", "")).split(", ")]
        tag = str(ctx.get("tag"))
        return f"expected one of {', '.join(allowed)}, received {tag!r}{did_you_mean(tag, allowed)}"
    if kind in ("enum", "literal_error") and isinstance(received, str):
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        if allowed:
            hint = did_you_mean(received, allowed)
            names = ", ".join(repr(name) for name in allowed)
            return f"expected one of {names}, received {received!r}{hint}"
    if kind == "union_tag_not_found":
        field = str(ctx.get("discriminator", "type")).strip("'")
        return f"expected a {field!r} field saying which kind this is, received none"
    if kind == "extra_forbidden":
        return "expected a field this object has, received an unknown field"
    if kind in _EXPECTED:
        sent = _JSON_KINDS.get(type(received), type(received).__name__)
        hint = " (a JSON number, not a string: no quotes)" if sent == "a string" else ""
        if kind == "string_type" or kind == "bool_type":
            hint = ""
        return f"expected {_EXPECTED[kind]}{hint}, received {sent} ({received!r})"
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


# Fields given once or per model output (compile.loss, compile.metrics): pydantic puts "one"
# or "per_output" after them, and the output's name after "per_output".
_PER_OUTPUT_FIELDS = {"loss", "metrics"}


def _per_output_keys(loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[int, Any]]:
    """``loc`` without the "one" / "per_output" tags, each output name standing in for its
    field (so what follows reads as it would after the field), and those names by index."""
    seen: list[Any] = []
    keys: dict[int, Any] = {}
    index = 0
    while index < len(loc):
        part, previous = loc[index], loc[index - 1] if index else None
        if previous in _PER_OUTPUT_FIELDS and part in ("one", "per_output"):
            if part == "per_output" and index + 1 < len(loc):
                keys[len(seen)] = loc[index + 1]
                seen.append(previous)
                index += 1
            index += 1
            continue
        seen.append(part)
        index += 1
    return tuple(seen), keys


# Fields whose value is a discriminated union: pydantic puts the member's tag after them
# ("schedule" and "object" are themselves tags, of a learning rate and a metric, followed by
# the member's own). Lists of tagged members: a tag after the index.
_TAGGED_FIELDS = {
    "optimizer", "loss", "train", "validation", "test", "learning_rate", "schedule", "object",
    "x", "y",
}  # fmt: skip
_TAGGED_LISTS = {"layers", "callbacks", "metrics"}
# Fields whose union members carry a tag only sometimes: these tags, after these fields.
_TAGS_AFTER = {"model": {"spec", "keras_config", "from_job"}}
_UNION_MEMBER = re.compile(r"^(constrained-)?(int|float|str|bool)$|\[")


def _is_union_segment(loc: tuple[Any, ...], index: int) -> bool:
    """Pydantic names the union member in the path: a discriminated union its tag
    ('model.layers.0.Dense.units', 'compile.loss.huber.delta', 'data.train.inline.x',
    'compile.optimizer.adam.learning_rate.schedule.CosineDecay.config.alpha'), a
    plain union the member's type ('kernel_size.tuple[int, int]'). Users never wrote those."""
    part = loc[index]
    if index == 0 or not isinstance(part, str):
        return False
    previous = loc[index - 1]
    top_level = index == 1 or (index == 2 and loc[0] == "body")
    if top_level and part in _TAGS_AFTER.get(previous, ()):
        return True
    if previous in _TAGGED_FIELDS or bool(_UNION_MEMBER.search(part)):
        return True
    return isinstance(previous, int) and index >= 2 and loc[index - 2] in _TAGGED_LISTS
