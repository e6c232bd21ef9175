"""clfbench label scoring vs lm-evaluation-harness (`HFLM.loglikelihood`): speed and agreement.

Model: the Qwen2.5-0.5B architecture (hidden 896, 24 layers, 14 heads, 2 kv heads,
intermediate 4864, tied embeddings) with RANDOM weights and the REAL 151,936-token vocabulary
(speed does not depend on the weights' values; it does depend on the vocabulary, since every
logit row costs 2 x 136M FLOPs). Tokenizer: a byte-level BPE (vocab 4,000) trained here on
synthetic SST-2-like sentences, with a Qwen-style chat template (no Qwen tokenizer offline).
Texts: `--n` synthetic SST-2-like sentences (no dataset excerpts), the sst2 task's prompt,
zero-shot and 5-shot (synthetic shots).

Both systems run in the same process, back to back, on the same model object, batch size and
rendered prompts: clfbench `CausalLMClassifier.score` (whole-prompt tokenization, the few-shot
prefix's KV cache, logits only at the answer position) and lm-evaluation-harness
`HFLM(pretrained=model, tokenizer=tok).loglikelihood` with one request per (prompt, answer)
(its one-token-continuation grouping and logits cache on, its defaults). Tokenization is timed
in both. Agreement: top labels, and the largest difference of the label-score margins
(lm-evaluation-harness scores "\\n" + answer after a chat prompt ending in "\\n", which adds
the same constant to every label, so margins are compared).

Compute limit = the FLOPs the task needs / the fp32 matmul peak measured just before each
timed pass (`matmul_peak.py`): 2 x non-embedding parameters per query token (the tokens after
the cached prefix) + 2 x embedding parameters per example (one logit row). The issue's cruder
figure, query tokens x 2 x all parameters, is printed too. Attention FLOPs are left out. On a
shared machine the wall-time share also measures the other jobs; the share by the process's
CPU time (divided by the thread count) is printed next to it. Each system is timed `--rounds`
times, alternating, and its best round counts.

    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false python benchmarks/llm_vs_lm_eval.py --n 16
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llm_decision import build_qwen_shape, build_tokenizer  # noqa: E402
from matmul_peak import matmul_peak_flops  # noqa: E402

from clfbench import (
    Texts,  # noqa: E402
    get_task,  # noqa: E402
)
from clfbench.engines.llm import CausalLMClassifier, PromptEncoder  # noqa: E402
from clfbench.engines.prompts import PromptBuilder  # noqa: E402

ADJ = "good bad dull great boring moving flat sharp tender awful lovely clumsy bright tired".split()
NOUN = "film movie plot story cast script ending score pacing dialogue camera hero".split()
FILL = "the a this its very quite rather often never so too and but with".split()


def synthetic_sentences(n: int, seed: int) -> list[tuple[str, int]]:
    """SST-2-like (sentence, label) pairs made up from word lists: 8-30 words."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        y = rng.randrange(2)
        words = [rng.choice(FILL + NOUN) for _ in range(rng.randint(6, 28))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(ADJ[:7] if y else ADJ[7:]))
        words.insert(rng.randrange(len(words) + 1), rng.choice(NOUN))
        out.append((" ".join(words), y))
    return out


def lm_eval_scores(lm, requests: list[tuple[str, str]]) -> list[float]:
    from lm_eval.api.instance import Instance

    inst = [Instance("loglikelihood", {}, r, i) for i, r in enumerate(requests)]
    return [ll for ll, _ in lm.loglikelihood(inst, disable_tqdm=True)]


