"""Causal LMs as classifiers: loading, prompt tokenization, label scoring, generation.

Shared by `llm-prompt` and `llm-sft`. A prompt is tokenized in segments:

    [prefix: system, instruction, few-shot turns, the query's field label]
    [query text] [middle: the second field's label] [query pair] [suffix: up to the answer slot]

The prefix is the same for every query, so its key/value cache is computed once and
reused (expanded over the batch). Only the query's text and pair are ever cut to fit
`max_length` (longest field first, from the end); the instruction, the few-shot answers and
the answer slot never are. Few-shot texts are cut to a per-shot cap the same way. Batches
are left-padded (pads sit between the cached prefix and the query) with explicit position
ids, so a query's scores do not depend on its batch or on the cache.

Scoring: the log-likelihood of each label's answer tokens as the continuation of the
prompt. Single-token answers need one forward pass (last position only); multi-token
answers add one pass over the answer tokens for all labels; the sum of token log-probs
(optionally divided by the token count) is soft-maxed over labels into probabilities.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from clfbench.data import LabeledTexts, Texts
from clfbench.errors import ClfbenchError
from clfbench.prompts import PromptBuilder

_T, _P = "\x1eCLFBENCH_TEXT\x1e", "\x1eCLFBENCH_PAIR\x1e"  # sentinels that mark the query fields
GEN_MARGIN = 4  # new tokens allowed beyond the longest answer when generating

TRUNCATION_POLICY = (
    "only the query's text fields are cut (longest field first, tokens from the end) so that "
    "the prompt fits max_length tokens; few-shot texts are cut the same way to a per-shot cap; "
    "the instruction, the few-shot answers and the answer slot are never cut"
)


def load_tokenizer(ref):
    """The model's tokenizer with left padding and a pad token (eos when it has none).

    Answer-token masks are positional, so pad == eos never hides an answer's eos.
    """
    from clfbench.models import load_tokenizer as _load

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

    from clfbench.device import pick_device
    from clfbench.models import load, resolve_model

    ref = resolve_model(name, method)
    dev = pick_device(device)
    if dtype and not isinstance(getattr(torch, dtype, None), torch.dtype):
        raise ClfbenchError(f"dtype {dtype!r}: not a torch dtype (float32, bfloat16, float16)")
    torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    tok = load_tokenizer(ref)
    model = load(AutoModelForCausalLM.from_pretrained, ref, dtype=torch_dtype)
    model.to(dev).eval()
    return model, tok


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _split_trailing_space(s: str) -> tuple[str, str]:
    """Move trailing spaces/tabs of a segment into the next one (`Sentence: ` + ` text`)."""
    stripped = s.rstrip(" \t")
    return stripped, s[len(stripped):]


@dataclass
class PromptEncoder:
    """Token ids of classification prompts for one tokenizer, prompt and few-shot set."""

    builder: PromptBuilder
    tokenizer: Any
    shots: list[tuple[str, str | None, int]] = field(default_factory=list)
    use_chat_template: bool = True
    max_length: int = 512
    is_pair: bool = False

    def __post_init__(self) -> None:
        tok = self.tokenizer
        self.chat = bool(self.use_chat_template and has_chat_template(tok))
        self.answer_ids = [self._ids(self.builder.answer(i, self.chat)) for i in range(len(self.builder.verbalizers))]
        for i, ids in enumerate(self.answer_ids):
            if not ids:
                raise ClfbenchError(f"verbalizer {self.builder.verbalizers[i]!r} tokenizes to nothing")
        self.max_answer_tokens = max(len(a) for a in self.answer_ids)
        # Few-shot texts: each example's text(+pair) cut to a share of max_length.
        k = len(self.shots)
        self.shot_cap = max(8, self.max_length // (2 * (k + 1))) if k else 0
        self.shots_truncated = 0
        cut_shots = []
        for text, pair, label in self.shots:
            t_ids, p_ids = self._ids(text), (self._ids(pair) if pair is not None else None)
            t_ids, p_ids, cut = _fit(t_ids, p_ids, self.shot_cap)
            self.shots_truncated += int(cut)
            t = tok.decode(t_ids) if cut else text
            p = (tok.decode(p_ids) if cut else pair) if pair is not None else None
            cut_shots.append((t, p, label))
        self.rendered_shots = cut_shots
        full = self.render(_T, _P if self.is_pair else None)
        prefix, _, rest = full.partition(_T)
        if self.is_pair:
            middle, _, suffix = rest.partition(_P)
        else:
            middle, suffix = "", rest
        if _T in rest or _P in suffix or (self.is_pair and _P not in rest):
            raise ClfbenchError(f"{self.builder.template_path}: the template must show the text (and pair) exactly once")
        prefix, self.text_lead = _split_trailing_space(prefix)
        middle, self.pair_lead = _split_trailing_space(middle)
        self.prefix_ids = self._bos() + self._ids(prefix)
        self.middle_ids = self._ids(middle)
        self.suffix_ids = self._ids(suffix)
        fixed = len(self.prefix_ids) + len(self.middle_ids) + len(self.suffix_ids)
        self.text_budget = self.max_length - fixed
        if self.text_budget < 8:
            raise ClfbenchError(
                f"max_length={self.max_length}: the prompt without the query text already takes "
                f"{fixed} tokens ({k} shots); raise max_length or use fewer shots"
            )

    def _ids(self, s: str) -> list[int]:
        return list(self.tokenizer(s, add_special_tokens=False)["input_ids"]) if s else []

    def _bos(self) -> list[int]:
        """A BOS token for plain prompts of models that use one (chat templates write their own)."""
        tok = self.tokenizer
        if self.chat or tok.bos_token_id is None:
            return []
        return [tok.bos_token_id]

    def render(self, text: str, pair: str | None) -> str:
        """The prompt as a string, up to the answer slot (the chat template or the plain layout)."""
        if not self.chat:
            return self.builder.render_plain(text, pair, self.rendered_shots)
        msgs = self.builder.messages(text, pair, self.rendered_shots)
        return self.tokenizer.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=True, enable_thinking=False
        )

    def encode(self, text: str, pair: str | None = None) -> tuple[list[int], bool]:
        """(query token ids after the prefix, whether the text was cut)."""
        t_ids = self._ids(self.text_lead + text)
        p_ids = self._ids(self.pair_lead + pair) if pair is not None else None
        t_ids, p_ids, cut = _fit(t_ids, p_ids, self.text_budget)
        return t_ids + self.middle_ids + (p_ids or []) + self.suffix_ids, cut

    def encode_all(self, X: Texts) -> tuple[list[list[int]], int]:
        out, n_cut = [], 0
        for i in range(len(X)):
            ids, cut = self.encode(X.texts[i], X.pairs[i] if X.pairs is not None else None)
            out.append(ids)
            n_cut += int(cut)
        return out, n_cut

    def describe(self) -> dict[str, Any]:
        """What a run saves: the template, the rendered prompt, token counts, truncation policy."""
        return {
            **self.builder.describe(),
            "chat_template_applied": self.chat,
            "rendered_example": self.render("{text}", "{pair}" if self.is_pair else None),
            "answer_tokens": {v: len(a) for v, a in zip(self.builder.verbalizers, self.answer_ids)},
            "prefix_tokens": len(self.prefix_ids),
            "max_length": self.max_length,
            "query_text_budget_tokens": self.text_budget,
            "shot_text_cap_tokens": self.shot_cap,
            "shots_truncated": self.shots_truncated,
            "truncation_policy": TRUNCATION_POLICY,
        }


def _fit(t: list[int], p: list[int] | None, budget: int) -> tuple[list[int], list[int] | None, bool]:
    """Cut text/pair token lists, longest first, until together they fit `budget`."""
    total = len(t) + (len(p) if p is not None else 0)
    if total <= budget:
        return t, p, False
    if p is None:
        return t[:budget], None, True
    t, p = list(t), list(p)
    while len(t) + len(p) > budget:
        if len(t) >= len(p):
            t.pop()
        else:
            p.pop()
    return t, p, True


class CausalLMClassifier:
    """Scores or generates labels for a batch of queries with one model and PromptEncoder."""

    def __init__(self, model, encoder: PromptEncoder, batch_size: int = 8, use_prefix_cache: bool = True,
                 length_normalize: bool = False) -> None:
        self.model = model
        self.enc = encoder
        self.batch_size = max(1, int(batch_size))
        self.length_normalize = length_normalize
        window = getattr(model.config, "sliding_window", None)
        # A sliding-window cache drops old tokens; keep the prefix cache only when it cannot.
        self.use_prefix_cache = bool(use_prefix_cache and encoder.prefix_ids) and not (
            window and encoder.max_length + encoder.max_answer_tokens + GEN_MARGIN >= window
        )
        self._prefix_cache = None
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
                self.model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            self._prefix_cache = cache
        return self._prefix_cache

    def reset_cache(self) -> None:
        self._prefix_cache = None

    def batch_inputs(self, queries: list[list[int]], cached: bool) -> dict[str, Any]:
        """Model inputs for a batch: left-padded ids, attention mask, position ids, cache."""
        P = len(self.enc.prefix_ids)
        T = max(len(q) for q in queries)
        B = len(queries)
        if cached:
            ids = [[self.pad_id] * (T - len(q)) + q for q in queries]
            qmask = torch.tensor([[0] * (T - len(q)) + [1] * len(q) for q in queries])
            mask = torch.cat([torch.ones(B, P, dtype=torch.long), qmask], dim=1)
            pos = (P + qmask.cumsum(1) - 1).clamp(min=P)
            cache = copy.deepcopy(self.prefix_cache())
            cache.batch_repeat_interleave(B)
            full_ids = [self.enc.prefix_ids + row for row in ids]
        else:
            seqs = [self.enc.prefix_ids + q for q in queries]
            L = P + T
            ids = full_ids = [[self.pad_id] * (L - len(s)) + s for s in seqs]
            mask = torch.tensor([[0] * (L - len(s)) + [1] * len(s) for s in seqs])
            pos = (mask.cumsum(1) - 1).clamp(min=0)
            cache = None
        dev = self.device
        return {
            "input_ids": torch.tensor(ids, device=dev), "attention_mask": mask.to(dev),
            "position_ids": pos.to(dev), "past_key_values": cache,
            "full_ids": torch.tensor(full_ids, device=dev),
        }

    # --- scoring ---------------------------------------------------------------------------
    @torch.inference_mode()
    def score(self, X: Texts, cached: bool | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Log-likelihood (n, n_labels) of each label's answer, and token counts."""
        queries, n_cut = self.enc.encode_all(X)
        cached = self.use_prefix_cache if cached is None else cached
        out = np.zeros((len(queries), len(self.enc.answer_ids)))
        for idx in _length_batches(queries, self.batch_size):
            out[idx] = self._score_batch([queries[i] for i in idx], cached)
        return out, self._info(queries, n_cut)

    def _score_batch(self, queries: list[list[int]], cached: bool) -> np.ndarray:
        inp = self.batch_inputs(queries, cached)
        from transformers import DynamicCache

        answers = self.enc.answer_ids
        multi = any(len(a) > 1 for a in answers)
        cache = inp["past_key_values"]
        if multi and cache is None:
            cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=inp["input_ids"], attention_mask=inp["attention_mask"],
            position_ids=inp["position_ids"], past_key_values=cache, use_cache=multi or cached,
            logits_to_keep=1,
        )
        first = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
        B = len(queries)
        scores = torch.stack([first[:, a[0]] for a in answers], dim=1)  # (B, L)
        if multi:
            scores = scores + self._continuations(out.past_key_values, inp, B)
        if self.length_normalize:
            scores = scores / torch.tensor([len(a) for a in answers], device=scores.device)
        return scores.cpu().numpy()

    def _continuations(self, cache, inp: dict[str, Any], B: int) -> torch.Tensor:
        """Sum of log-probs of answer tokens 2..m for every label, labels in row chunks."""
        answers = self.enc.answer_ids
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
            logits = self.model(input_ids=ids, attention_mask=m, position_ids=pos, past_key_values=c,
                                use_cache=True).logits.float()
            logp = torch.log_softmax(logits, dim=-1).view(B, n, A, -1)
            for j, lab in enumerate(labs):
                tgt = torch.tensor(answers[lab][1:], device=self.device)
                extra[:, lab] = logp[:, j, torch.arange(len(tgt)), tgt].sum(-1)
        return extra

    # --- generation ------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, X: Texts, max_new_tokens: int | None = None, min_new_tokens: int | None = None,
                 cached: bool | None = None) -> tuple[list[str], dict[str, Any]]:
        """Greedy outputs (decoded, special tokens dropped), and token counts."""
        queries, n_cut = self.enc.encode_all(X)
        cached = self.use_prefix_cache if cached is None else cached
        max_new = max_new_tokens or self.enc.max_answer_tokens + GEN_MARGIN
        texts: list[str] = [""] * len(queries)
        n_generated = 0
        tok = self.enc.tokenizer
        for idx in _length_batches(queries, self.batch_size):
            inp = self.batch_inputs([queries[i] for i in idx], cached)
            kw: dict[str, Any] = {"min_new_tokens": min_new_tokens} if min_new_tokens else {}
            gen = self.model.generate(
                input_ids=inp["full_ids"], attention_mask=inp["attention_mask"],
                past_key_values=inp["past_key_values"], do_sample=False, max_new_tokens=max_new,
                pad_token_id=self.pad_id, num_beams=1, **kw,
            )
            new = gen[:, inp["full_ids"].shape[1]:]
            for j, i in enumerate(idx):
                row = new[j].tolist()
                n_generated += sum(1 for t in row if t != self.pad_id)
                texts[i] = tok.decode(row, skip_special_tokens=True)
        info = self._info(queries, n_cut)
        info["generated_tokens_mean"] = n_generated / max(1, len(queries))
        info["max_new_tokens"] = max_new
        return texts, info

    def _info(self, queries: list[list[int]], n_cut: int) -> dict[str, Any]:
        lengths = [len(self.enc.prefix_ids) + len(q) for q in queries]
        return {
            "n_examples": len(queries),
            "prompt_tokens_mean": float(np.mean(lengths)) if lengths else 0.0,
            "prompt_tokens_max": int(max(lengths)) if lengths else 0,
            "prefix_tokens": len(self.enc.prefix_ids),
            "truncated": n_cut,
            "prefix_cache": self.use_prefix_cache,
        }


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
