"""The training of every fine-tuned sequence classifier, and the estimator built on it.

`encoder-ft`, `encoder-lora` and `decoder-head` are all `AutoModelForSequenceClassification`
trained the same way, on `transformers.Trainer` (`hf_trainer`): AdamW, linear schedule with
warm-up, dynamic padding, gradient clipping, bf16 mixed precision on GPUs that support it,
cross-entropy (optionally class-weighted), an optional class-balanced sampler, and per-epoch
validation that keeps the best epoch's weights; gradient accumulation, gradient checkpointing
and multi-GPU (torchrun/accelerate) come with the Trainer. The methods differ only in the
backbone and in whether a LoRA adapter is trained, which `HFSequenceClassifier` takes as
hooks. Prediction always goes through `clfbench.engines.inference.predict_logits`, so training-time
validation and the timed evaluation run the very same code.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from annotated_types import Ge, Gt, Lt
from sklearn.metrics import accuracy_score

from clfbench.data.texts import LabeledTexts, Texts, stratified_indices
from clfbench.engines.device import autocast, autocast_dtype, pick_device, precision_name
from clfbench.engines.encoding import model_input_names, tokenize
from clfbench.engines.inference import predict_logits
from clfbench.engines.models import ModelRef, hub_revision, load, resolve_model
from clfbench.errors import ClfbenchError
from clfbench.methods.base import Classifier
from clfbench.methods.params import (
    BATCH_SIZE,
    CLASS_WEIGHT,
    DEVICE,
    EPOCHS,
    MAX_LENGTH,
    MODEL,
    SEED,
    WARMUP_RATIO,
    WEIGHT_DECAY,
    Param,
)
from clfbench.methods.schema import OneOf
from clfbench.methods.training_settings import TrainingSettings
from clfbench.methods.tuning import EpochCallback, Tunable

SELECTIONS = ("f1", "gap", "last")
TRUNCATION = "longest_first"  # what `encoding.tokenize` does for pairs (transformers' default)


# --- data ---------------------------------------------------------------------------------
def encode(model: Any, tokenizer: Any, data: LabeledTexts, max_length: int) -> list[dict[str, Any]]:
    """One feature dict per example (token ids + label): the inputs and truncation that
    `inference.predict_logits` uses for the same model."""
    enc = tokenize(tokenizer, data, max_length)
    keys = [k for k in model_input_names(model) if k in enc]
    return [
        {**{k: enc[k][i] for k in keys}, "labels": int(data.labels[i])} for i in range(len(data))
    ]


def count_truncated(tokenizer: Any, X: Texts, max_length: int) -> int:
    """How many inputs are longer than `max_length` tokens (special tokens included)."""
    if len(X) == 0:
        return 0
    if X.pairs is not None:
        enc = tokenizer(X.texts, X.pairs, truncation=False, verbose=False)
    else:
        enc = tokenizer(X.texts, truncation=False, verbose=False)
    return int(sum(len(ids) > max_length for ids in enc["input_ids"]))


def balanced_class_weights(labels: np.ndarray, n_labels: int) -> np.ndarray:
    """sklearn's 'balanced' weights n / (k * count_c) for classes present; 0 for absent ones."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    weights = np.zeros(n_labels)
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    return weights


def balanced_sampler(labels: np.ndarray, generator: torch.Generator):
    """Draws examples with probability 1 / count(class): every class equally often on average."""
    from torch.utils.data import WeightedRandomSampler

    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    return WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double), num_samples=len(labels), replacement=True,
        generator=generator,
    )


def make_sampler(labels: np.ndarray, sampling: str | None, generator: torch.Generator):
    """The training sampler: class-balanced draws, or a seeded shuffle (the Trainer batches it)."""
    from torch.utils.data import RandomSampler

    if sampling == "balanced":
        return balanced_sampler(labels, generator)
    return RandomSampler(range(len(labels)), generator=generator)


def make_collator(tokenizer: Any):
    """Each batch padded only to its own longest example."""
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer, return_tensors="pt")


def scores(gold: np.ndarray, logits: np.ndarray, n_labels: int) -> dict[str, float]:
    """Validation (or train-probe) macro-F1 and accuracy of `logits`: `metrics.macro_f1`, over
    the gold classes of the split, the definition the reported numbers use."""
    from clfbench.evaluation.metrics import macro_f1

    pred = logits.argmax(axis=1)
    return {
        "macro_f1": macro_f1(gold, pred),
        "accuracy": float(accuracy_score(gold, pred)),
    }


