"""Classification prompts for LLMs: templates kept as data, few-shot sampling, answer parsing.

One `PromptBuilder` serves every LLM method (local prompting, LoRA SFT, API models), so
they all see the same words. The template is a YAML file of Jinja2 strings
(`prompts/default.yaml`; override per run with `--param template=FILE`); the task's
`prompt:` block gives the instruction (which states the answer format), the verbalizers
(label name -> answer word) and, optionally, `label_descriptions` (label name -> one line),
which the template renders after the instruction (`labels_block`) unless `descriptions="off"`.

Few-shot layout (chat): the instruction opens the first user turn; each example is a
user turn followed by an assistant turn holding its answer word; the query is the last
user turn. Plain layout (no chat template): instruction, then `Sentence: ...\\nAnswer: word`
blocks, ending with the query and `Answer:`. The instruction is there with 0 or K shots.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, StrictUndefined, TemplateError

from clfbench.data.files import read_yaml, yaml_load
from clfbench.data.tasks import check_label_descriptions
from clfbench.data.texts import INVALID, LabeledTexts
from clfbench.errors import ClfbenchError

PROMPT_DIR = Path(__file__).resolve().parents[1] / "prompts"
DEFAULT_TEMPLATE = PROMPT_DIR / "default.yaml"
TEMPLATE_KEYS = (
    "system", "default_instruction", "labels_block", "input", "first_user", "user", "answer_prefix",
    "plain_separator",
)
DESCRIPTION_MODES = ("auto", "on", "off")
#: Whether a beginning-of-text token starts the prompt: as the tokenizer does, always, never.
BOS_POLICIES = ("auto", "always", "never")

Shot = tuple[str, "str | None", int]

_env = Environment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


def normalize_answer(s: str) -> str:
    """Lower case, NFKC, punctuation -> space, whitespace collapsed: how outputs are compared."""
    s = unicodedata.normalize("NFKC", s).casefold()
    s = re.sub(r"[\W_]+", " ", s)
    return " ".join(s.split())


def load_template(path: str | Path | None = None) -> tuple[dict[str, str], str, str]:
    """(fields, raw file text, path) of a template file; the default when `path` is None."""
    path = Path(path) if path else DEFAULT_TEMPLATE
    data = read_yaml(path, "prompt template file")
    raw = path.read_text(encoding="utf-8")
    if not isinstance(data, dict):
        raise ClfbenchError(f"{path}: a prompt template is a mapping of {', '.join(TEMPLATE_KEYS)}")
    unknown = sorted(set(data) - set(TEMPLATE_KEYS))
    if unknown:
        raise ClfbenchError(
            f"{path}: unknown template key(s) {', '.join(unknown)}; known: {', '.join(TEMPLATE_KEYS)}"
        )
    defaults = data if path == DEFAULT_TEMPLATE else yaml_load(DEFAULT_TEMPLATE.read_text("utf-8"))
    fields = {k: data.get(k, defaults.get(k)) for k in TEMPLATE_KEYS}
    for k, v in fields.items():
        if v is None:
            fields[k] = ""
        elif not isinstance(v, str):
            raise ClfbenchError(f"{path}: template key {k!r} must be a string")
        try:
            _env.from_string(fields[k])
        except TemplateError as e:
            raise ClfbenchError(f"{path}: template key {k!r}: {e}") from None
    return fields, raw, str(path)


def read_label_descriptions(path: str | Path, labels: list[str] | None = None) -> dict[str, str]:
    """A user's label descriptions file (YAML or JSON): a mapping label -> one-line text
    (checked against `labels` when given)."""
    data = read_yaml(path, "label descriptions file")
    return check_label_descriptions(data, labels, str(path))


def inline_descriptions(params: dict[str, Any], builder: PromptBuilder) -> dict[str, Any]:
    """An LLM method's parameters for method.json without its `label_descriptions` file: the
    file's descriptions go into the `prompt` parameter and the path is dropped, so the saved
    model reloads (and renders the same prompt) where the file is not."""
    if not params.get("label_descriptions"):
        return params
    prompt = {**(params.get("prompt") or {}), "label_descriptions": dict(builder.all_descriptions)}
    return {**params, "prompt": prompt, "label_descriptions": None}


def _display(name: str | None, fallback: str) -> str:
    name = (name or fallback).replace("_", " ").strip()
    return name[:1].upper() + name[1:]


def method_builder(method: Any, template: str | None) -> PromptBuilder:
    """The PromptBuilder of an LLM method's run (its labels known): its prompt, `template`,
    and its `descriptions` / `label_descriptions` parameters."""
    return PromptBuilder(method.prompt or {}, method.labels, template, method.descriptions,
                         method.label_descriptions)


class PromptBuilder:
    """Renders classification prompts (chat messages or plain text) and parses answers.

    `prompt` is the task's prompt block: `instruction`, `verbalizers` (label -> word),
    `text_name`, `pair_name`, `label_descriptions` (label -> one line); `{}` builds a default
    from the label names. `descriptions="off"` leaves the descriptions out of the prompt (an
    A/B of the same grid); "auto" shows them unless a local model's PromptEncoder finds they
    leave less than half of `max_length` for the query (`drop_descriptions`, recorded);
    `descriptions_file` adds or overrides descriptions from a file.
    """

    def __init__(self, prompt: dict | None, label_names: list[str], template: str | None = None,
                 descriptions: str = "auto", descriptions_file: str | None = None):
        prompt = dict(prompt or {})
        self.label_names = list(label_names)
        self.template, self.template_text, self.template_path = load_template(template)
        verb = prompt.get("verbalizers") or {}
        if not isinstance(verb, dict):
            raise ClfbenchError("prompt.verbalizers: expected a mapping label -> answer word")
        unknown = sorted(set(map(str, verb)) - set(self.label_names))
        if unknown:
            raise ClfbenchError(
                f"prompt.verbalizers: unknown label(s) {', '.join(unknown)}; labels: {', '.join(self.label_names)}"
            )
        self.verbalizers: list[str] = [str(verb.get(n, n)).strip() for n in self.label_names]
        norm = [normalize_answer(v) for v in self.verbalizers]
        for i, v in enumerate(norm):
            if not v:
                raise ClfbenchError(f"prompt.verbalizers: label {self.label_names[i]!r} has an empty answer word")
            if norm.index(v) != i:
                raise ClfbenchError(
                    f"prompt.verbalizers: labels {self.label_names[norm.index(v)]!r} and "
                    f"{self.label_names[i]!r} have the same answer word {v!r}"
                )
        self._norm = norm
        self.text_name = _display(prompt.get("text_name"), "text")
        self.pair_name = _display(prompt.get("pair_name"), "text 2")
        if descriptions not in DESCRIPTION_MODES:
            raise ClfbenchError(f"descriptions={descriptions!r}; expected one of {', '.join(DESCRIPTION_MODES)}")
        given = check_label_descriptions(prompt.get("label_descriptions") or {}, self.label_names,
                                         "prompt.label_descriptions")
        if descriptions_file:
            given.update(read_label_descriptions(descriptions_file, self.label_names))
        self.descriptions_mode = descriptions
        self.all_descriptions = dict(given)  # the task's and the file's, shown or not
        #: label -> description, in label order: those the prompt shows (none when off)
        self.label_descriptions = {n: given[n] for n in self.label_names if n in given} if descriptions != "off" else {}
        self.descriptions_dropped: str | None = None  # why "auto" left them out, if it did
        self.instruction = str(prompt.get("instruction") or "").strip() or self._render(
            "default_instruction"
        )
        self.labels_block = self._render("labels_block").strip()

    def drop_descriptions(self, why: str) -> None:
        """Leave the descriptions out ("auto" mode only: an explicit "on" is kept or refused)."""
        self.label_descriptions, self.descriptions_dropped = {}, why
        self.labels_block = self._render("labels_block").strip()

    # --- rendering -----------------------------------------------------------------------
    def descriptions(self) -> list[tuple[str, str]]:
        """(answer word, description) of each described label, in label order (empty when off)."""
        return [(self.verbalizers[i], self.label_descriptions[n]) for i, n in enumerate(self.label_names)
                if n in self.label_descriptions]

    def _render(self, key: str, **kw: Any) -> str:
        ctx = {
            "answers": self.verbalizers, "labels": self.label_names, "text_name": self.text_name,
            "pair_name": self.pair_name, "instruction": getattr(self, "instruction", ""),
            "descriptions": self.descriptions(), "labels_block": getattr(self, "labels_block", ""),
            "text": None, "pair": None, **kw,
        }
        return _env.from_string(self.template[key]).render(**ctx)

    def render_input(self, text: str, pair: str | None) -> str:
        """One example's input block (field names and texts), without the answer."""
        return self._render("input", text=text, pair=pair)

    def answer(self, label: int, chat: bool = True) -> str:
        """The answer text for a label: the word itself in chat, ' word' after `Answer:` in plain."""
        return self.verbalizers[label] if chat else " " + self.verbalizers[label]

    def messages(self, text: str, pair: str | None, shots: list[Shot]) -> list[dict[str, str]]:
        """Chat messages: [system], then user/assistant turns per shot, then the query's user turn."""
        out: list[dict[str, str]] = []
        system = self._render("system").strip()
        if system:
            out.append({"role": "system", "content": system})
        examples = [(t, p, y) for t, p, y in shots] + [(text, pair, None)]
        for i, (t, p, y) in enumerate(examples):
            inp = self.render_input(t, p)
            content = self._render("first_user" if i == 0 else "user", input=inp)
            out.append({"role": "user", "content": content})
            if y is not None:
                out.append({"role": "assistant", "content": self.answer(int(y), chat=True)})
        return out

    def render_plain(self, text: str, pair: str | None, shots: list[Shot]) -> str:
        """The plain-text prompt for tokenizers without a chat template; ends with `Answer:`."""
        prefix = self._render("answer_prefix")
        sep = self._render("plain_separator")
        blocks = [self.instruction] + ([self.labels_block] if self.labels_block else [])
        for t, p, y in shots:
            blocks.append(self.render_input(t, p) + "\n" + prefix + self.answer(int(y), chat=False))
        blocks.append(self.render_input(text, pair) + "\n" + prefix)
        return sep.join(blocks)

    def plain_answer_end(self) -> str:
        """What follows a few-shot answer in the plain layout (the separator to the next block)."""
        return self._render("plain_separator")

    def ambiguous_answers(self) -> list[tuple[str, str]]:
        """(label, label) pairs whose answer words are ambiguous: the first's normalised
        words are a prefix of the second's ("description" / "description of a person")."""
        words = [v.split() for v in self._norm]
        return [
            (self.label_names[i], self.label_names[j])
            for i, a in enumerate(words) for j, b in enumerate(words)
            if i != j and len(a) < len(b) and b[: len(a)] == a
        ]

    def describe(self) -> dict[str, Any]:
        """What a run saves about its prompt: template text and path, instruction, verbalizers."""
        return {
            "template_path": self.template_path,
            "template": self.template_text,
            "instruction": self.instruction,
            "verbalizers": dict(zip(self.label_names, self.verbalizers)),
            "text_name": self.text_name,
            "pair_name": self.pair_name,
            "descriptions": self.descriptions_mode,
            "descriptions_dropped": self.descriptions_dropped,
            "label_descriptions": dict(self.label_descriptions) or None,
            "labels_block": self.labels_block or None,
        }

    # --- parsing -------------------------------------------------------------------------
    def parse(self, output: str) -> int:
        """Label id of the first answer word in `output` (normalised), or INVALID (-1).

        Words match whole words only; where two answer words start at the same place the
        longer wins ("not entailment" over "not"). `<think>...</think>` blocks are ignored.
        """
        words = normalize_answer(_THINK.sub(" ", output)).split()
        best: tuple[int, int, int] | None = None  # (start, -length, label)
        for label, verb in enumerate(self._norm):
            vw = verb.split()
            for start in range(len(words) - len(vw) + 1):
                if words[start : start + len(vw)] == vw:
                    cand = (start, -len(vw), label)
                    if best is None or cand < best:
                        best = cand
                    break
        return INVALID if best is None else best[2]


