"""How fast is label scoring vs generation, and what does the few-shot prefix cache buy?

Model: the Qwen2.5-0.5B architecture (hidden 896, 24 layers, 14 heads, 2 kv heads,
intermediate 4864, vocab 151936, tied embeddings; 494M parameters) with RANDOM weights:
speed does not depend on the weights' values. Tokenizer: a byte-level BPE trained here on
SST-2 training sentences plus the answer words (vocab `--vocab`, default 4000; no Qwen
tokenizer offline; the answer words are single tokens as in Qwen's vocabulary), with
a Qwen-style chat template, so prompts are a little longer than Qwen's own tokenizer makes them.

Measures, in one process, on `--n` SST-2 dev sentences (the real prompt of the sst2 task):
  (a) per-example generation at batch 1 without cache (what the earlier systems did; the
      generated length is forced to the generate mode's max_new_tokens) vs batched scoring;
  (b) 5-shot scoring with vs without the prefix KV cache, and 5-shot (cached) vs zero-shot.

    HF_HUB_OFFLINE=1 timeout 1200 python benchmarks/llm_decision.py --n 32 --n-generate 16
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from clfbench import Texts, get_task, load_task
from clfbench.engines.llm import CausalLMClassifier, PromptEncoder, load_causal_lm, shots_from
from clfbench.engines.prompts import PromptBuilder, sample_shots

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(texts: list[str], vocab: int, answers: tuple[str, ...] = ("negative", "positive")):
    """A byte-level BPE tokenizer (Qwen-style: no BOS, ChatML template) trained on `texts`;
    the answer words are repeated so that they become single tokens, as in Qwen's vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    words = [w for a in answers for w in (a, " " + a)]
    tok.train_from_iterator(list(texts) + words * 2000, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def build_qwen_shape(tok, layers: int = 24, vocab_size: int = 151936):
    """A random-weight Qwen2.5-0.5B-shaped causal LM (fp32, eval mode), in memory."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(0)
    cfg = Qwen2Config(hidden_size=896, num_hidden_layers=layers, num_attention_heads=14, num_key_value_heads=2,
                      intermediate_size=4864, vocab_size=vocab_size, tie_word_embeddings=True,
                      max_position_embeddings=32768, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    return AutoModelForCausalLM.from_config(cfg).eval()


def build_model(folder: Path, texts: list[str], vocab: int, layers: int = 24) -> None:
    """Random-weight Qwen2.5-0.5B-shaped model and a byte-level BPE tokenizer, saved to `folder`."""
    fast = build_tokenizer(texts, vocab)
    fast.save_pretrained(folder)
    build_qwen_shape(fast, layers).save_pretrained(folder)


def timed(fn, repeats: int = 1, warmup=None) -> float:
    """Best wall time of `repeats` calls after one warm-up call (`warmup`, else `fn` itself)."""
    (warmup or fn)()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    ap.add_argument("--n", type=int, default=32, help="SST-2 dev sentences to classify")
    ap.add_argument("--n-generate", type=int, default=16, help="examples for the (slow) per-example generation")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=4000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--layers", type=int, default=24, help="fewer only for a smoke test")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    task = get_task("sst2")
    splits = load_task(task, args.data_dir, max_train=2000, max_eval=args.n)
    X = Texts(splits.test.texts)
    prompt = {"text_name": task.text, "pair_name": task.text_pair, **task.prompt}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "qwen2.5-0.5b-shape"
        t0 = time.perf_counter()
        build_model(folder, splits.train.texts, args.vocab, args.layers)
        model, tok = load_causal_lm(str(folder))
        print(f"built and loaded the model in {time.perf_counter() - t0:.1f} s; "
              f"{sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, "
              f"tokenizer vocab {len(tok)}, torch threads {torch.get_num_threads()}")
        builder = PromptBuilder(prompt, splits.train.label_names)
        shots = shots_from(splits.train, sample_shots(splits.train, 5, 99))
        zero = CausalLMClassifier(model, PromptEncoder(builder, tok, [], True, 512), args.batch_size)
        five = CausalLMClassifier(model, PromptEncoder(builder, tok, shots, True, 512), args.batch_size)
        n = len(X)
        warm = X.subset(range(min(8, n)))

        def mean_tokens(clf: CausalLMClassifier) -> float:
            prompts, _ = clf.enc.encode_all(X)
            return sum(map(len, prompts)) / n

        print(f"{n} SST-2 dev sentences; zero-shot prompt ~{mean_tokens(zero):.0f} tokens, 5-shot "
              f"~{mean_tokens(five):.0f} tokens (prefix {len(five.enc.prefix_ids)}); "
              f"answer tokens {five.enc.describe()['answer_tokens']}")

        # (a) generation one example at a time (no cache, forced length) vs batched scoring
        new = zero.enc.max_answer_tokens + 4
        one = CausalLMClassifier(model, zero.enc, batch_size=1, use_prefix_cache=False)

        n_gen = min(n, args.n_generate)

        def gen_each(m: int = n_gen):
            for i in range(m):
                one.generate(X.subset([i]), max_new_tokens=new, min_new_tokens=new)

        t_gen = timed(gen_each, warmup=lambda: gen_each(2)) * n / n_gen  # per-example cost, scaled to n
        t_score = timed(lambda: zero.score(X), warmup=lambda: zero.score(warm))
        print(f"(a) zero-shot generate, batch 1, {new} new tokens ({n_gen} examples): {n / t_gen:.2f} samples/s")
        print(f"    zero-shot score, batch {args.batch_size}:              {n / t_score:.2f} samples/s")
        print(f"    RATIO score / per-example generate: {t_gen / t_score:.1f}x  (target >= 4x)")

        # (b) the few-shot prefix cache. Steady state: the prefix cache exists (as after the
        # first call of an evaluation; zero-shot has a short cached prefix too).
        t_five_nocache = timed(lambda: five.score(X, cached=False), warmup=lambda: five.score(warm, cached=False))
        t_five_cache = timed(lambda: five.score(X, cached=True), warmup=lambda: five.score(warm, cached=True))

        def five_cold():
            five.reset_cache()  # the prefix is recomputed inside the timed call
            five.score(X, cached=True)

        t_five_cold = timed(five_cold, warmup=lambda: None)
        print(f"(b) 5-shot score without prefix cache:        {n / t_five_nocache:.2f} samples/s")
        print(f"    5-shot score with prefix cache:           {n / t_five_cache:.2f} samples/s")
        print(f"    same, prefix computed inside the call:    {n / t_five_cold:.2f} samples/s")
        print(f"    RATIO cache speed-up: {t_five_nocache / t_five_cache:.2f}x")
        print(f"    RATIO 5-shot (cached) time / zero-shot time: {t_five_cache / t_score:.2f}  (target <= 1.5)")
        print(f"    RATIO same, counting the prefix computation: {t_five_cold / t_score:.2f}")

if __name__ == "__main__":
    main()