def check_options(class_weight: str | None, sampling: str | None, selection: str) -> None:
    if class_weight not in (None, "balanced"):
        raise ClfbenchError(f"parameter class_weight: {class_weight!r} (expected 'balanced' or none)")
    if sampling not in (None, "balanced"):
        raise ClfbenchError(f"parameter sampling: {sampling!r} (expected 'balanced' or none)")
    if selection not in SELECTIONS:
        raise ClfbenchError(f"parameter selection: {selection!r} (expected one of {', '.join(SELECTIONS)})")


def resolve_bf16(name: str, bf16: bool | str, device: torch.device) -> bool:
    """bf16 mixed precision: "auto" = on a GPU that supports it, off elsewhere (CPU, MPS)."""
    if bf16 == "auto":
        return autocast_dtype(device) is torch.bfloat16
    if bf16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ClfbenchError(f"{name}: parameter bf16=true: this GPU does not support bf16")
    return bool(bf16)


def training_device(requested: str | None) -> torch.device:
    """The device the Trainer will train on (`pick_device`'s choice). One process trains on
    the first visible GPU (torchrun: one per process), so `cuda:N` needs CUDA_VISIBLE_DEVICES."""
    from clfbench.methods.hf_trainer import world_size

    dev = pick_device(requested)
    if dev.type == "cuda" and dev.index not in (None, 0) and world_size() == 1:
        raise ClfbenchError(f"device {requested!r}: training uses the first visible GPU; "
                            f"select this one with CUDA_VISIBLE_DEVICES={dev.index} and device=cuda")
    return dev


# --- the loop -----------------------------------------------------------------------------
def train_loop(
    model: Any,
    tokenizer: Any,
    train: LabeledTexts,
    validation: LabeledTexts | None,
    predict: Callable[[Texts], np.ndarray],
    settings: TrainingSettings,
    *,
    device: torch.device,
    verbose: bool,
    on_epoch: Callable[[int, float], bool] | None = None,
    checkpoint: Path | None = None,
) -> dict[str, Any]:
    """Train `model` in place with `transformers.Trainer` (see `hf_trainer`); leave it
    holding the selected epoch's weights; return the record.

    `predict(X) -> logits` is the estimator's own prediction path; `settings` every training
    setting (`TrainingSettings`: the warm-up is rounded up). Selection: "f1" keeps the
    epoch with the best validation macro-F1; "gap" the best F1_val - |F1_val - F1_train|
    (F1_train on a seeded, stratified subsample of train as large as validation); "last" the
    final epoch. Ties keep the earlier epoch. Without validation data the last epoch is kept.
    `on_epoch(epoch, selection score)` is called after each validated epoch (tuning: pruning
    and early stopping); training stops when it returns True. The record's `score` is the
    selection score of the weights kept (None without validation data). `checkpoint`: the
    configuration's checkpoint folder (save every epoch, and every `settings.checkpoint_steps`
    optimizer steps when given; resume what is found there).
    """
    from clfbench.methods import hf_trainer

    class_weight, sampling, selection = settings.class_weight, settings.sampling, settings.selection
    seed = settings.seed
    check_options(class_weight, sampling, selection)
    n_labels = len(train.label_names)
    generator = torch.Generator().manual_seed(seed)
    sampler = make_sampler(np.asarray(train.labels), sampling, generator)
    weight = None
    if class_weight == "balanced":
        weight = torch.as_tensor(balanced_class_weights(train.labels, n_labels), dtype=torch.float32)

    def loss_fn(model: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, int]:
        labels = batch.pop("labels")
        logits = model(**batch).logits
        w = weight.to(logits.device) if weight is not None else None
        loss = torch.nn.functional.cross_entropy(logits.float(), labels, weight=w)
        return loss, loss, 1  # train loss: the mean of the batch losses

    has_val = validation is not None and len(validation) > 0
    if selection == "gap" and has_val:
        train_probe = train.subset(stratified_indices(train.labels, len(validation), seed))

    def validate(epoch: int) -> tuple[dict[str, Any], float]:
        val = scores(validation.labels, predict(validation), n_labels)
        fields: dict[str, Any] = {"val_macro_f1": val["macro_f1"], "val_accuracy": val["accuracy"]}
        score = val["macro_f1"]
        if selection == "gap":
            f1_train = scores(train_probe.labels, predict(train_probe), n_labels)["macro_f1"]
            score = val["macro_f1"] - abs(val["macro_f1"] - f1_train)
            fields["train_macro_f1"] = f1_train
        fields["selection_score"] = score
        return fields, score

    record = hf_trainer.train(
        model, encode(model, tokenizer, train, settings.max_length), make_collator(tokenizer), loss_fn,
        sampler, settings, device=device, validate=validate if has_val else None, on_epoch=on_epoch, verbose=verbose,
        checkpoint=checkpoint,
    )
    return {
        "history": record["history"],
        "epochs_run": record["epochs_run"],
        "score": record["score"],
        "best_epoch": record["best_epoch"],
        "selection": selection if has_val else "last (no validation data)",
        "optimizer": {"name": "AdamW", "lr": settings.lr, "weight_decay": settings.weight_decay,
                      "schedule": "linear", **record["schedule"], "batch_size": settings.batch_size,
                      "epochs": settings.epochs, "max_grad_norm": settings.max_grad_norm},
        "class_weight": class_weight,
        "sampling": sampling,
        "trainer": record["trainer"],
    }