def _grouped(labels: list[int]) -> bool:
    """True when each class's examples form one block and some class has two or more."""
    if len(set(labels)) == len(labels):
        return False
    blocks = [labels[0]] + [b for a, b in zip(labels, labels[1:]) if a != b]
    return len(blocks) == len(set(blocks))


def sample_shots(train: LabeledTexts, k: int, seed: int) -> list[int]:
    """Indices of `k` few-shot examples: balanced over classes, seeded, in shuffled order.

    Each class gets k // n_classes examples (classes chosen at random get one more;
    a class with too few examples gives its share to the others). The order is shuffled
    and re-shuffled while it is grouped by label, so examples never come class by class.
    """
    if k <= 0:
        return []
    if k > len(train):
        raise ClfbenchError(f"shots={k}: the training split has only {len(train)} examples")
    rng = np.random.default_rng(seed)
    classes = [c for c in range(train.n_labels) if (train.labels == c).any()]
    pools = {c: list(rng.permutation(np.flatnonzero(train.labels == c))) for c in classes}
    take = dict.fromkeys(classes, 0)
    order = list(rng.permutation(classes))
    while sum(take.values()) < k:  # round-robin over classes in a random order
        progressed = False
        for c in order:
            if sum(take.values()) >= k:
                break
            if take[c] < len(pools[c]):
                take[c] += 1
                progressed = True
        if not progressed:
            break
    chosen = [int(i) for c in classes for i in pools[c][: take[c]]]
    labels = train.labels
    for _ in range(100):
        chosen = [int(i) for i in rng.permutation(chosen)]
        if not _grouped([int(labels[i]) for i in chosen]):
            break
    return chosen


__all__ = ["INVALID", "PromptBuilder", "check_label_descriptions", "inline_descriptions", "load_template",
           "normalize_answer", "read_label_descriptions", "sample_shots"]
