"""Causal LMs as classifiers: loading, prompt tokenization, label scoring, generation.

Shared by `llm-prompt` and `llm-sft`. A prompt is rendered to one string (the chat template
or the plain layout) and tokenized ONCE, as a whole, exactly as the model would see it:

    [prefix: BOS?, system, instruction, few-shot turns, the query's field label]
    [query text] [middle: the second field's label] [query pair] [suffix: up to the answer slot]

The query's fields (stripped of surrounding whitespace, as chat templates strip messages) are
found in the rendered string by character offsets; only they are ever
cut to fit `max_length` (longest field first, from the end, at the character where one of the
whole prompt's tokens starts, then re-tokenized). Tokenizing pieces separately would differ
from what the model sees: SentencePiece tokenizers (Llama-2, Mistral, Gemma) put a '▁' at the
start of every piece. The token prefix shared by every query (the template's prefix) has its
key/value cache computed once and reused (expanded over the batch, cut back per batch to the
tokens the batch really shares). Batches are left-padded (pads sit between the cached prefix
and the query) with explicit position ids, so scores do not depend on the batch or the cache.
Single-token answers are scored *packed* instead: a batch's queries are concatenated into one
row, without padding, behind one copy of the prefix cache, under a block-diagonal causal mask
(each query sees the prefix and its own earlier tokens) with each query's own position ids.
No compute goes to pads (17% of the rows of a padded 5-shot SST-2 batch of 8), and the prefix
is not repeated per prompt. The first packed batch is checked against the padded path, and
a model whose attention does not take such a mask falls back to padding (recorded: `packed`).
The packed mask replaces the model's own, sliding window included, so a batch with a prompt
longer than the model's `sliding_window` (Gemma-2/3, Mistral) is always scored padded.

BOS (`bos`): "auto" adds the special tokens the tokenizer itself adds (nothing for Qwen, BOS
for Llama), none when the rendered text already starts with BOS (chat templates that write
it); this is what lm-evaluation-harness does. "always" / "never" force it.

Scoring: each label's answer is the continuation of the prompt, tokenized as
lm-evaluation-harness does (`tokens(prompt + answer)[len(tokens(prompt)):]`); its
log-likelihood is the sum of the answer tokens' log-probs (optionally divided by the token
count), soft-maxed over labels. Answers are written as the template writes them (chat: the
assistant turn's text; plain: " word" after `Answer:`). When one label's answer is a prefix of
another's ("description" / "description of a person"), summed log-likelihoods can never pick
the longer one, so complete answers are scored instead: the answer followed by the first
token of what ends an answer (the end-of-turn token of a chat template, the separator of the
plain layout, eos for llm-sft). Single-token answers need one forward pass (last position
only); longer ones add one pass over the answer tokens for all labels.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from clfbench.data.texts import LabeledTexts, Texts
from clfbench.engines.prompts import BOS_POLICIES, PromptBuilder
from clfbench.errors import ClfbenchError

# Sentinels that mark the query fields: private-use characters, not whitespace (templates strip).
_T, _P = "\ue000CLFBENCH_TEXT\ue001", "\ue000CLFBENCH_PAIR\ue001"
GEN_MARGIN = 4  # new tokens allowed beyond the longest answer when generating
_PROBES = ("0", "a", "Z b", "the", "What")  # query texts: their prompts share the template's prefix tokens

log = logging.getLogger(__name__)
_warned: set[tuple[str, ...]] = set()

TRUNCATION_POLICY = (
    "only the query's text fields are cut (longest field first, tokens from the end, at the "
    "character where a token of the whole rendered prompt starts, trailing whitespace then "
    "dropped, as chat templates strip a message) so that the prompt fits max_length tokens; few-shot texts are cut the same way to a per-shot cap; the instruction, "
    "the few-shot answers and the answer slot are never cut"
)
BOS_DOC = {
    "auto": "as the tokenizer does by itself (add_special_tokens), as lm-evaluation-harness does",
    "always": "a BOS token before every prompt (unless the text already starts with one)",
    "never": "no BOS token added (a chat template may still write its own)",
}


def load_decoder_tokenizer(ref):
    """The model's tokenizer with left padding and a pad token (eos when it has none).

    Answer-token masks are positional, so pad == eos never hides an answer's eos.
    """
    from clfbench.engines.models import load_tokenizer as _load

    tok = _load(ref)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        if tok.eos_token_id is None:
            raise ClfbenchError(f"model {ref.name!r}: the tokenizer has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(name: str | None, device: str | None = None, dtype: str | None = None,
                   method: str = "this method"):
    """(model, tokenizer) for a hub id or local folder; bf16 weights on CUDA, fp32 elsewhere."""
    from transformers import AutoModelForCausalLM

    from clfbench.engines.device import pick_device
    from clfbench.engines.models import load, resolve_model

    ref = resolve_model(name, method)
    dev = pick_device(device)
    if dtype and not isinstance(getattr(torch, dtype, None), torch.dtype):
        raise ClfbenchError(f"dtype {dtype!r}: not a torch dtype (float32, bfloat16, float16)")
    torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    tok = load_decoder_tokenizer(ref)
    model = load(AutoModelForCausalLM.from_pretrained, ref, dtype=torch_dtype)
    model.to(dev).eval()
    return model, tok


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class PromptEncoder:
    """Token ids of classification prompts for one tokenizer, prompt and few-shot set.

    `answer_end`: the text that ends an answer (None: what the template writes after one, or
    eos where it writes nothing);
    `complete_answers`: score answer + the first token of `answer_end` (None: only when some
    label's answer is a prefix of another's).
    """

    builder: PromptBuilder
    tokenizer: Any
    shots: list[tuple[str, str | None, int]] = field(default_factory=list)
    use_chat_template: bool = True
    max_length: int = 512
    is_pair: bool = False
    bos: str = "auto"
    answer_end: str | None = None
    complete_answers: bool | None = None

    def __post_init__(self) -> None:
        if self.bos not in BOS_POLICIES:
            raise ClfbenchError(f"bos={self.bos!r}: expected one of {', '.join(BOS_POLICIES)}")
        self.chat = bool(self.use_chat_template and has_chat_template(self.tokenizer))
        self._lead = self._special_lead()
        # Few-shot texts: each example's text(+pair) cut to a share of max_length.
        k = len(self.shots)
        self.shot_cap = max(8, self.max_length // (2 * (k + 1))) if k else 0
        self.shots_truncated = 0
        self.rendered_shots = []
        for text, pair, label in self.shots:
            text, pair = text.strip(), (pair.strip() if pair is not None else None)
            t, p = self._cut_shot(text, pair)
            self.shots_truncated += int((t, p) != (text, pair))
            self.rendered_shots.append((t, p, label))
        full = self.render(_T, _P if self.is_pair else None)
        prefix, _, rest = full.partition(_T)
        if self.is_pair:
            middle, _, suffix = rest.partition(_P)
        else:
            middle, suffix = "", rest
        if _T in rest or _P in suffix or (self.is_pair and _P not in rest):
            raise ClfbenchError(f"{self.builder.template_path}: the template must show the text (and pair) exactly once")
        self.parts = (prefix, middle, suffix)
        self._set_answers()
        probes = [self.ids(self.prompt_text(t, t if self.is_pair else None)) for t in _PROBES]
        n_prefix = min(_common_prefix(probes[0], p) for p in probes[1:])
        self.prefix_ids = probes[0][:n_prefix]
        fixed = len(self.ids(self.prompt_text("", "" if self.is_pair else None)))
        if self.builder.descriptions_mode == "auto" and self.builder.label_descriptions and fixed > self.max_length // 2:
            why = (f"with them the prompt without the query takes {fixed} of max_length={self.max_length} "
                   "tokens (more than half); set descriptions=on and raise max_length to keep them")
            self.builder.drop_descriptions(why)
            if ("descriptions", why) not in _warned:
                _warned.add(("descriptions", why))
                log.warning("label descriptions left out: %s", why)
            return self.__post_init__()
        self.text_budget = self.max_length - fixed
        if self.text_budget < 8:
            raise ClfbenchError(
                f"max_length={self.max_length}: the prompt without the query text already takes "
                f"{fixed} tokens ({k} shots); raise max_length or use fewer shots"
            )

    # --- tokenization ----------------------------------------------------------------------
    def _special_lead(self) -> list[int]:
        """Token ids put before a prompt's own tokens under the BOS policy."""
        tok = self.tokenizer
        if self.bos == "never":
            return []
        if self.bos == "always":
            return [] if tok.bos_token_id is None else [tok.bos_token_id]
        probe = "a b"
        with_special = list(tok(probe)["input_ids"])
        plain = list(tok(probe, add_special_tokens=False)["input_ids"])
        for i in range(len(with_special) - len(plain) + 1):
            if with_special[i : i + len(plain)] == plain:
                return with_special[:i]  # special tokens the tokenizer appends are not used
        return []

    def ids(self, s: str) -> list[int]:
        """Token ids of a whole rendered text, as the model sees it (BOS policy applied)."""
        plain = list(self.tokenizer(s, add_special_tokens=False)["input_ids"]) if s else []
        bos = self.tokenizer.bos_token
        if bos and s.startswith(bos):
            return plain  # the text writes its own BOS (chat templates)
        return self._lead + plain

    def _offsets(self, s: str) -> list[tuple[int, int]]:
        """Character span of each token of `s` (special tokens added by the BOS policy excluded)."""
        if not getattr(self.tokenizer, "is_fast", False):
            raise ClfbenchError("cutting texts to max_length needs a fast tokenizer (offset mapping)")
        enc = self.tokenizer(s, add_special_tokens=False, return_offsets_mapping=True)
        return [tuple(o) for o in enc["offset_mapping"]]

    def _cut_shot(self, text: str, pair: str | None) -> tuple[str, str | None]:
        """A few-shot example's text and pair cut (longest first) to `shot_cap` tokens."""
        count = [len(self.tokenizer(x, add_special_tokens=False)["input_ids"]) if x else 0
                 for x in (text, pair or "")]
        if count[0] + count[1] <= self.shot_cap:
            return text, pair
        keep_t, keep_p = _fit(count[0], count[1] if pair is not None else None, self.shot_cap)
        t = self._cut(text, 0, self._offsets(text), keep_t)
        return t, (self._cut(pair, 0, self._offsets(pair), keep_p) if pair else pair)

    @staticmethod
    def _cut(text: str, start: int, offsets: list[tuple[int, int]], keep: int | None) -> str:
        """`text` (at character `start` of the string `offsets` describe) cut before the
        token that follows its first `keep` tokens, trailing whitespace dropped: a field is
        put in the prompt stripped, as chat templates write it (Llama-2-chat's
        `content.strip()`, Gemma's `content | trim`), so that the scored prompt is the
        template's own rendering of the cut text."""
        if keep is None:
            return text
        tokens = [o for o in offsets if o[1] > start and o[0] < start + len(text) and o[1] > o[0]]
        if keep >= len(tokens):
            return text
        return text[: max(0, tokens[keep][0] - start)].rstrip()

    def prompt_text(self, text: str, pair: str | None = None) -> str:
        """The rendered prompt for one query, up to the answer slot."""
        prefix, middle, suffix = self.parts
        return prefix + text + middle + (pair if pair is not None else "") + suffix

    def render(self, text: str, pair: str | None) -> str:
        """The prompt as a string, up to the answer slot (the chat template or the plain layout)."""
        if not self.chat:
            return self.builder.render_plain(text, pair, self.rendered_shots)
        msgs = self.builder.messages(text, pair, self.rendered_shots)
        return self.tokenizer.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=True, enable_thinking=False
        )

    def continuation(self, context: str, answer: str) -> list[int]:
        """Token ids of `answer` after `context`, as lm-evaluation-harness cuts them."""
        return self.ids(context + answer)[len(self.ids(context)):]

    # --- answers ---------------------------------------------------------------------------
    def _template_answers(self) -> tuple[list[str], str]:
        """Each label's answer text as the prompt writes it after the answer slot, and the
        text the template writes after an answer."""
        b = self.builder
        n = len(b.verbalizers)
        if not self.chat:
            return [b.answer(i, chat=False) for i in range(n)], b.plain_answer_end()
        pair = "x" if self.is_pair else None
        context = self.render("x", pair)
        msgs = b.messages("x", pair, self.rendered_shots)
        answers, ends = [], set()
        for i, word in enumerate(b.verbalizers):
            full = self.tokenizer.apply_chat_template(
                msgs + [{"role": "assistant", "content": b.answer(i, chat=True)}], tokenize=False,
                add_generation_prompt=False, enable_thinking=False,
            )
            rest = full[len(context):] if full.startswith(context) else ""
            at = rest.find(word)
            if at < 0 or rest[:at].strip():
                answers.append(b.answer(i, chat=True))
                ends.add("")
            else:
                answers.append(rest[: at + len(word)])
                ends.add(rest[at + len(word):])
        return answers, (ends.pop() if len(ends) == 1 else "")

    def _set_answers(self) -> None:
        """Answer texts and ids, ambiguity, and what is scored for each label."""
        b = self.builder
        self.answer_texts, template_end = self._template_answers()
        context = self.prompt_text("x", "x" if self.is_pair else None)
        self.answer_ids = [self.continuation(context, a) for a in self.answer_texts]
        for i, ids in enumerate(self.answer_ids):
            if not ids:
                raise ClfbenchError(f"verbalizer {b.verbalizers[i]!r} tokenizes to nothing")
        self.max_answer_tokens = max(len(a) for a in self.answer_ids)
        names = b.label_names
        pairs = set(b.ambiguous_answers())
        for i, a in enumerate(self.answer_ids):
            for j, c in enumerate(self.answer_ids):
                if i != j and len(a) < len(c) and c[: len(a)] == a:
                    pairs.add((names[i], names[j]))
        self.ambiguous = sorted(pairs)
        # what ends an answer: given, else what the template writes after one, else eos
        end = self.answer_end if self.answer_end is not None else template_end or self.tokenizer.eos_token or ""
        self.complete = bool(self.ambiguous) if self.complete_answers is None else bool(self.complete_answers)
        self.end_token_text = ""
        if self.complete:
            self.end_token_text = self._first_token_text(context + self.answer_texts[0], end)
            if not self.end_token_text:
                raise ClfbenchError(
                    "complete answers need a text that ends an answer; the template writes none "
                    "after an answer and the tokenizer has no eos token"
                )
        self.score_texts = [a + self.end_token_text for a in self.answer_texts]
        self.score_ids = [self.continuation(context, a) for a in self.score_texts]
        if self.ambiguous:
            key = tuple(f"{x}|{y}" for x, y in self.ambiguous)
            if key not in _warned:
                _warned.add(key)
                shown = ", ".join(f"{b.verbalizers[names.index(x)]!r} / {b.verbalizers[names.index(y)]!r}"
                                  for x, y in self.ambiguous[:5])
                log.warning(
                    "label answers are ambiguous (one is a prefix of another: %s%s); %s",
                    shown, " ..." if len(self.ambiguous) > 5 else "",
                    "scoring complete answers (answer + its end token)" if self.complete
                    else "complete_answers=False: the longer answers can never win",
                )

    def _first_token_text(self, context: str, end: str) -> str:
        """`end` up to its first token that is not blank, tokenized after `context` (the
        end-of-turn token of " </s>", the newline of "\n\n")."""
        if not end:
            return ""
        s = context + end
        spans = [(a, z) for a, z in self._offsets(s) if z > len(context) and z > a]
        for _, z in spans:
            if s[len(context):z].strip():
                return s[len(context):z]
        return s[len(context):spans[0][1]] if spans else end

    # --- queries -----------------------------------------------------------------------------
    def encode(self, text: str, pair: str | None = None) -> tuple[list[int], bool]:
        """(the whole prompt's token ids, whether the text was cut to fit max_length)."""
        _, _, ids, cut = self._fit_query(text, pair)
        return ids, cut

    def fit_query(self, text: str, pair: str | None = None) -> tuple[str, str | None, bool]:
        """(text, pair, cut): the query's fields as they are put in the prompt."""
        text, pair, _, cut = self._fit_query(text, pair)
        return text, pair, cut

    def _fit_query(self, text: str, pair: str | None) -> tuple[str, str | None, list[int], bool]:
        text, pair = text.strip(), (pair.strip() if pair is not None else None)  # as templates do
        cut = False
        for _ in range(64):
            s = self.prompt_text(text, pair)
            ids = self.ids(s)
            over = len(ids) - self.max_length
            if over <= 0:
                return text, pair, ids, cut
            cut = True
            offsets = self._offsets(s)
            t0 = len(self.parts[0])
            p0 = t0 + len(text) + len(self.parts[1])
            n_t = len(self._field_tokens(offsets, t0, text))
            n_p = len(self._field_tokens(offsets, p0, pair)) if pair is not None else None
            for extra in (0, 1):  # one more token when re-tokenizing moved a boundary
                keep_t, keep_p = _fit(n_t, n_p, n_t + (n_p or 0) - over - extra)
                new_t = self._cut(text, t0, offsets, keep_t)
                new_p = self._cut(pair, p0, offsets, keep_p) if pair is not None else None
                if (new_t, new_p) != (text, pair):
                    break
            text, pair = new_t, new_p
        raise ClfbenchError(f"could not cut a query to max_length={self.max_length} tokens")

    @staticmethod
    def _field_tokens(offsets: list[tuple[int, int]], start: int, text: str | None) -> list[tuple[int, int]]:
        if not text:
            return []
        return [o for o in offsets if o[1] > start and o[0] < start + len(text) and o[1] > o[0]]

    def encode_all(self, X: Texts) -> tuple[list[list[int]], int]:
        out, n_cut = [], 0
        for i in range(len(X)):
            ids, cut = self.encode(X.texts[i], X.pairs[i] if X.pairs is not None else None)
            out.append(ids)
            n_cut += int(cut)
        return out, n_cut

    def _bos_facts(self) -> dict[str, Any]:
        """The BOS policy and what it did to a real prompt: the tokens it put before the
        rendered text (none when a chat template writes BOS itself), and whether the template
        wrote BOS (then it is in the prompt whatever the policy)."""
        s = self.prompt_text("x", "x" if self.is_pair else None)
        ids = self.ids(s)
        plain = len(self.tokenizer(s, add_special_tokens=False)["input_ids"])
        bos = self.tokenizer.bos_token
        return {"policy": self.bos, "meaning": BOS_DOC[self.bos],
                "tokens_added": self.tokenizer.convert_ids_to_tokens(ids[: len(ids) - plain]),
                "written_by_template": bool(bos and s.startswith(bos))}

    def describe(self) -> dict[str, Any]:
        """What a run saves: the template, the rendered prompt, token counts, truncation policy."""
        verbs = self.builder.verbalizers
        return {
            **self.builder.describe(),
            "chat_template_applied": self.chat,
            "rendered_example": self.render("{text}", "{pair}" if self.is_pair else None),
            "answer_tokens": {v: len(a) for v, a in zip(verbs, self.answer_ids)},
            "answer_texts": dict(zip(verbs, self.answer_texts)),
            "bos": self._bos_facts(),
            "ambiguous_answers": [list(p) for p in self.ambiguous],
            "complete_answers": self.complete,
            "answer_end_token": self.end_token_text if self.complete else None,
            "prefix_tokens": len(self.prefix_ids),
            "max_length": self.max_length,
            "query_text_budget_tokens": self.text_budget,
            "shot_text_cap_tokens": self.shot_cap,
            "shots_truncated": self.shots_truncated,
            "truncation_policy": TRUNCATION_POLICY,
        }


