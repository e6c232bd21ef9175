"""Method parameters: each declared once, beside its class, with its default, type, range and help.

A method class declares a parameter as an annotated class attribute:

    epochs: int = Param(3, "passes over the training data (also --epochs)", Ge(1))

The annotation is the type; the rules are `annotated_types` bounds (`Ge`, `Gt`, `Le`, `Lt`)
or `OneOf` (`clfbench.methods.schema`). Parameters shared by several methods (the training
loop's, the inference engine's, an API client's) are declared once on the base class or mixin
they share; a subclass re-declares one to change its default (`Param.but`). `Classifier`
collects the declarations along the MRO and gives the class an `__init__` that only assigns
(in `param_order` when a class sets it, else in declaration order), then validates once
(`Classifier.validate_params`): types and ranges, then the class's explicit checks. Everything
that lists, checks or explains a parameter (`clfbench methods`, `--help`, the schema, grids,
`make_method`, `Classifier.load`) reads these declarations.

A plug-in method may instead write its own `__init__` with typed keyword arguments; its
parameters are then read from that signature (meanings from an optional `param_help` dict).
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import typing
from dataclasses import dataclass
from functools import cache
from types import NoneType
from typing import Any

from annotated_types import Ge, Le

from clfbench.methods.registry import get_method
from clfbench.methods.schema import OWN_CHECK, OneOf, check_values, constrain


class Param:
    """One parameter's declaration: `Param(default, help, *rules)`."""

    __slots__ = ("default", "help", "rules")

    def __init__(self, default: Any, help: str = "", *rules: Any) -> None:  # noqa: A002 - the field's name
        self.default, self.help, self.rules = default, help, tuple(rules)

    def but(self, default: Any = dataclasses.MISSING, help: str | None = None) -> Param:  # noqa: A002
        """The same declaration with another default and/or help (a subclass's own)."""
        return Param(self.default if default is dataclasses.MISSING else default,
                     self.help if help is None else help, *self.rules)

    def __repr__(self) -> str:
        return f"Param({self.default!r}, {self.help!r}{''.join(f', {r!r}' for r in self.rules)})"


#: Declarations shared by methods that share no base class.
MODEL = Param("minilm", "hub id, local folder or the offline alias minilm (also --model)")
DEVICE = Param(None, "cpu, cuda or mps (default: the GPU when present, else the CPU)")
SEED = Param(99, "training seed (also --seed)", Ge(0))
BATCH_SIZE = Param(32, "examples per batch (also --batch-size)", Ge(1))
MAX_LENGTH = Param(128, "tokens per input; longer texts are truncated (also --max-length)", Ge(1))
CLASS_WEIGHT = Param(None, "balanced: weight the loss by inverse class frequency (default unweighted)",
                     OneOf(("balanced",)))
EPOCHS = Param(3, "passes over the training data (also --epochs)", Ge(1))
WARMUP_RATIO = Param(0.1, "share of the steps with a linear learning-rate warm-up", Ge(0), Le(1))
WEIGHT_DECAY = Param(0.01, "AdamW weight decay", Ge(0))
# The prompt of the LLM methods (llm-prompt, llm-sft, llm-api, llm-dspy).
TEMPLATE = Param(None, "a prompt template YAML (default src/clfbench/prompts/default.yaml)")
PROMPT = Param(None, "overrides of the task's prompt (instruction, verbalizers, text_name)")
DESCRIPTIONS = Param(
    "auto", "auto (default; llm-sft: off): the labels' one-line descriptions in the prompt unless they "
            "leave a local model less than half of max_length for the query; on: always (refused if they "
            "do not fit); off: never", OneOf(("auto", "on", "off")))
LABEL_DESCRIPTIONS = Param(None, "a YAML/JSON file label -> one-line description (adds to or overrides "
                                 "the task's)")


def declared_params(klass: type) -> dict[str, Param]:
    """The parameters `klass` declares (its own and its bases'), in its signature's order;
    {} for a class whose `__init__` is hand-written (a plug-in): its signature is the truth."""
    if not getattr(klass.__init__, "_generated_", False):
        return {}
    return dict(klass._declared_params_)  # type: ignore[attr-defined]


def collect_params(klass: type) -> dict[str, Param]:
    """The `Param` declarations along `klass`'s MRO, in `param_order` (a class's own, or the
    nearest base's followed by what later subclasses declare), else in declaration order."""
    found: dict[str, Param] = {}
    order: tuple[str, ...] | None = None
    order_owner: type | None = None
    for k in reversed(klass.__mro__):
        own = vars(k)
        for name, value in own.items():
            if isinstance(value, Param):
                found[name] = value
            elif name in found and not name.startswith("_"):  # a plain value fixes it: no longer a parameter
                del found[name]
        if "param_order" in own:
            order, order_owner = tuple(own["param_order"]), k
    if order is None:
        return found
    missing = [n for n in order if n not in found]
    if missing:
        raise TypeError(f"{klass.__qualname__}.param_order names undeclared parameters: {', '.join(missing)}")
    # parameters declared below the class that set the order (a plug-in subclass) come last
    below = reversed(klass.__mro__[:klass.__mro__.index(order_owner)])
    later = [n for k in below for n, v in vars(k).items() if isinstance(v, Param) and n not in order]
    return {n: found[n] for n in (*order, *dict.fromkeys(later)) if n in found}