# --- LoRA ---------------------------------------------------------------------------------
def head_modules(model: Any) -> list[str]:
    """Names of the classification head (trained in full next to LoRA): every top-level child
    holding parameters except the backbone, plus the backbone's pooler if it has one
    (BERT's pooler feeds the classifier and may be freshly initialised)."""
    prefix = model.base_model_prefix
    names = [n for n, m in model.named_children()
             if n != prefix and any(True for _ in m.parameters())]
    backbone = getattr(model, prefix, None)
    pooler = getattr(backbone, "pooler", None)
    if pooler is not None and any(True for _ in pooler.parameters()) and "pooler" not in names:
        names.append("pooler")
    return names


def parse_targets(target_modules: Any) -> str | list[str]:
    if isinstance(target_modules, str):
        if target_modules == "all-linear":
            return target_modules
        return [t.strip() for t in target_modules.split(",") if t.strip()]
    return list(target_modules)


@contextlib.contextmanager
def peft_quietly() -> Iterator[None]:
    """peft reads transformers' deprecated `is_gradient_checkpointing` when it wraps or loads
    a model: a FutureWarning on every fit and load that no user can act on, silenced here."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def peft_wrap(model: Any, config: Any) -> Any:
    """`peft.get_peft_model`, quietly (`peft_quietly`)."""
    from peft import get_peft_model

    with peft_quietly():
        return get_peft_model(model, config)


def apply_lora(model: Any, r: int, alpha: float, dropout: float, target_modules: Any):
    """Wrap `model` in a peft LoRA adapter with the head in `modules_to_save`.

    Returns (peft model, info) where info has total/trainable counts: total = the base
    model's parameters + the adapter's, trainable = adapter + head.
    """
    from peft import LoraConfig, TaskType

    base_total = sum(p.numel() for p in model.parameters())
    head = head_modules(model)
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=int(r), lora_alpha=alpha,
                        lora_dropout=float(dropout), target_modules=parse_targets(target_modules),
                        modules_to_save=list(head))
    try:
        peft_model = peft_wrap(model, config)
    except ValueError as e:
        raise ClfbenchError(f"parameter target_modules={target_modules!r}: {str(e).splitlines()[0]}") from None
    lora = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    info = {"r": int(r), "alpha": alpha, "dropout": float(dropout),
            "target_modules": parse_targets(target_modules), "modules_to_save": head,
            "lora_parameters": lora, "total": base_total + lora, "trainable": trainable}
    return peft_model, info


class LoRAParams:
    """Mixin: the parameters of a LoRA adapter (`apply_lora`); methods re-declare defaults."""

    r: int = Param(8, "(LoRA) adapter rank", Ge(1))
    lora_alpha: float = Param(16, "(LoRA) scaling alpha", Gt(0))
    lora_dropout: float = Param(0.1, "(LoRA) dropout on the adapter's input", Ge(0), Lt(1))
    target_modules: str | list[str] | None = Param(
        None, "(LoRA) modules that get an adapter (default: the method's own)")


# --- the estimator ------------------------------------------------------------------------
#: The training loop's parameters after `model`, in the order every fine-tuning method lists them.
TRAINING_PARAMS = ("lr", "batch_size", "epochs", "max_length", "warmup_ratio", "weight_decay",
                   "max_grad_norm", "class_weight", "sampling", "selection", "eval_batch_size", "device")
#: The Trainer's extras (`Tunable`), last in every fine-tuning method's list.
TRAINER_PARAMS = ("grad_accum", "grad_checkpointing", "bf16", "checkpoint_dir", "checkpoint_steps")
LORA_PARAMS = ("r", "lora_alpha", "lora_dropout", "target_modules")


class HFSequenceClassifier(Tunable, Classifier):
    """AutoModelForSequenceClassification fine-tuned with `train_loop`, fully or with LoRA.

    `fit` searches the learning rate on validation (`tune="auto"`, see `tuning.Tunable`) or
    trains the fixed recipe once (`tune="off"`). Subclasses declare their own parameters (or
    another default, `Param.but`) and `param_order`, and may override the hooks
    `_default_targets`, `_prepare_tokenizer` and `_prepare_inputs`. LoRA weights are merged
    into the backbone after training, so prediction runs at the plain model's speed and the
    saved model is an ordinary `save_pretrained` folder (reloads without peft).
    """

    verbose: ClassVar[bool] = True  # progress bars; evaluate.execute sets it per run
    use_lora: ClassVar[bool] = False
    model_params = ("model",)

    # The parameters of the training loop (`train_loop`); the search's and the Trainer's extras
    # are `Tunable`'s, the inference engine's `EngineRouted`'s, the adapter's `LoRAParams`'.
    model: str | None = MODEL
    batch_size: int = BATCH_SIZE
    epochs: int = EPOCHS
    max_length: int = MAX_LENGTH
    warmup_ratio: float = WARMUP_RATIO
    weight_decay: float = WEIGHT_DECAY
    max_grad_norm: float = Param(1.0, "gradient-norm clipping", Gt(0))
    class_weight: str | None = CLASS_WEIGHT
    sampling: str | None = Param(None, "balanced: draw class-balanced training batches (default: plain "
                                       "shuffling)", OneOf(("balanced",)))
    selection: str = Param("f1", "epoch kept: f1 (best validation macro-F1), gap (F1 minus the train-val "
                                 "gap), last", OneOf(SELECTIONS))
    eval_batch_size: int = Param(64, "prediction batch size, or auto to search it", Ge(1), OneOf(("auto",)))
    device: str | None = DEVICE
    seed: int = SEED

    #: The signature's order: `clfbench methods NAME` lists the parameters so.
    param_order: ClassVar[tuple[str, ...]] = (
        "model", *TRAINING_PARAMS, "tune", "tune_trials", "lr_grid", "seed", *TRAINER_PARAMS)

    # --- hooks ----------------------------------------------------------------------------
    def _default_targets(self, model: Any) -> Any:
        return "all-linear"

    def _prepare_tokenizer(self, tokenizer: Any) -> dict[str, Any]:
        """Adjust the tokenizer; return extra config kwargs for the model (e.g. pad_token_id)."""
        return {}

    def _prepare_inputs(self, X: Texts) -> Texts:
        return X

    # --- fit --------------------------------------------------------------------------------
    def _load_backbone(self, ref: ModelRef) -> tuple[Any, Any]:
        from transformers import AutoModelForSequenceClassification

        from clfbench.engines.models import load_tokenizer

        tokenizer = load_tokenizer(ref)
        extra = self._prepare_tokenizer(tokenizer)
        n = len(self.labels)
        model = load(
            AutoModelForSequenceClassification.from_pretrained, ref, num_labels=n,
            id2label=dict(enumerate(self.labels)), label2id={name: i for i, name in enumerate(self.labels)},
            **extra,
        )
        if extra.get("pad_token_id") is not None:
            model.config.pad_token_id = extra["pad_token_id"]
        return model, tokenizer

    def _objective_name(self) -> str:
        return {"gap": "gap-penalised validation macro-F1",
                "last": "validation macro-F1 of the last epoch"}.get(self.selection, "validation macro-F1")

    def _fit_once(self, train: LabeledTexts, validation: LabeledTexts | None, lr: float,
                  on_epoch: EpochCallback | None) -> float | None:
        """One training run at learning rate `lr`; returns the kept weights' validation score."""
        self.device_ = training_device(self.device)
        bf16 = resolve_bf16(self.name, self.bf16, self.device_)
        if on_epoch is not None and self.selection == "last":  # report (pruning), never stop
            report = on_epoch

            def on_epoch(epoch: int, score: float) -> bool:
                report(epoch, score)
                return False
        self.labels = list(train.label_names)
        ref = resolve_model(self.model, self.name)
        torch.manual_seed(self.seed)  # the new head's initialisation
        model, self.tokenizer_ = self._load_backbone(ref)
        if hasattr(model.config, "use_cache"):
            model.config.use_cache = False
        lora_info = peft_model = None
        if self.use_lora:
            targets = self.target_modules if self.target_modules is not None else self._default_targets(model)
            peft_model, lora_info = apply_lora(model, self.r, self.lora_alpha, self.lora_dropout, targets)
            total, trainable = lora_info["total"], lora_info["trainable"]
            # Train and predict through the wrapped transformers model (LoRA layers injected):
            # the same forward signature, hence the same inputs, as after merging.
            model = peft_model.get_base_model()
        else:
            total = trainable = sum(p.numel() for p in model.parameters())
        self.model_ = model  # the Trainer puts it on the device
        train_x = self._prepared(train)
        val_x = self._prepared(validation) if validation is not None else None
        settings = TrainingSettings.from_estimator(self, lr=lr, bf16=bf16)
        record = train_loop(
            self.model_, self.tokenizer_, train_x, val_x, self._logits_prepared, settings,
            device=self.device_, verbose=self.verbose, on_epoch=on_epoch,
            checkpoint=self._checkpoint(train, validation, lr, self.device_),
        )
        if peft_model is not None:
            self.model_ = peft_model.merge_and_unload().eval()
        self.n_parameters_ = (int(total), int(trainable))
        self.fit_info_ = {
            **record,
            "model": {"name": ref.name, "kind": ref.kind, "source": ref.source,
                      "revision": hub_revision(self.model_) if ref.kind == "hub" else None,
                      "architecture": self.model_.config.model_type},
            "truncation": {
                "max_length": self.max_length, "strategy": TRUNCATION,
                "train_truncated": count_truncated(self.tokenizer_, train_x, self.max_length),
                "train_total": len(train_x),
                "validation_truncated": (count_truncated(self.tokenizer_, val_x, self.max_length)
                                         if val_x is not None else 0),
                "validation_total": len(val_x) if val_x is not None else 0,
            },
            "device": str(self.device_), "precision": "bf16-autocast" if bf16 else "fp32",
            "parameters": {"total": int(total), "trainable": int(trainable),
                           "trainable_share": trainable / total if total else None},
            **({"lora": {**lora_info, "merged_after_training": True}} if lora_info else {}),
        }
        self._largest_seen = None
        return record["score"]

    def _prepared(self, data: LabeledTexts) -> LabeledTexts:
        x = self._prepare_inputs(data)
        if x is data:
            return data
        return LabeledTexts(x.texts, x.pairs, data.labels, data.label_names, data.ids)

    # --- predict ------------------------------------------------------------------------------
    def _logits_prepared(self, X: Texts) -> np.ndarray:
        with autocast(self.device_):
            return predict_logits(self.model_, self.tokenizer_, X, self.eval_batch_size,
                                  self.max_length, self.device_)

    def predict_logits(self, X: Texts) -> np.ndarray:
        x = self._prepare_inputs(X)
        if self._largest_seen is None or len(x) > len(self._largest_seen):
            self._largest_seen = x
        return self._logits_prepared(x)

    def predict_proba(self, X: Texts) -> np.ndarray:
        from scipy.special import softmax

        return softmax(self.predict_logits(X).astype(np.float64), axis=1)

    def n_parameters(self) -> tuple[int, int]:
        return self.n_parameters_

    def inference_info(self) -> dict[str, Any]:
        """Device, precision, batch size, and truncation of the largest input set classified
        since fit (in an evaluation run: the whole test split)."""
        info: dict[str, Any] = {"device": str(self.device_), "precision": precision_name(self.device_),
                                "batch_size": self.eval_batch_size, "max_length": self.max_length,
                                "truncation_strategy": TRUNCATION}
        seen = getattr(self, "_largest_seen", None)
        if seen is not None:
            info["test_truncated"] = count_truncated(self.tokenizer_, seen, self.max_length)
            info["test_total"] = len(seen)
        return info

    # --- persistence ----------------------------------------------------------------------------
    def _save_state(self, path: Path) -> None:
        self.model_.save_pretrained(path / "model")
        self.tokenizer_.save_pretrained(path / "model")
        state = {"n_parameters": list(self.n_parameters_), "fit_info": self.fit_info_}
        (path / "state.json").write_text(json.dumps(state, indent=2, default=str))

    def _load_state(self, path: Path) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = path / "model"
        if not (folder / "config.json").is_file():
            raise ClfbenchError(f"{path}: saved model incomplete (model/config.json missing)")
        state = json.loads((path / "state.json").read_text())
        self.tokenizer_ = AutoTokenizer.from_pretrained(folder)
        self._prepare_tokenizer(self.tokenizer_)
        self.device_ = pick_device(self.device)
        # safetensors only (what save_pretrained writes): a .bin pickle in a run folder is never loaded
        self.model_ = AutoModelForSequenceClassification.from_pretrained(
            folder, use_safetensors=True).to(self.device_).eval()
        self.n_parameters_ = tuple(state["n_parameters"])
        self.fit_info_ = state.get("fit_info", {})
        self._largest_seen = None
