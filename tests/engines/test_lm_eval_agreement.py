"""Peer check: clfbench's label log-likelihoods equal lm-evaluation-harness's
`HFLM.loglikelihood` on the same model, rendered context and continuation (to 1e-4).

Tiny random Qwen-style (byte-level BPE, no BOS) and Llama-2-style (SentencePiece, BOS added by
the tokenizer) decoders; the sst2, rte, boolq (passage cut to max_length), trec-fine and cfpb (complaints in
paragraphs and double spaces, cut to max_length: a cut field is stripped, as Llama-2-chat's
template strips it) prompts of the registered tasks with synthetic texts; zero- and 5-shot; plain layout and chat template.
lm-evaluation-harness moves a context's trailing whitespace into the continuation ("assistant\\n"
+ "positive" is scored as "\\n" + "positive"), so the log-likelihood of that whitespace alone
(its loglikelihood with an empty continuation) is subtracted to compare like with like.
"""

from __future__ import annotations

import pytest
import tiny_models

pytest.importorskip("lm_eval")

from clfbench.data.tasks import get_task
from clfbench.data.texts import Texts
from clfbench.engines.llm import CausalLMClassifier, PromptEncoder
from clfbench.engines.prompts import PromptBuilder

WORDS = "the film movie story plot actor city country bank card money world".split()


def sentence(i: int, n: int = 8) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)) + ("." if i % 2 else "")


QUERIES = {  # (text, pair) per task; boolq's passage is long enough to be cut
    "sst2": [(sentence(i), None) for i in range(3)],
    "rte": [(sentence(i, 12), sentence(i + 5, 5)) for i in range(3)],
    "boolq": [(f"is the {WORDS[i]} in the {WORDS[i + 3]}?", sentence(i, 400)) for i in range(2)],
    "trec-fine": [(f"who is the {WORDS[i]} of the {WORDS[i + 4]}?", None) for i in range(2)],
    # complaints in paragraphs and double spaces, cut at 256 tokens: a cut can fall after a
    # blank, which Llama-2-chat (`content.strip()`) would never write before [/INST]
    "cfpb": [(sep.join(sentence(i + k, 6) for k in range(60)), None)
             for i, sep in enumerate(["\n\n", "  ", " \n", "\n"])],
}
MAX_LENGTH = {"sst2": 512, "rte": 512, "boolq": 320, "trec-fine": 512, "cfpb": 256}
SHOT_LENGTH = {"cfpb": 480}  # with 5 shots (lm-eval cuts contexts to the 512 positions)


@pytest.fixture(scope="module")
def decoders(tmp_path_factory):
    short = {"sentencepiece": "llama", "bpe": "qwen"}
    loaded = tiny_models.subword_decoders(tmp_path_factory.mktemp("lm_eval"))
    return {(short[tk], chat): v for (tk, chat), v in loaded.items()}


def lm_eval_scores(model, tok, requests: list[tuple[str, str]]) -> list[float]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=16, device="cpu")
    ws = [(c, "") for c, _ in requests if c != c.rstrip()]
    instances = [Instance("loglikelihood", {}, r, i) for i, r in enumerate(requests + ws)]
    out = [ll for ll, _ in lm.loglikelihood(instances, disable_tqdm=True)]
    blank = dict(zip([c for c, _ in ws], out[len(requests):]))
    return [ll - blank.get(c, 0.0) for (c, _), ll in zip(requests, out[: len(requests)])]


@pytest.mark.slow
@pytest.mark.parametrize("task_name", ["sst2", "rte", "boolq", "trec-fine", "cfpb"])
@pytest.mark.parametrize("shots", [0, 5])
@pytest.mark.parametrize("chat", [False, True])
@pytest.mark.parametrize("kind", ["qwen", "llama"])
def test_label_loglikelihoods_equal_lm_evaluation_harness(decoders, kind, chat, shots, task_name):
    model, tok = decoders[kind, chat]
    task = get_task(task_name)
    prompt = {"text_name": task.text, "pair_name": task.text_pair, **task.prompt}
    labels = list(task.labels)
    builder = PromptBuilder(prompt, labels)
    queries = QUERIES[task_name]
    is_pair = queries[0][1] is not None
    shot_set = [(sentence(20 + k, 30 if task_name == "boolq" else 6),
                 sentence(30 + k, 60) if is_pair else None, (k * 7) % len(labels)) for k in range(shots)]
    max_length = SHOT_LENGTH.get(task_name, MAX_LENGTH[task_name]) if shots else MAX_LENGTH[task_name]
    enc = PromptEncoder(builder, tok, shot_set, True, max_length, is_pair)
    assert enc.chat == chat and enc.complete == (task_name == "trec-fine")
    X = Texts([t for t, _ in queries], [p for _, p in queries] if is_pair else None)
    ours, info = CausalLMClassifier(model, enc, batch_size=2).score(X)
    # single-token answers are scored packed (queries back to back, no pads), the rest padded
    assert info["packed"] == all(len(a) == 1 for a in enc.score_ids)
    if task_name in ("boolq", "cfpb"):
        assert info["truncated"] == len(queries)
    requests = []
    for text, pair in queries:
        text, pair, _ = enc.fit_query(text, pair)
        assert text == text.strip() and (pair is None or pair == pair.strip())  # cut fields stripped
        context = enc.render(text, pair)  # the template's own rendering of the cut text
        assert context == enc.prompt_text(text, pair)
        requests += [(context, answer) for answer in enc.score_texts]
    theirs = lm_eval_scores(model, tok, requests)
    for i in range(len(queries)):
        for j in range(len(labels)):
            assert ours[i, j] == pytest.approx(theirs[i * len(labels) + j], abs=1e-4), (i, labels[j])