def _fit(n_t: int, n_p: int | None, budget: int) -> tuple[int, int | None]:
    """Token counts to keep of text and pair, the longest cut first, to fit `budget`."""
    budget = max(0, budget)
    if n_t + (n_p or 0) <= budget:
        return n_t, n_p
    if n_p is None:
        return budget, None
    while n_t + n_p > budget:
        if n_t >= n_p:
            n_t -= 1
        else:
            n_p -= 1
    return n_t, n_p


def cache_argument(model: Any) -> str:
    """The name under which `model.forward` and `generate` take a key/value cache: `cache`
    since transformers renamed it (`past_key_values` then warns, and goes in 5.40), else
    `past_key_values`. A peft wrapper passes it on to the model it wraps."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def output_cache(out: Any) -> Any:
    """The key/value cache a forward pass returned, under either name."""
    return out["cache"] if "cache" in out else out["past_key_values"]


class CausalLMClassifier:
    """Scores or generates labels for a batch of queries with one model and PromptEncoder."""

    def __init__(self, model, encoder: PromptEncoder, batch_size: int = 8, use_prefix_cache: bool = True,
                 length_normalize: bool = False) -> None:
        self.model = model
        self.cache_kw = cache_argument(model)
        self.enc = encoder
        self.batch_size = max(1, int(batch_size))
        self.length_normalize = length_normalize
        window = getattr(model.config, "sliding_window", None)
        self.window = int(window) if window else None
        # A sliding-window cache drops old tokens; keep the prefix cache only when it cannot.
        self.use_prefix_cache = bool(use_prefix_cache and encoder.prefix_ids) and not (
            window and encoder.max_length + encoder.max_answer_tokens + GEN_MARGIN >= window
        )
        self._prefix_cache = None
        self._packed_ok: bool | None = None  # packed scoring checked against padded on first use
        self.pad_id = encoder.tokenizer.pad_token_id

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # --- batch building -------------------------------------------------------------------
    def prefix_cache(self):
        """The prefix's key/value cache (batch 1), computed once."""
        from transformers import DynamicCache

        if self._prefix_cache is None:
            ids = torch.tensor([self.enc.prefix_ids], device=self.device)
            cache = DynamicCache(config=self.model.config)
            with torch.inference_mode():
                self.model(input_ids=ids, **{self.cache_kw: cache}, use_cache=True, logits_to_keep=1)
            self._prefix_cache = cache
        return self._prefix_cache

    def reset_cache(self) -> None:
        self._prefix_cache = None

    def _shared_prefix(self, prompts: list[list[int]], cached: bool):
        """(P, cache): the number of prefix tokens every prompt of the batch starts with (each
        keeps at least one query token), and the prefix cache cut to them (None when P = 0)."""
        prefix = self.enc.prefix_ids
        P = min(min(_common_prefix(q, prefix) for q in prompts), min(map(len, prompts)) - 1) if cached else 0
        if P <= 0:
            return 0, None
        cache = copy.deepcopy(self.prefix_cache())
        if P < len(prefix):
            cache.crop(P - len(prefix))
        return P, cache

    def batch_inputs(self, prompts: list[list[int]], cached: bool) -> dict[str, Any]:
        """Model inputs for a batch of whole prompts: left-padded ids, attention mask, position
        ids, and the prefix cache cut to the tokens every prompt of the batch starts with."""
        P, cache = self._shared_prefix(prompts, cached)
        B = len(prompts)
        queries = [q[P:] for q in prompts]
        T = max(len(q) for q in queries)
        ids = [[self.pad_id] * (T - len(q)) + q for q in queries]
        qmask = torch.tensor([[0] * (T - len(q)) + [1] * len(q) for q in queries])
        if cache is not None:
            mask = torch.cat([torch.ones(B, P, dtype=torch.long), qmask], dim=1)
            pos = (P + qmask.cumsum(1) - 1).clamp(min=P)
            cache.batch_repeat_interleave(B)
            full_ids = [self.enc.prefix_ids[:P] + row for row in ids]
        else:
            mask = qmask
            pos = (mask.cumsum(1) - 1).clamp(min=0)
            full_ids = ids
        dev = self.device
        return {
            "input_ids": torch.tensor(ids, device=dev), "attention_mask": mask.to(dev),
            "position_ids": pos.to(dev), "past_key_values": cache,
            "full_ids": torch.tensor(full_ids, device=dev), "cached_tokens": P,
        }

    # --- scoring ---------------------------------------------------------------------------
    @torch.inference_mode()
    def score(self, X: Texts, cached: bool | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Log-likelihood (n, n_labels) of each label's answer, and token counts."""
        prompts, n_cut = self.enc.encode_all(X)
        cached = self.use_prefix_cache if cached is None else cached
        out = np.zeros((len(prompts), len(self.enc.score_ids)))
        for idx in _length_batches(prompts, self.batch_size):
            out[idx] = self._score_batch([prompts[i] for i in idx], cached)
        return out, self._info(prompts, n_cut)

    def _score_batch(self, prompts: list[list[int]], cached: bool) -> np.ndarray:
        answers = self.enc.score_ids
        multi = any(len(a) > 1 for a in answers)
        # The packed 4D mask replaces the model's own masks, sliding window included: a prompt
        # longer than the window (Gemma-2/3, Mistral) is scored padded, whatever the check said.
        fits = self.window is None or max(map(len, prompts)) <= self.window
        if not multi and fits and self._packed_ok is not False and self._mask_kind() is not None:
            packed = self._score_packed(prompts, cached)
            if self._packed_ok is None:  # once per classifier: packed must equal padded
                padded = self._score_padded(prompts, cached, multi)
                tol = 1e-3 if self.model.dtype == torch.float32 else 5e-2
                self._packed_ok = bool(np.abs(packed - padded).max() <= tol)
                if not self._packed_ok:
                    log.warning("packed scoring differs from padded scoring on this model "
                                "(max %.2e); scoring padded batches", np.abs(packed - padded).max())
                    return padded
            return packed
        return self._score_padded(prompts, cached, multi)

    def _mask_kind(self) -> torch.dtype | None:
        """The dtype of a custom 4D mask the model's attention takes (sdpa: bool, eager:
        additive float), or None (other kernels: score padded batches)."""
        impl = getattr(self.model.config, "_attn_implementation", None)
        return {"sdpa": torch.bool, "eager": self.model.dtype}.get(impl)

    def packed_inputs(self, prompts: list[list[int]], cached: bool) -> dict[str, Any]:
        """One row: the queries (after the prefix tokens they all share) back to back, a 4D
        block-diagonal causal mask over [shared prefix | queries], each query's own positions,
        and the index of each query's last token."""
        P, cache = self._shared_prefix(prompts, cached)
        queries = [q[P:] for q in prompts]
        lengths = torch.tensor([len(q) for q in queries])
        N = int(lengths.sum())
        seg = torch.repeat_interleave(torch.arange(len(queries)), lengths)
        pos = torch.cat([torch.arange(P, P + n) for n in lengths.tolist()])
        own = (seg[:, None] == seg[None, :]) & (pos[:, None] >= pos[None, :])
        allowed = torch.cat([torch.ones(N, P, dtype=torch.bool), own], dim=1)[None, None]
        kind = self._mask_kind()
        if kind is torch.bool:
            mask = allowed
        else:
            mask = torch.zeros(allowed.shape, dtype=kind).masked_fill(~allowed, torch.finfo(kind).min)
        dev = self.device
        return {
            "input_ids": torch.tensor([[t for q in queries for t in q]], device=dev),
            "attention_mask": mask.to(dev), "position_ids": pos[None].to(dev),
            "past_key_values": cache, "last": (lengths.cumsum(0) - 1).to(dev),
        }

    def _score_packed(self, prompts: list[list[int]], cached: bool) -> np.ndarray:
        inp = self.packed_inputs(prompts, cached)
        out = self.model(input_ids=inp["input_ids"], attention_mask=inp["attention_mask"],
                         position_ids=inp["position_ids"], **{self.cache_kw: inp["past_key_values"]},
                         use_cache=inp["past_key_values"] is not None, logits_to_keep=inp["last"])
        first = torch.log_softmax(out.logits[0].float(), dim=-1)  # (B, V): each query's last token
        return torch.stack([first[:, a[0]] for a in self.enc.score_ids], dim=1).cpu().numpy()

    def _score_padded(self, prompts: list[list[int]], cached: bool, multi: bool) -> np.ndarray:
        inp = self.batch_inputs(prompts, cached)
        from transformers import DynamicCache

        answers = self.enc.score_ids
        cache = inp["past_key_values"]
        if multi and cache is None:
            cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=inp["input_ids"], attention_mask=inp["attention_mask"],
            position_ids=inp["position_ids"], **{self.cache_kw: cache},
            use_cache=multi or cache is not None, logits_to_keep=1,
        )
        first = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
        B = len(prompts)
        scores = torch.stack([first[:, a[0]] for a in answers], dim=1)  # (B, L)
        if multi:
            scores = scores + self._continuations(output_cache(out), inp, B)
        if self.length_normalize:
            scores = scores / torch.tensor([len(a) for a in answers], device=scores.device)
        return scores.cpu().numpy()

    def _continuations(self, cache, inp: dict[str, Any], B: int) -> torch.Tensor:
        """Sum of log-probs of answer tokens 2..m for every label, labels in row chunks."""
        answers = self.enc.score_ids
        L = len(answers)
        multi_labels = [i for i, a in enumerate(answers) if len(a) > 1]
        extra = torch.zeros(B, L, device=self.device)
        mask, last_pos = inp["attention_mask"], inp["position_ids"][:, -1]
        chunk = max(1, 64 // B)
        for start in range(0, len(multi_labels), chunk):
            labs = multi_labels[start : start + chunk]
            n = len(labs)
            A = max(len(answers[i]) for i in labs) - 1
            ids = torch.full((n, A), self.pad_id, dtype=torch.long)
            for j, lab in enumerate(labs):
                ids[j, : len(answers[lab]) - 1] = torch.tensor(answers[lab][:-1])
            ids = ids.to(self.device).repeat(B, 1)  # row b*n + j: example b, label labs[j]
            c = copy.deepcopy(cache)
            c.batch_repeat_interleave(n)
            m = torch.cat([mask.repeat_interleave(n, 0), torch.ones(B * n, A, dtype=mask.dtype, device=mask.device)], 1)
            pos = last_pos.repeat_interleave(n, 0)[:, None] + torch.arange(1, A + 1, device=self.device)
            logits = self.model(input_ids=ids, attention_mask=m, position_ids=pos, **{self.cache_kw: c},
                                use_cache=True).logits.float()
            logp = torch.log_softmax(logits, dim=-1).view(B, n, A, -1)
            for j, lab in enumerate(labs):
                tgt = torch.tensor(answers[lab][1:], device=self.device)
                extra[:, lab] = logp[:, j, torch.arange(len(tgt)), tgt].sum(-1)
        return extra

    # --- generation ------------------------------------------------------------------------
    def greedy_config(self, max_new_tokens: int, min_new_tokens: int | None = None):
        """An explicit greedy GenerationConfig: no sampling, beams, penalties or other logits
        processors, whatever the checkpoint's generation_config sets; its eos/bos kept."""
        from transformers import GenerationConfig

        own = getattr(self.model, "generation_config", None)
        eos = getattr(own, "eos_token_id", None)
        if eos is None:
            eos = self.enc.tokenizer.eos_token_id
        return GenerationConfig(
            do_sample=False, num_beams=1, temperature=1.0, top_k=50, top_p=1.0, min_p=None,
            typical_p=1.0, repetition_penalty=1.0, encoder_repetition_penalty=1.0,
            no_repeat_ngram_size=0, encoder_no_repeat_ngram_size=0, length_penalty=1.0,
            max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens or 0,
            num_return_sequences=1, pad_token_id=self.pad_id, eos_token_id=eos,
            bos_token_id=getattr(own, "bos_token_id", None), use_cache=True,
        )

    @torch.inference_mode()
    def generate(self, X: Texts, max_new_tokens: int | None = None, min_new_tokens: int | None = None,
                 cached: bool | None = None) -> tuple[list[str], dict[str, Any]]:
        """Greedy outputs (decoded, special tokens dropped), and token counts.

        Greedy means greedy: the checkpoint's generation_config (repetition_penalty,
        do_sample, temperature, bad words, forced tokens...) is set aside for the call."""
        prompts, n_cut = self.enc.encode_all(X)
        cached = self.use_prefix_cache if cached is None else cached
        max_new = max_new_tokens or self.enc.max_answer_tokens + GEN_MARGIN
        cfg = self.greedy_config(max_new, min_new_tokens)
        texts: list[str] = [""] * len(prompts)
        n_generated = 0
        tok = self.enc.tokenizer
        with _only_config(self.model, cfg):
            for idx in _length_batches(prompts, self.batch_size):
                inp = self.batch_inputs([prompts[i] for i in idx], cached)
                gen = self.model.generate(
                    input_ids=inp["full_ids"], attention_mask=inp["attention_mask"],
                    **{self.cache_kw: inp["past_key_values"]}, generation_config=cfg,
                )
                new = gen[:, inp["full_ids"].shape[1]:]
                for j, i in enumerate(idx):
                    row = new[j].tolist()
                    n_generated += sum(1 for t in row if t != self.pad_id)
                    texts[i] = tok.decode(row, skip_special_tokens=True)
        info = self._info(prompts, n_cut)
        info["generated_tokens_mean"] = n_generated / max(1, len(prompts))
        info["max_new_tokens"] = max_new
        info["generation_config"] = {k: v for k, v in cfg.to_diff_dict().items() if k != "transformers_version"}
        return texts, info

    def _info(self, prompts: list[list[int]], n_cut: int) -> dict[str, Any]:
        lengths = [len(q) for q in prompts]
        return {
            "n_examples": len(prompts),
            "prompt_tokens_mean": float(np.mean(lengths)) if lengths else 0.0,
            "prompt_tokens_max": int(max(lengths)) if lengths else 0,
            "prefix_tokens": len(self.enc.prefix_ids),
            "truncated": n_cut,
            "prefix_cache": self.use_prefix_cache,
            "packed": bool(self._packed_ok),
            "bos": self.enc.bos,
            "complete_answers": self.enc.complete,
        }


@contextmanager
def _only_config(model, cfg) -> Iterator[None]:
    """Within the block the model's own generation_config holds only its special tokens, so
    none of the checkpoint's other settings fills a value the greedy config leaves unset."""
    from transformers import GenerationConfig

    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    saved = target.generation_config
    target.generation_config = GenerationConfig(
        eos_token_id=cfg.eos_token_id, bos_token_id=cfg.bos_token_id, pad_token_id=cfg.pad_token_id,
    )
    try:
        yield
    finally:
        target.generation_config = saved


def _length_batches(queries: list[list[int]], batch_size: int) -> list[list[int]]:
    """Index batches of similar length (longest first): each batch pads to its own longest."""
    order = sorted(range(len(queries)), key=lambda i: -len(queries[i]))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def shots_from(train: LabeledTexts, idx: list[int]) -> list[tuple[str, str | None, int]]:
    return [
        (train.texts[i], train.pairs[i] if train.pairs is not None else None, int(train.labels[i]))
        for i in idx
    ]
