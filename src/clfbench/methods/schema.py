"""One schema for what a user gives: run options and method parameters, checked before any run.

Run options are the fields of `config.RunSpec`, typed and ranged in its annotations
(`Annotated[int, Ge(1)] | None`). Method parameters are typed and ranged by their declarations
beside each method class (`params.Param`: the annotation is the type, the rules the range); a
plug-in with a hand-written `__init__` is typed by its hints and ranged by an optional
`param_rules` ClassVar (the nearest class in its MRO wins).
Flags, grid files and the Python API all go through `check_values`.

Values are checked with pydantic in strict mode (no coercion: "3" is not 3, true is not 1; an
integer is a number) and never converted: a valid value reaches the run exactly as given.
Rules are `annotated_types` bounds (applied to the numbers inside a hint: the int of
`int | str`, the items of `list[float]`) or `OneOf` (applied to the strings inside it).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from types import UnionType
from typing import Annotated, Any, Literal, Union

from clfbench.errors import ClfbenchError


@dataclass(frozen=True)
class OneOf:
    """A string parameter's allowed values."""

    values: tuple[str, ...]


#: A rule saying: the method checks this parameter itself (type included), with its own message.
OWN_CHECK = OneOf(("<checked by the method>",))

_NUMBERS = (int, float)


def constrain(hint: Any, rules: Sequence[Any]) -> Any:
    """`hint` with `rules` applied to its leaves: bounds to int/float, OneOf to str."""
    if not rules:
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, UnionType):
        return Union[tuple(constrain(a, rules) for a in args)]  # noqa: UP007 - built at runtime
    if origin in (list, tuple, Sequence) and args:  # the rules apply to the items
        return origin[tuple(a if a is Ellipsis else constrain(a, rules) for a in args)]
    if hint in _NUMBERS:
        bounds = [r for r in rules if not isinstance(r, OneOf)]
        return Annotated[(hint, *bounds)] if bounds else hint
    if hint is str:
        choices = [c for r in rules if isinstance(r, OneOf) for c in r.values]
        return Literal[tuple(choices)] if choices else hint
    return hint


def _loosen(hint: Any) -> Any:
    """A list or a tuple is accepted wherever a hint says either (YAML has only lists)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, UnionType):
        return Union[tuple(_loosen(a) for a in args)]  # noqa: UP007
    if origin in (list, tuple) and args and (origin is list or args[-1] is Ellipsis):
        return Sequence[_loosen(args[0])]
    return hint


@cache
def _adapter(hint: Any):
    from pydantic import ConfigDict, TypeAdapter

    return TypeAdapter(hint, config=ConfigDict(strict=True, arbitrary_types_allowed=True))


def _bound(v: Any) -> Any:
    """A bound as written in the rule (pydantic reports 1 as 1.0 for a float)."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


_REASONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "greater_than_equal": lambda c: f"expected a value >= {_bound(c['ge'])}",
    "greater_than": lambda c: f"expected a value > {_bound(c['gt'])}",
    "less_than_equal": lambda c: f"expected a value <= {_bound(c['le'])}",
    "less_than": lambda c: f"expected a value < {_bound(c['lt'])}",
    "literal_error": lambda c: f"expected {c['expected']}",
    "int_type": lambda c: "expected an integer",
    "float_type": lambda c: "expected a number",
    "bool_type": lambda c: "expected true or false",
    "string_type": lambda c: "expected a string",
    "string_too_short": lambda c: "expected a non-empty string",
    "none_required": lambda c: "expected none",
}


def problem(hint: Any, value: Any) -> str | None:
    """Why `value` does not fit `hint` (one short phrase), or None when it does."""
    from pydantic import ValidationError

    try:
        _adapter(_loosen(hint)).validate_python(value)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        # A bound or a choice missed says more than "not this member of the union".
        hit = next((x for x in errors if not x["type"].endswith("_type")), errors[0])
        reason = _REASONS.get(hit["type"])
        text = reason(hit.get("ctx") or {}) if reason else hit["msg"][0].lower() + hit["msg"][1:]
        where = "".join(f"[{p}]" for p in hit["loc"] if isinstance(p, int))
        return f"item {where}: {text}" if where else text
    return None


def check_values(hints: dict[str, Any], values: dict[str, Any], where: str,
                 name: Callable[[str], str] = str) -> None:
    """Raise one ClfbenchError, `{where}{name(key)}={value!r} ({reason})`, for the first value
    in `values` that does not fit its hint; keys without a hint are left to the caller."""
    for key, value in values.items():
        if key in hints:
            why = problem(hints[key], value)
            if why:
                raise ClfbenchError(f"{where}{name(key)}={value!r} ({why})")