def timed(fn) -> tuple[float, float, object]:
    """(wall seconds, process CPU seconds, result) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def run(model, tok, builder, shots, X: Texts, batch_size: int, rounds: int, label: str) -> dict:
    """Time both systems on X, alternating, `rounds` times each (after a warm-up on 4 texts);
    the best round of each counts. Returns the figures."""
    from lm_eval.models.huggingface import HFLM

    n = len(X)
    enc = PromptEncoder(builder, tok, shots, True, 512)
    clf = CausalLMClassifier(model, enc, batch_size)
    padded = CausalLMClassifier(model, enc, batch_size)  # the same, packed scoring switched off
    padded._packed_ok = False
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size, device="cpu")
    requests = [(enc.render(t.strip(), None), a) for t in X.texts for a in enc.score_texts]
    warm = X.subset(range(min(4, n)))
    clf.score(warm)  # also computes the prefix cache, once, as an evaluation does
    padded.score(warm)
    lm_eval_scores(lm, requests[: 2 * len(warm)])
    best = {k: (np.inf, 0.0, 0.0) for k in ("ours", "padded", "theirs")}  # (wall, cpu, peak)
    for _ in range(rounds):
        for name, fn in (("ours", lambda: clf.score(X)[0]), ("padded", lambda: padded.score(X)[0]),
                         ("theirs", lambda: np.array(lm_eval_scores(lm, requests)).reshape(n, -1))):
            peak = matmul_peak_flops(repeats=5)
            wall, cpu, out = timed(fn)
            if name == "ours":
                ours = out
            elif name == "theirs":
                theirs = out
            if wall < best[name][0]:
                best[name] = (wall, cpu, peak)
    prompts, _ = enc.encode_all(X)
    n_query = sum(len(p) - len(enc.prefix_ids) for p in prompts)
    emb = model.get_input_embeddings().weight.numel()
    total = sum(p.numel() for p in model.parameters())
    need = 2 * (total - emb) * n_query + 2 * emb * n
    crude = 2 * total * n_query
    threads = torch.get_num_threads()
    (w_o, c_o, p_o), (w_t, c_t, p_t), (w_p, _, p_p) = best["ours"], best["theirs"], best["padded"]
    margin = np.abs((ours[:, 1] - ours[:, 0]) - (theirs[:, 1] - theirs[:, 0])).max()
    row = {
        "setting": label, "n": n, "prompt_tokens_mean": float(np.mean([len(p) for p in prompts])),
        "prefix_tokens": len(enc.prefix_ids), "query_tokens_mean": n_query / n,
        "clfbench_sps": n / w_o, "lm_eval_sps": n / w_t, "ratio": w_t / w_o,
        "peak_gflops": p_o / 1e9, "share_of_limit": need / p_o / w_o,
        "share_of_limit_cpu": need / p_o / (c_o / threads), "share_crude": crude / p_o / w_o,
        "packed": clf._packed_ok, "padded_sps": n / w_p, "packed_vs_padded": w_p / w_o,
        "padded_share_crude": crude / p_p / w_p,
        "lm_eval_share_of_limit": need / p_t / w_t, "lm_eval_share_of_limit_cpu": need / p_t / (c_t / threads),
        "top_label_agreement": float((ours.argmax(1) == theirs.argmax(1)).mean()),
        "max_margin_diff": float(margin),
    }
    print(f"{label}: {n} prompts, ~{row['prompt_tokens_mean']:.0f} tokens (prefix {row['prefix_tokens']}, "
          f"query ~{row['query_tokens_mean']:.0f}); best of {rounds} rounds")
    print(f"  clfbench {row['clfbench_sps']:.2f} ex/s, lm-eval {row['lm_eval_sps']:.2f} ex/s: "
          f"RATIO {row['ratio']:.2f}x")
    print(f"  peak {row['peak_gflops']:.0f} GFLOP/s; clfbench at {100 * row['share_of_limit']:.0f}% of the "
          f"compute limit by wall time, {100 * row['share_of_limit_cpu']:.0f}% by its CPU time / "
          f"{threads} threads (issue's formula, wall: {100 * row['share_crude']:.0f}%); lm-eval at "
          f"{100 * row['lm_eval_share_of_limit']:.0f}% (wall), {100 * row['lm_eval_share_of_limit_cpu']:.0f}% (CPU)")
    print(f"  packed scoring {'on' if row['packed'] else 'OFF'}; the same padded: {row['padded_sps']:.2f} ex/s "
          f"(packed {row['packed_vs_padded']:.2f}x faster; padded at {100 * row['padded_share_crude']:.0f}% "
          f"by the issue's formula)")
    print(f"  agreement: top label {100 * row['top_label_agreement']:.0f}%, "
          f"largest label-margin difference {row['max_margin_diff']:.2e}")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="prompts per setting")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=4000, help="tokenizer vocabulary (the model keeps 151,936)")
    ap.add_argument("--layers", type=int, default=24, help="fewer only for a smoke test")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--shots", default="0,5")
    ap.add_argument("--rounds", type=int, default=2, help="timed rounds per system (best counts)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    task = get_task("sst2")
    train = synthetic_sentences(2000, seed=1)
    template_words = [task.prompt["instruction"], "Sentence: ", "\nAnswer:", "user", "assistant"] * 200
    tok = build_tokenizer([t for t, _ in train] + template_words, args.vocab)
    t0 = time.perf_counter()
    model = build_qwen_shape(tok, args.layers)
    print(f"model built in {time.perf_counter() - t0:.0f} s: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M "
          f"parameters, vocab {model.config.vocab_size}, tokenizer vocab {len(tok)}, "
          f"torch threads {torch.get_num_threads()}, batch {args.batch_size}")
    builder = PromptBuilder({"text_name": task.text, **task.prompt}, list(task.labels))
    X = Texts([t for t, _ in synthetic_sentences(args.n, seed=2)])
    for k in map(int, args.shots.split(",")):
        shots = [(t, None, y) for t, y in train[:k]]
        run(model, tok, builder, shots, X, args.batch_size, args.rounds, f"{k}-shot")


if __name__ == "__main__":
    main()
