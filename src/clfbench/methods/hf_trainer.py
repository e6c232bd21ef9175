"""Training on `transformers.Trainer`, shared by every fine-tuned neural method.

The Trainer runs the loop: device placement, mixed precision (bf16), gradient accumulation,
gradient checkpointing, clipping, and data-parallel training when the script is launched
with `torchrun` or `accelerate launch` (one process per GPU; `batch_size` is per device).
What a run trains with comes as one `TrainingSettings` (`training_settings`), which
`trainer_arguments` turns into the Trainer's arguments. clfbench adds what its methods need,
as the Trainer's documented extension points:

- `ClfbenchTrainer.compute_loss` calls the method's own loss (class-weighted cross-entropy,
  llm-sft's answer-only LM loss) and sums it for the per-epoch training loss;
- `_get_train_sampler` returns the method's seeded sampler (plain shuffling or
  class-balanced draws);
- `create_optimizer` / `create_scheduler`: AdamW (decay on matrices only, or on everything,
  as each method always did) and a linear schedule with the method's warm-up rounding;
- `EpochSelection`, a `TrainerCallback`: after every epoch, validation through the method's
  own prediction path, the best epoch's trainable weights kept in memory (restored after
  training), the tuning hook (early stopping / pruning via `control.should_training_stop`),
  and our progress lines (the Trainer's own tqdm and log printing are off).

Nothing is written unless `checkpoint` names a folder: no logs or reports, and without
`checkpoint` no checkpoints either (the Trainer's output folder is then a temporary one,
deleted after training). With it, a checkpoint is saved after every epoch and a training
found there is resumed (see `checkpoints`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from clfbench.methods import checkpoints
from clfbench.methods.training_settings import TrainingSettings
from clfbench.progress import estimate_line, progress_bar, say

#: (model, batch) -> (loss to back-propagate, summed loss to report, examples it sums over)
LossFn = Callable[[Any, dict[str, Any]], tuple[torch.Tensor, torch.Tensor, int]]
#: epoch -> (record fields, selection score)
Validate = Callable[[int], tuple[dict[str, Any], float]]


class OneDeviceArgs(TrainingArguments):
    """TrainingArguments whose single process uses one device: no `nn.DataParallel`, so
    `batch_size` stays the batch. Several GPUs are used through torchrun/accelerate (DDP)."""

    @property
    def n_gpu(self) -> int:
        return min(super().n_gpu, 1)


class PermutationSampler(torch.utils.data.Sampler):
    """A fresh numpy permutation per epoch from one seeded generator (llm-sft's data order)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.rng = n, np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(self.rng.permutation(self.n).tolist())


class ClfbenchTrainer(Trainer):
    """`Trainer` with the method's loss, sampler, optimizer groups and warm-up rounding."""

    # The loss is a batch mean: the Trainer divides it by the accumulation steps.
    loss_is_scaled_for_ga = False

    # A resumed checkpoint's damaged file is one clear error naming it, not a traceback.
    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        try:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        except Exception as e:  # noqa: BLE001 - safetensors, torch and peft raise many kinds
            raise checkpoints.damaged(Path(resume_from_checkpoint), _weights_name(resume_from_checkpoint), e) from None

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        try:
            return super()._load_optimizer_and_scheduler(checkpoint)
        except Exception as e:  # noqa: BLE001
            raise checkpoints.damaged(Path(str(checkpoint)), "optimizer.pt (or scheduler.pt)", e) from None

    def _load_rng_state(self, checkpoint: str | None) -> None:
        try:
            return super()._load_rng_state(checkpoint)
        except Exception as e:  # noqa: BLE001
            raise checkpoints.damaged(Path(str(checkpoint)), "rng_state.pth", e) from None

    def __init__(self, *args: Any, loss_fn: LossFn, sampler: torch.utils.data.Sampler,
                 warmup: Callable[[int], int], decay_all: bool, **kwargs: Any) -> None:
        self.loss_fn, self.sampler, self.warmup, self.decay_all = loss_fn, sampler, warmup, decay_all
        self.loss_sum: torch.Tensor | None = None
        self.loss_n = 0
        self.schedule: dict[str, int] = {}
        super().__init__(*args, **kwargs)
        # loss_fn takes no `num_items_in_batch`: the Trainer need not count label tokens, and
        # (older transformers, which lack `loss_is_scaled_for_ga`) still divides by accumulation.
        self.model_accepts_loss_kwargs = False
        self.remove_callback(PrinterCallback)  # our own epoch lines instead

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler:
        return self.sampler

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> torch.Tensor:
        loss, summed, n = self.loss_fn(model, inputs)
        summed = summed.detach().float()  # summed on the device: no sync per step
        self.loss_sum = summed if self.loss_sum is None else self.loss_sum + summed
        self.loss_n += n
        return loss

    def take_epoch_loss(self) -> float:
        """The mean training loss since the last call."""
        value = float(self.loss_sum) / max(1, self.loss_n) if self.loss_sum is not None else math.nan
        self.loss_sum, self.loss_n = None, 0
        return value

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            params = [p for p in (model if model is not None else self.model).parameters()
                      if p.requires_grad]
            wd = self.args.weight_decay
            if self.decay_all:
                groups = [{"params": params, "weight_decay": wd}]
            else:  # matrices only, not biases or norm scales
                groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": wd},
                          {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
            self.optimizer = torch.optim.AdamW(groups, lr=self.args.learning_rate)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        if self.lr_scheduler is None:
            import transformers  # looked up at call time (tests spy on the schedule built)

            warmup = self.warmup(num_training_steps)
            self.lr_scheduler = transformers.get_linear_schedule_with_warmup(
                optimizer if optimizer is not None else self.optimizer, warmup, num_training_steps)
            self.schedule = {"warmup_steps": warmup, "total_steps": num_training_steps}
        return self.lr_scheduler


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    """One readable line per epoch: `epoch 2/3: train loss 0.4123, validation macro-F1 0.8512 ...`."""
    names = {"train_loss": "train loss", "val_macro_f1": "validation macro-F1",
             "validation_macro_f1": "validation macro-F1", "val_accuracy": "validation accuracy",
             "validation_accuracy": "validation accuracy", "train_macro_f1": "train macro-F1"}
    parts = [f"{label} {record[key]:.4f}" for key, label in names.items() if key in record]
    return f"epoch {record['epoch']}/{epochs}: " + ", ".join(parts) + f" ({record['train_seconds']:.0f} s)"


class EpochSelection(TrainerCallback):
    """Per-epoch validation, best-epoch snapshots, the tuning hook and progress lines."""

    def __init__(self, trainer: ClfbenchTrainer, model: Any, epochs: int, validate: Validate | None,
                 keep: str, on_epoch: Callable[[int, float], bool] | None, verbose: bool,
                 n_examples: int) -> None:
        self.trainer, self.model, self.epochs, self.validate = trainer, model, epochs, validate
        self.keep, self.on_epoch, self.verbose, self.n_examples = keep, on_epoch, verbose, n_examples
        self.history: list[dict[str, Any]] = []
        self.scores: list[float] = []
        self.best: dict[str, torch.Tensor] | None = None
        self.best_epoch, self.best_score = epochs, -math.inf
        self.gradient_checkpointing = False
        # Training seconds spent before this process resumed (an interrupted run's), and when
        # this process began: a checkpoint records the sum, so a resumed run's cost is whole.
        self.seconds_before, self.started = 0.0, time.perf_counter()
        # Checkpoints inside an epoch (`checkpoint_steps`) hold the sampler's state as the epoch
        # began (the resumed epoch redraws its order and the Trainer skips the batches done),
        # the epoch's loss so far and its seconds so far.
        self.saving = False
        self._epoch_sampler: Any = None
        self._at_epoch_end = True
        self._epoch_seconds_before = 0.0
        self._t_epoch = self._t_step = 0.0
        self._bar: Any = None

    def say(self, line: str) -> None:
        self._say(None, line)

    def _say(self, state: Any, line: str) -> None:
        first = state.is_world_process_zero if state is not None else is_main_process()
        if self.verbose and first:
            say(line)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.gradient_checkpointing = bool(_model_call(self.model, "is_activation_checkpointing",
                                                       "is_gradient_checkpointing"))

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._t_epoch = time.perf_counter() - self._epoch_seconds_before
        self._epoch_seconds_before, self._at_epoch_end = 0.0, False
        if self.saving:  # before the epoch's first batch draws from it
            self._epoch_sampler = checkpoints.sampler_state(self.trainer.sampler)
        epoch = len(self.history) + 1
        self._bar = progress_bar(f"epoch {epoch}/{self.epochs}", state.max_steps // max(1, self.epochs),
                                 self.verbose and state.is_world_process_zero)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._t_step = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._bar.update(1)
        if state.global_step == 2:  # the 2nd step: the 1st has one-off costs
            step_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
            self._say(state, estimate_line(self.n_examples, step_batch, self.epochs,
                                           time.perf_counter() - self._t_step))

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._bar.close()
        epoch = len(self.history) + 1
        record: dict[str, Any] = {"epoch": epoch, "train_loss": self.trainer.take_epoch_loss(),
                                  "train_seconds": time.perf_counter() - self._t_epoch}
        score = None
        if self.validate is not None:
            fields, score = self.validate(epoch)
            record.update(fields)
            self.scores.append(score)
            if self.keep == "last":
                self.best_epoch = epoch  # no snapshots: the last epoch's weights stay in the model
            elif score > self.best_score:
                self.best_score, self.best_epoch = score, epoch
                # A snapshot, unless this is the final epoch (its weights stay in the model).
                self.best = ({n: p.detach().to("cpu", copy=True)
                              for n, p in self.model.named_parameters() if p.requires_grad}
                             if epoch < self.epochs else None)
        self.history.append(record)
        self._at_epoch_end = True
        if self.saving:  # every epoch ends with a checkpoint, whatever `checkpoint_steps` says
            control.should_save = True
        self._say(state, epoch_line(record, self.epochs))
        if score is not None and self.on_epoch is not None and self.on_epoch(epoch, score):
            control.should_training_stop = True

    # --- checkpoints (see `checkpoints`) ---------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What a resumed training needs beyond the Trainer's own checkpoint."""
        mid_epoch = not self._at_epoch_end
        loss = self.trainer.loss_sum
        return {"history": self.history, "scores": self.scores, "best": self.best,
                "best_epoch": self.best_epoch, "best_score": self.best_score,
                "sampler": self._epoch_sampler if mid_epoch else checkpoints.sampler_state(self.trainer.sampler),
                "epoch_loss": [None if loss is None else float(loss), self.trainer.loss_n],
                "epoch_seconds": time.perf_counter() - self._t_epoch if mid_epoch else 0.0,
                "schedule": dict(self.trainer.schedule),
                "gradient_checkpointing": self.gradient_checkpointing,
                "seconds": self.seconds_before + time.perf_counter() - self.started}

    def resume(self, state: dict[str, Any]) -> bool:
        """Restore a checkpoint's state and replay the tuning hook over its epochs (pruning
        and early stopping decide as they did); True when training had already ended."""
        self.history, self.scores, self.best = list(state["history"]), list(state["scores"]), state["best"]
        self.best_epoch, self.best_score = state["best_epoch"], state["best_score"]
        self.gradient_checkpointing = state["gradient_checkpointing"]
        checkpoints.set_sampler_state(self.trainer.sampler, state["sampler"])
        self.trainer.schedule = dict(state["schedule"])
        self.seconds_before = float(state["seconds"])
        loss_sum, self.trainer.loss_n = state["epoch_loss"]
        self.trainer.loss_sum = (None if loss_sum is None else
                                 torch.tensor(loss_sum, dtype=torch.float32, device=self.trainer.args.device))
        self._epoch_seconds_before = float(state["epoch_seconds"])
        stopped = False
        for epoch, score in enumerate(self.scores, start=1):
            stopped = self.on_epoch is not None and bool(self.on_epoch(epoch, score))
        return bool(state.get("ended")) or stopped or len(self.history) >= self.epochs

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """After the Trainer's files: ours, which mark the checkpoint complete. A step save on
        an epoch's last step is left incomplete: the epoch-end save that follows completes it
        (the Trainer would count that epoch as done before it was validated)."""
        last_step = state.global_step % max(1, state.max_steps // self.epochs) == 0
        if state.is_world_process_zero and (self._at_epoch_end or not last_step):
            checkpoints.save_state(Path(args.output_dir) / f"checkpoint-{state.global_step}", self.state_dict())

    def restore_best(self) -> None:
        """Put the kept epoch's weights back into the model (a no-op when it is the last)."""
        if self.best is not None and self.best_epoch != len(self.history):
            with torch.no_grad():
                for n, p in self.model.named_parameters():
                    if n in self.best:
                        p.copy_(self.best[n].to(p.device))


def checkpointing_args(on: bool) -> dict[str, Any]:
    """TrainingArguments for activation (gradient) checkpointing, non-reentrant (gradients
    also reach LoRA layers behind frozen embeddings). transformers 5.24 renamed
    `gradient_checkpointing` to `activation_checkpointing`; older 5.x only have the former."""
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    key = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return {key: on, f"{key}_kwargs": {"use_reentrant": False} if on else None}


def _model_call(model: Any, new: str, old: str) -> Any:
    """`model.<new>` (a property or a method) where this transformers has it, else `<old>`."""
    for name in (new, old):
        try:
            value = getattr(model, name)
        except AttributeError:
            continue
        return value() if callable(value) else value
    return None


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """False in every data-parallel process but the first (which writes and prints)."""
    return int(os.environ.get("RANK", "0")) == 0


def _weights_name(folder: str) -> str:
    """The weights file of a Trainer checkpoint (a full model's or a LoRA adapter's)."""
    for name in ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin", "adapter_model.bin"):
        if (Path(folder) / name).is_file():
            return name
    return "model.safetensors"


def trainer_arguments(settings: TrainingSettings, output_dir: str, device: torch.device,
                      checkpoint: Path | None) -> OneDeviceArgs:
    """The Trainer's arguments for `settings`: every setting it applies itself (epochs, batch,
    accumulation, learning rate, decay, clipping, seed, bf16, activation checkpointing, save
    steps); the rest is ours (`ClfbenchTrainer`, `EpochSelection`). Nothing logged or reported."""
    return OneDeviceArgs(
        output_dir=output_dir, num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum, learning_rate=settings.lr,
        weight_decay=settings.weight_decay, max_grad_norm=settings.max_grad_norm, seed=settings.seed,
        bf16=settings.bf16, use_cpu=device.type == "cpu",
        **checkpointing_args(settings.grad_checkpointing),
        save_strategy="no" if checkpoint is None else "steps" if settings.checkpoint_steps else "epoch",
        save_steps=settings.checkpoint_steps or 500, save_total_limit=None,
        eval_strategy="no", logging_strategy="no", report_to="none",
        disable_tqdm=True, remove_unused_columns=False,
        dataloader_pin_memory=device.type == "cuda",
        # our sampler's own seeded generator decides the order, as before the Trainer
        accelerator_config={"use_seedable_sampler": False},
    )


def train(model: Any, dataset: Any, collate: Callable[[list], dict[str, Any]], loss_fn: LossFn,
          sampler: torch.utils.data.Sampler, settings: TrainingSettings, *, device: torch.device,
          validate: Validate | None, on_epoch: Callable[[int, float], bool] | None,
          verbose: bool, checkpoint: Path | None = None) -> dict[str, Any]:
    """Train `model` in place with the Trainer, as `settings` say; leave it holding the kept
    epoch's weights.

    `settings.keep`: "best" (the highest selection score; ties keep the earlier epoch) or
    "last". Without `validate` the last epoch is kept. `checkpoint`: this configuration's
    folder (`checkpoints.configuration_folder`): save after every epoch, and resume the newest
    complete checkpoint found there; `settings.checkpoint_steps`: also every that many
    optimizer steps (a resumed epoch then skips the batches done). Returns the history, the
    kept epoch, the schedule and what the Trainer ran with.
    """
    epochs, grad_accum = settings.epochs, settings.grad_accum
    if checkpoint is not None:
        checkpoints.sampler_state(sampler)  # a sampler that cannot be resumed fails now
        out_dir: Any = contextlib.nullcontext(str(checkpoint))
    else:
        out_dir = tempfile.TemporaryDirectory(prefix="clfbench-trainer-")
    with out_dir as out:
        args = trainer_arguments(settings, out, device, checkpoint)
        trainer = ClfbenchTrainer(model=model, args=args, train_dataset=dataset, data_collator=collate,
                                  loss_fn=loss_fn, sampler=sampler, warmup=settings.warmup_steps,
                                  decay_all=settings.decay_all)
        selection = EpochSelection(trainer, model, epochs, validate, settings.keep, on_epoch, verbose,
                                   len(dataset))
        selection.saving = checkpoint is not None
        trainer.add_callback(selection)
        resume = checkpoints.latest(checkpoint) if checkpoint is not None else None
        saved = checkpoints.load_state(resume) if resume is not None else None
        if resume is not None:
            checkpoints.check_trainer_files(resume)
        resumed_from = len(saved["history"]) if saved is not None else None
        resumed_step = int(resume.name.split("-")[1]) if resume is not None else None
        try:
            if saved is None:
                trainer.train()
            elif selection.resume(saved):
                selection.say(f"resuming {resume}: training had ended after epoch {resumed_from}")
                # the weights only, nothing left to train: the Trainer's own loader (the one
                # `train(resume_from_checkpoint=...)` calls) knows full models and adapters
                trainer._load_from_checkpoint(str(resume))
            else:
                selection.say(f"resuming {resume}: {resumed_from} of {epochs} epoch(s) done "
                              f"(optimizer step {resumed_step})")
                trainer.train(resume_from_checkpoint=str(resume))
        finally:
            if settings.grad_checkpointing:  # prediction needs no recomputation
                _model_call(model, "activation_checkpointing_disable", "gradient_checkpointing_disable")
        if checkpoint is not None and is_main_process():  # training has ended (no exception)
            checkpoints.mark_ended(checkpoint)
        selection.restore_best()
        model.eval()
        history = selection.history
        best_epoch = selection.best_epoch if validate is not None else len(history)
        return {
            "history": history,
            "epochs_run": len(history),
            "best_epoch": best_epoch,
            "score": selection.scores[best_epoch - 1] if validate is not None else None,
            "schedule": dict(trainer.schedule),
            "trainer": {
                "engine": "transformers.Trainer",
                "gradient_accumulation_steps": grad_accum,
                "gradient_checkpointing": selection.gradient_checkpointing,
                "mixed_precision": str(trainer.accelerator.mixed_precision),
                "world_size": args.world_size,
                "device": str(args.device),
                "seed": settings.seed,
                "checkpoint": None if checkpoint is None else {
                    "folder": str(checkpoint), "every_steps": settings.checkpoint_steps,
                    "resumed_after_epoch": resumed_from, "resumed_at_step": resumed_step,
                    "seconds_before_resume": selection.seconds_before},
            },
        }
