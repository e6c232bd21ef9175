"""Tiny Hugging Face models built from configs with a locally trained tokenizer, for tests.

Nothing is downloaded: a WordPiece tokenizer is trained on a few hundred sentences, and
each architecture gets a 2-layer, 32-wide random model saved with `save_pretrained`.
"""

from __future__ import annotations

from pathlib import Path

CORPUS_WORDS = (
    "the a movie film was great terrible good bad awful wonderful boring fun plot actor "
    "acting story not very really quite is it this that and but of to in on with what who "
    "where when how why question answer yes no true false entailment neutral contradiction "
    "premise hypothesis passage sentiment positive negative review classify label text "
    "world sports business science technology money bank loan credit card debt mortgage "
    "city country person number location description entity abbreviation"
).split()

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<|im_start|>", "<|im_end|>", "<eos>"]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

ENCODERS = ("bert", "deberta-v2", "modernbert", "distilbert", "roberta", "electra")
DECODERS = ("qwen2", "llama", "gemma2", "qwen3")


def corpus(n: int = 400) -> list[str]:
    import random

    rng = random.Random(0)
    return [" ".join(rng.choice(CORPUS_WORDS) for _ in range(rng.randint(4, 14))) for _ in range(n)]


def train_tokenizer(vocab_size: int = 512, chat_template: bool = False):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL)
    tok.train_from_iterator(corpus(), trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", eos_token="<eos>",
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def train_decoder_tokenizer(vocab_size: int = 512, chat_template: bool = True):
    """A tokenizer for causal LMs: no [CLS]/[SEP] wrapping, eos and pad tokens set."""
    from transformers import PreTrainedTokenizerFast

    fast = train_tokenizer(vocab_size, chat_template)
    backend = fast.backend_tokenizer
    backend.post_processor = None
    out = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", eos_token="<eos>",
        bos_token=None,
    )
    if chat_template:
        out.chat_template = CHAT_TEMPLATE
    return out


LLAMA2_CHAT_TEMPLATE = (  # Llama-2-chat's layout: BOS per turn, [INST] ... [/INST], " answer </s>"
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ bos_token + '[INST] <<SYS>>\\n' + m['content'] + '\\n<</SYS>>\\n\\n' }}"
    "{% elif m['role'] == 'user' %}{{ ('' if loop.index0 == 1 and messages[0]['role'] == 'system' else bos_token + '[INST] ') + m['content'].strip() + ' [/INST]' }}"
    "{% else %}{{ ' ' + m['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)
PROMPT_LINES = [  # template words, so that the subword tokenizers below learn them
    "Classify the sentiment of the movie review sentence. Answer with one word: negative or positive.",
    "Does the premise entail the hypothesis? Answer with one word: yes or no.",
    "Answer the question about the passage. Answer with one word: yes or no.",
    "What type of answer does the question ask for? Answer with one of the listed types.",
    "Sentence: the movie was good\nAnswer: positive\n\nReview: a bad film\nAnswer: negative",
    "Premise: a man sleeps.\nHypothesis: someone rests.\nAnswer: yes",
    "Question: who is it?\nPassage: the city.\nAnswer: description of a person",
    "Answer: description\n\nAnswer: definition\n\nAnswer: manner\n\nAnswer: reason",
    "<s>[INST] <<SYS>>\nYou are a careful annotator.\n<</SYS>>\n\nReview: good [/INST] positive </s>",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz 0123456789 !\"#$%&'()*+,-./:;<=>?@[]^_`{|}~",
]


def _subword_corpus() -> list[str]:
    return corpus() + PROMPT_LINES * 30


def train_sentencepiece_tokenizer(vocab_size: int = 700, chat_template: bool = True):
    """A Llama-2-style tokenizer: Unigram + Metaspace ('▁', prepend_scheme="first"), BOS added
    by the tokenizer itself (`<s> $A`), no pad token, Llama-2-chat's template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                      unk_token="<unk>", initial_alphabet=list("\n:?.,'"))
    tok.train_from_iterator(_subword_corpus(), trainer)
    tok.post_processor = TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                            special_tokens=[("<s>", tok.token_to_id("<s>"))])
    out = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    if chat_template:
        out.chat_template = LLAMA2_CHAT_TEMPLATE
    return out


def train_byte_bpe_tokenizer(vocab_size: int = 700, chat_template: bool = True):
    """A Qwen-style tokenizer: byte-level BPE, no BOS, `<|im_start|>` chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_subword_corpus(), trainer)
    out = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    if chat_template:
        out.chat_template = CHAT_TEMPLATE
    return out


def _config(model_type: str, vocab_size: int, **extra):
    from transformers import AutoConfig

    kw = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
              intermediate_size=64, pad_token_id=0)
    if model_type == "modernbert":
        kw.update(local_attention=16, global_attn_every_n_layers=2, cls_token_id=2, sep_token_id=3,
                  bos_token_id=2, eos_token_id=3, mask_token_id=4)
    if model_type == "distilbert":
        kw = dict(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64, pad_token_id=0)
    if model_type in DECODERS:
        kw.update(num_key_value_heads=1, max_position_embeddings=512)
        if model_type in ("gemma2", "gemma3_text", "qwen3"):
            kw.update(head_dim=16)
    kw.update(extra)
    return AutoConfig.for_model(model_type, **kw)


def build_encoder(path: Path, model_type: str = "bert", num_labels: int | None = None) -> Path:
    """Save a tiny encoder (base model, no classification head) and its tokenizer to `path`."""
    import torch
    from transformers import AutoModel

    torch.manual_seed(0)
    tok = train_tokenizer()
    model = AutoModel.from_config(_config(model_type, len(tok)))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_decoder(path: Path, model_type: str = "qwen2", chat_template: bool = True,
                  tokenizer: str = "wordpiece") -> Path:
    """Save a tiny causal LM and its tokenizer (with a chat template unless told not to).

    `tokenizer`: "wordpiece" (lower-casing, no BOS), "bpe" (Qwen-style byte-level BPE) or
    "sentencepiece" (Llama-2-style, BOS added by the tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    train = {"wordpiece": train_decoder_tokenizer, "bpe": train_byte_bpe_tokenizer,
             "sentencepiece": train_sentencepiece_tokenizer}[tokenizer]
    tok = train(chat_template=chat_template)
    cfg = _config(model_type, len(tok), eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    model = AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_classifiers(tmp_path_factory, kinds=("bert", "distilbert", "modernbert"), seed: int = 1):
    """{kind: (model, tokenizer, path)}: tiny 3-label sequence classifiers with a seeded head."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = {}
    for kind in kinds:
        path = build_encoder(tmp_path_factory.mktemp(kind), kind)
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3).eval()
        out[kind] = (model, AutoTokenizer.from_pretrained(path), path)
    return out


#: The two tokenizer families whose prompts must tokenize as the model sees them.
SUBWORD_DECODERS = {"sentencepiece": "llama", "bpe": "qwen2"}  # tokenizer -> architecture


def subword_decoders(root: Path) -> dict[tuple[str, bool], tuple]:
    """{(tokenizer, chat): (model, tokenizer)} loaded by clfbench: a Llama-2-style SentencePiece
    and a Qwen-style byte-level BPE tiny decoder, each with and without a chat template."""
    from clfbench.engines.llm import load_causal_lm

    return {(tk, chat): load_causal_lm(str(build_decoder(root / f"{tk}-{chat}", arch, chat, tokenizer=tk)))
            for tk, arch in SUBWORD_DECODERS.items() for chat in (False, True)}