def param_annotations(klass: type, params: dict[str, Param] | None = None) -> dict[str, Any]:
    """Each declared parameter -> (its annotation as written, the nearest class annotating it)."""
    params = declared_params(klass) if params is None else params
    out: dict[str, Any] = {}
    for k in klass.__mro__:
        for name, ann in vars(k).get("__annotations__", {}).items():
            if name in params and name not in out:
                out[name] = (ann, k)
    return out


def param_types(klass: type, params: dict[str, Param] | None = None) -> dict[str, Any]:
    """Each declared parameter -> its type (the annotation evaluated in its class's module)."""
    out = {}
    for name, (ann, k) in param_annotations(klass, params).items():
        if isinstance(ann, str):
            ann = eval(ann, vars(sys.modules[k.__module__]), dict(vars(k)))  # noqa: S307 - our own source
        out[name] = ann
    return out


def build_init(klass: type) -> None:
    """Give `klass` an `__init__(self, name=default, ...)` over its declared parameters that
    only assigns them, then calls `self.validate_params()`."""
    params = collect_params(klass)
    klass._declared_params_ = params
    anns = param_annotations(klass, params)
    missing = [n for n in params if n not in anns]
    if missing:
        raise TypeError(f"{klass.__qualname__}: parameter(s) {', '.join(missing)} declared without a type annotation")
    signature = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=p.default,
                             annotation=anns[n][0]) for n, p in params.items()],
        return_annotation="None",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        for name in params:
            setattr(self, name, bound.arguments.get(name, params[name].default))
        self.validate_params()

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    __init__.__qualname__ = f"{klass.__qualname__}.__init__"
    __init__.__doc__ = f"Parameters of {klass.__qualname__}: see its declarations (`clfbench methods`)."
    __init__._generated_ = True  # type: ignore[attr-defined]
    klass.__init__ = __init__


@dataclass(frozen=True)
class ParamInfo:
    """One parameter of a method: its name, default and one-line meaning."""

    name: str
    default: Any
    help: str


def _declared(klass: type, name: str, field: str, plugin_dict: str, missing: Any) -> Any:
    """`field` of parameter `name`'s declaration on `klass`; for a plug-in with a hand-written
    `__init__`, the nearest `plugin_dict` ClassVar's entry; else `missing`."""
    declared = declared_params(klass) or collect_params(klass)  # (a plug-in may subclass a method)
    if name in declared:
        return getattr(declared[name], field)
    for k in klass.__mro__:
        own = vars(k).get(plugin_dict) or {}
        if name in own:
            return own[name]
    return missing


def param_help(klass: type, name: str) -> str:
    """The meaning of `name` for `klass` (its declaration's help, or a plug-in's `param_help`)."""
    return _declared(klass, name, "help", "param_help", "")


def method_params(method: str) -> list[ParamInfo]:
    """The parameters of a registered method in signature order (what `--param` accepts)."""
    klass = get_method(method)
    out = []
    for p in list(inspect.signature(klass.__init__).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        out.append(ParamInfo(p.name, default, param_help(klass, p.name)))
    return out


def format_default(value: Any) -> str:
    """A default as a user would type it after `--param KEY=` (YAML: null, true, [a, b])."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_default(v) for v in value) + "]"
    return str(value)


# --- checking values against the declarations (the strict machinery is `schema`) ----------
def param_rules(klass: type, name: str) -> tuple[Any, ...]:
    """The rules of parameter `name` of `klass` (its declaration's, or a plug-in's `param_rules`)."""
    return tuple(_declared(klass, name, "rules", "param_rules", ()))


@cache
def method_hints(klass: type) -> dict[str, Any]:
    """Each parameter of `klass` -> its type hint with its rules applied: the parameters it
    declares; for a plug-in with a hand-written `__init__`, that signature's hints (over the
    declarations of a method it subclasses)."""
    try:
        if declared_params(klass):
            hints = param_types(klass)
        else:
            inherited = collect_params(klass)
            hints = {**(param_types(klass, inherited) if inherited else {}),
                     **typing.get_type_hints(klass.__init__, include_extras=True)}
    except (NameError, TypeError):  # a plug-in with hints that cannot be resolved: unchecked
        return {}
    hints.pop("return", None)
    rules = {k: param_rules(klass, k) for k in hints}
    return {k: constrain(NoneType if h is None else h, rules[k])
            for k, h in hints.items() if OWN_CHECK not in rules[k]}


def check_params(klass: type, params: dict[str, Any], where: str) -> None:
    """Every value of `params` against its type and rule; `where` names the method."""
    check_values(method_hints(klass), params, f"{where}: parameter ")
