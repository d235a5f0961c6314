"""The HF ``Trainer`` with checkpoints that survive crashes and resume to the exact same run.

This is the one module that overrides private ``Trainer`` members. Each override names the transformers behaviour it
relies on, and ``tests/training/test_trainer_contract.py`` fails with a clear message when a transformers upgrade
renames or changes one of them.

:class:`ResumableTrainer` is the HF ``Trainer`` with three changes (and, for evaluation sets read in windows, a
fourth: evaluation in the set's own row order, see ``sequential_evaluation``):

* **Atomic checkpoints.** A checkpoint is written into ``checkpoints/.checkpoint-N.partial`` and renamed to
  ``checkpoint-N`` only when every file is on disk, so a crash or a full disk never leaves a half-written
  ``checkpoint-N`` behind (the Trainer's own resume logic would happily pick one up). With several processes
  (DDP) each writes its own part (its RNG state; the main process the model, optimizer and scheduler), and the main
  process writes the completeness marker and renames the folder only once every process has finished. FSDP and
  DeepSpeed save through the Trainer's own writer (each engine in its own layout), with the marker added last.
* **Data order as a function of (seed, epoch).** The stock samplers draw their shuffle from the global torch
  RNG when an epoch starts; a run resumed mid-epoch re-creates that epoch's order *before* the RNG state is
  restored, so it would see different batches. :class:`EpochSeededSampler` seeds its own generator from
  ``(seed, epoch)`` instead, for both length-grouped and plain random batching. Under DDP accelerate hands the
  sampler's batches to the processes in turn, so the processes together take the order one process would with the
  global batch (``batch_size x processes``), each a disjoint share; the length groups are cut for that global batch.
* **The loop's bookkeeping travels with the checkpoint.** The training loss accumulated since the last log
  line (and since the last evaluation, for ``history.jsonl``) is saved and restored, so a checkpoint taken
  between two logging steps (Ctrl-C) resumes with the same logged losses as an uninterrupted run.

It also counts the training batches' correct predictions (the public ``compute_loss``, from the logits the forward
pass computed anyway) and hands the accuracy since the previous evaluation to ``history.jsonl`` at each evaluation.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler, SequentialSampler
from transformers import Trainer, TrainerCallback
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.trainer_callback import ExportableState
from transformers.trainer_pt_utils import get_length_grouped_indices
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from distiltune.errors import RunError
from distiltune.training import distributed
from distiltune.training.checkpoints import LOOP_STATE_FILE, TRAINER_STATE_FILE, fsync_tree, replace_dir

logger = logging.getLogger("distiltune")


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed that depends on both numbers (``seed + epoch`` would make seed 1/epoch 1 equal seed 2/epoch 0)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def length_grouped_indices(
    lengths: list[int], batch_size: int, generator: torch.Generator, group_batches: int | None = None
) -> list[int]:
    """An epoch's order in which each run of ``batch_size`` indices has similar lengths, batches in random order.

    The Trainer's grouping (random mega-batches of up to 50 batches, sorted by length inside) is kept for the
    padding it saves, but its batch order is not: inside every mega-batch it runs from the longest batch to the
    shortest, so with 800 reviews an epoch is four or five long-to-short ramps, a curriculum that random sampling
    does not have. Here the batches are shuffled as well. The longest batch stays first (a too-large batch fails at
    once) and a short final batch stays last (so batches stay aligned). ``group_batches`` sets the mega-batch size in
    batches (None: the Trainer's ``min(50, rows // (4 x batch))``).
    """
    indices = get_length_grouped_indices(lengths, batch_size, mega_batch_mult=group_batches, generator=generator)
    batches = [indices[start : start + batch_size] for start in range(0, len(indices), batch_size)]
    tail = [batches.pop()] if len(batches) > 1 and len(batches[-1]) < batch_size else []
    head, middle = batches[:1], batches[1:]
    order = torch.randperm(len(middle), generator=generator).tolist()
    return [index for batch in head + [middle[k] for k in order] + tail for index in batch]


class EpochSeededSampler(Sampler[int]):
    """Shuffles (and, with ``lengths``, groups by length: :func:`length_grouped_indices`) with a generator seeded
    from ``(seed, epoch)``: the order of an epoch never depends on what ran before it."""

    def __init__(
        self,
        size: int,
        seed: int,
        lengths: list[int] | None = None,
        batch_size: int = 1,
        group_batches: int | None = None,
    ) -> None:
        self.size = size
        self.seed = seed
        self.lengths = lengths
        self.batch_size = batch_size
        self.group_batches = group_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        if self.lengths is None:
            return iter(torch.randperm(self.size, generator=generator).tolist())
        return iter(length_grouped_indices(self.lengths, self.batch_size, generator, self.group_batches))


class ResumableTrainer(Trainer):
    """``Trainer`` with atomic checkpoints, epoch-seeded data order and resumable loop bookkeeping."""

    def __init__(
        self,
        *args: Any,
        length_group_batches: int | None = None,
        sequential_evaluation: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._length_group_batches = length_group_batches
        self._sequential_evaluation = sequential_evaluation
        self._epoch_sampler: EpochSeededSampler | None = None
        self._loop_state_to_restore: dict[str, Any] | None = None
        # Correct predictions and examples of the training batches since the previous evaluation: tensors on the
        # model's device, added to without reading them back (no GPU sync per step). Under several processes (DDP)
        # each counts its own batches; summing the pair over processes (all_reduce) before the division is all a
        # multi-process run needs. ``_carried_counts`` holds what a resumed checkpoint brought along.
        self._train_correct: torch.Tensor | None = None
        self._train_seen: torch.Tensor | None = None
        self._carried_counts: tuple[int, int] = (0, 0)
        self.add_callback(_RestoreLoopState(self))

    # --- data order --------------------------------------------------------------------------------

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        # Override of Trainer._get_train_sampler(train_dataset=None): the Trainer asks it for the training
        # DataLoader's sampler (in get_train_dataloader) and reads the sampling strategy from
        # args.train_sampling_strategy ("group_by_length" / "random"), lengths from args.length_column_name.
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        strategy = self.args.train_sampling_strategy
        if dataset is None or not hasattr(dataset, "__len__") or strategy not in ("group_by_length", "random"):
            return super()._get_train_sampler(train_dataset)
        lengths = None
        if strategy == "group_by_length":
            source = self.train_dataset if len(self.train_dataset) == len(dataset) else dataset
            column = self.args.length_column_name
            if column in getattr(source, "column_names", []):
                lengths = [int(n) for n in source[column]]
            else:
                lengths = [len(ids) for ids in dataset["input_ids"]]
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        # accelerate deals this sampler's batches of train_batch_size out to the processes in turn
        # (BatchSamplerShard), so an optimizer step takes the next world_size x accumulation batches of the order:
        # grouping by length for that global batch gives each step the rows one process would take.
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
        self._epoch_sampler = EpochSeededSampler(len(dataset), seed, lengths, batch, self._length_group_batches)
        return self._epoch_sampler

    def _get_eval_sampler(self, eval_dataset: Any) -> Any:
        # Override of Trainer._get_eval_sampler(eval_dataset): get_eval_dataloader asks it for the evaluation
        # sampler. With train_sampling_strategy "group_by_length" the Trainer length-groups evaluation too, in a
        # seeded random order; compute_metrics then sees predictions and labels in that order. That is harmless
        # row by row, but the windows of a document (data.long_text=chunks) are matched to their documents by
        # position, so such a set is evaluated in its own order. With several processes that is no sampler at all,
        # as the Trainer's own choice without length grouping: accelerate then deals the batches of the dataset's
        # order out to the processes, and gathering them for the metrics restores that order.
        if self._sequential_evaluation and eval_dataset is not None:
            return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None
        return super()._get_eval_sampler(eval_dataset)

    def _run_epoch(self, *args: Any, **kwargs: Any) -> Any:
        # Override of Trainer._run_epoch(..., epoch=...): the training loop calls it once per epoch with the epoch
        # number as the keyword ``epoch`` (transformers 5.x; 4.x had one _inner_training_loop instead).
        # Set the epoch on the sampler ourselves: accelerate's wrappers do not always forward set_epoch
        # (e.g. through skip_first_batches when resuming mid-epoch).
        if self._epoch_sampler is not None and "epoch" in kwargs:
            self._epoch_sampler.set_epoch(kwargs["epoch"])
        return super()._run_epoch(*args, **kwargs)

    # --- training accuracy -------------------------------------------------------------------------

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
        **kwargs: Any,
    ) -> Any:
        """The Trainer's loss, however it is computed (the model's own, label smoothing or a ``compute_loss_func``),
        plus a count of the correct predictions of a training batch from the logits of that same forward pass."""
        labels = inputs.get("labels")  # read first: with a compute_loss_func or a label smoother super() pops them
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch, **kwargs
        )
        if model.training and labels is not None:  # evaluation's prediction_step calls this too, in eval mode
            self._count_correct(outputs, labels)
        return (loss, outputs) if return_outputs else loss

    def _count_correct(self, outputs: Any, labels: torch.Tensor) -> None:
        logits = outputs.get("logits") if isinstance(outputs, dict) else getattr(outputs, "logits", None)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or labels.dim() != 1:
            return  # not single-label classification: nothing to count
        if labels.is_floating_point() or logits.shape[0] != labels.shape[0]:
            return
        with torch.no_grad():
            correct = (logits.detach().argmax(dim=-1) == labels.to(logits.device)).sum()
        if self._train_correct is None or self._train_seen is None:
            self._train_correct = torch.zeros((), dtype=torch.long, device=logits.device)
            self._train_seen = torch.zeros((), dtype=torch.long, device=logits.device)
        self._train_correct += correct.to(self._train_correct.device)
        self._train_seen += labels.shape[0]  # a Python int added on the device: no copy, no sync

    def train_accuracy_counts(self) -> tuple[int, int]:
        """(correct, seen) over the training batches since the previous evaluation (reads the device once)."""
        correct, seen = self._carried_counts
        if self._train_correct is not None and self._train_seen is not None:
            correct += int(self._train_correct.item())
            seen += int(self._train_seen.item())
        return correct, seen

    def _summed_train_accuracy_counts(self) -> tuple[int, int]:
        """:meth:`train_accuracy_counts` added up over the processes (each counts its own batches); a collective
        under DDP, so every process calls it at the same point (evaluate, checkpoint)."""
        counts = distributed.all_gather(self.train_accuracy_counts())
        return sum(correct for correct, _ in counts), sum(seen for _, seen in counts)

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        # Hand the training accuracy since the previous evaluation to the callbacks that record it (the history),
        # then start counting afresh: the next evaluation's row covers the batches after this one.
        correct, seen = self._summed_train_accuracy_counts()
        for callback in self.callback_handler.callbacks:
            if hasattr(callback, "record_train_accuracy"):
                callback.record_train_accuracy(correct, seen)
        self._carried_counts = (0, 0)
        if self._train_correct is not None and self._train_seen is not None:
            self._train_correct.zero_()
            self._train_seen.zero_()
        return super().evaluate(*args, **kwargs)

    # --- atomic checkpoints ------------------------------------------------------------------------

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        # Override of Trainer._save_checkpoint(model, trial): the loop calls it for every save (save_strategy) and
        # on control.should_save, with the output folder from self._get_output_dir(trial=...). Every process calls it.
        if trial is not None:  # a hyperparameter-search trial: the Trainer's own checkpoints
            super()._save_checkpoint(model, trial)
            return
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            self._save_sharded_checkpoint(model)
            return
        root = Path(self._get_output_dir(trial=trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        final, staging = root / name, root / f".{name}.partial"
        writer = self.args.should_save
        if writer:
            shutil.rmtree(staging, ignore_errors=True)
        if self.args.world_size > 1:
            distributed.barrier()  # nobody writes into the staging folder before a stale one is gone
        error: OSError | None = None
        try:
            self._write_checkpoint(model, root, staging)
        except OSError as err:
            error = err
        # Gathering every process's outcome is also the barrier after which the main process completes the folder.
        failures = [text for text in distributed.all_gather(error and (error.strerror or str(error))) if text]
        if failures:
            if writer:
                shutil.rmtree(staging, ignore_errors=True)
            raise self._checkpoint_error(final, failures[0]) from error
        loop_state = self._loop_state()  # a collective with several processes: each keeps its own running loss
        # on_main: the others wait until the folder is renamed (the best model is loaded from it at the end) and
        # hear of a failure.
        distributed.on_main(lambda: self._complete_checkpoint(root, staging, final, loop_state))

    def _save_sharded_checkpoint(self, model: Any) -> None:
        """FSDP and DeepSpeed: the Trainer's own writer, which has each engine save its shards in its own layout
        straight into ``checkpoint-N`` (not renamed into place: a crash can leave a partial folder, without the
        marker). The completeness marker goes in last, once every process has finished."""
        super()._save_checkpoint(model, None)
        loop_state = self._loop_state()  # gathers from every process: also the barrier after their writes
        final = Path(self._get_output_dir(trial=None)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"

        def mark_complete() -> None:
            (final / LOOP_STATE_FILE).write_text(json.dumps(loop_state), encoding="utf-8")
            fsync_tree(final)

        distributed.on_main(mark_complete)

    def _complete_checkpoint(self, root: Path, staging: Path, final: Path, loop_state: dict[str, Any]) -> None:
        """The main process, once every process has written its part: the trainer state, the loop state (last, as
        the completeness marker), then the rename and the rotation of old checkpoints."""
        try:
            self.state.save_to_json(str(staging / TRAINER_STATE_FILE))
            (staging / LOOP_STATE_FILE).write_text(json.dumps(loop_state), encoding="utf-8")
            fsync_tree(staging)
            replace_dir(staging, final)
        except OSError as err:
            shutil.rmtree(staging, ignore_errors=True)
            raise self._checkpoint_error(final, err.strerror or str(err)) from err
        rotate_checkpoints(
            output_dir=str(root),
            save_total_limit=self.args.save_total_limit,
            best_model_checkpoint=self.state.best_model_checkpoint,
            use_mtime=False,  # step numbers, not timestamps: renames and coarse mtimes cannot reorder them
        )

    @staticmethod
    def _checkpoint_error(final: Path, reason: str) -> RunError:
        return RunError(
            f"Could not write checkpoint {final} ({reason}); the previous checkpoints are intact.",
            "Free disk space (or fix permissions), then resume the run with --resume.",
        )

    def _write_checkpoint(self, model: Any, root: Path, staging: Path) -> None:
        """What Trainer._save_checkpoint writes, into ``staging``; every process calls it.

        Relies on the Trainer's own writers: save_model(dir, _internal_call=True), _save_optimizer_and_scheduler,
        _save_scaler and _save_rng_state (each taking the folder), and state.stateful_callbacks for
        ExportableState callbacks, as Trainer._save_checkpoint uses them. Under DDP the main process
        (args.should_save) writes the model, optimizer, scheduler and scaler, and every process its own
        rng_state_<rank>.pth; store_flos is a collective."""
        self.store_flos()
        self.save_model(str(staging), _internal_call=True)
        # training_args.bin is a pickle of TrainingArguments: resuming never reads it, and a checkpoint should
        # hold no file that executes code when loaded.
        (staging / TRAINING_ARGS_NAME).unlink(missing_ok=True)
        best_step = self.state.best_global_step
        if best_step:
            best = root / f"{PREFIX_CHECKPOINT_DIR}-{best_step}"
            if best_step == self.state.global_step or best.is_dir():
                self.state.best_model_checkpoint = str(best)
        if not self.args.save_only_model:
            self._save_optimizer_and_scheduler(str(staging))
            self._save_scaler(str(staging))
            self._save_rng_state(str(staging))
        for callback in [*self.callback_handler.callbacks, self.control]:
            if isinstance(callback, ExportableState):
                name = type(callback).__name__
                if isinstance(self.state.stateful_callbacks.get(name), list):
                    self.state.stateful_callbacks[name].append(callback.state())
                else:
                    self.state.stateful_callbacks[name] = callback.state()

    # --- loop bookkeeping --------------------------------------------------------------------------

    def _loop_state(self) -> dict[str, Any]:
        # Reads the loop's private bookkeeping: self._tr_loss (a tensor, the loss summed since the last log line),
        # self._globalstep_last_logged and self._total_loss_scalar, which Trainer.train zeroes at train begin and
        # _maybe_log_save_evaluate reads.
        # Under DDP each process sums its own batches' losses into _tr_loss (the log line averages them across
        # processes), so every process's value is saved, in rank order; gathering them is a collective.
        tr_loss = getattr(self, "_tr_loss", None)
        tr_losses = distributed.all_gather(float(tr_loss.item()) if isinstance(tr_loss, torch.Tensor) else 0.0)
        return {
            "global_step": self.state.global_step,
            "world_size": len(tr_losses),
            "tr_loss": tr_losses[0],
            **({"tr_loss_by_rank": tr_losses} if len(tr_losses) > 1 else {}),
            "globalstep_last_logged": getattr(self, "_globalstep_last_logged", self.state.global_step),
            "total_loss_scalar": getattr(self, "_total_loss_scalar", 0.0),
            "train_accuracy_counts": list(self._summed_train_accuracy_counts()),
            "callbacks": {
                type(cb).__name__: cb.checkpoint_state()
                for cb in self.callback_handler.callbacks
                if hasattr(cb, "checkpoint_state")
            },
        }

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any) -> Any:
        if isinstance(resume_from_checkpoint, str | os.PathLike):
            path = Path(resume_from_checkpoint) / LOOP_STATE_FILE
            self._loop_state_to_restore = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def _restore_loop_state(self) -> None:
        """Called at train begin, right after the Trainer has zeroed its running loss."""
        saved, self._loop_state_to_restore = self._loop_state_to_restore, None
        if not saved:
            return
        tr_loss = saved.get("tr_loss_by_rank", [saved["tr_loss"]])[self.args.process_index]
        self._tr_loss = torch.tensor(tr_loss, dtype=self._tr_loss.dtype, device=self._tr_loss.device)
        self._globalstep_last_logged = int(saved["globalstep_last_logged"])
        self._total_loss_scalar = float(saved["total_loss_scalar"])
        # Checkpoints written before the training accuracy existed carry no counts: that interval starts at 0/0.
        correct, seen = saved.get("train_accuracy_counts", (0, 0))
        # The saved counts are the processes' sum: one process carries them, so the next sum is right again.
        self._carried_counts = (int(correct), int(seen)) if self.args.process_index == 0 else (0, 0)
        if self._train_correct is not None and self._train_seen is not None:
            self._train_correct.zero_()
            self._train_seen.zero_()
        callbacks = saved.get("callbacks", {})
        for callback in self.callback_handler.callbacks:
            state = callbacks.get(type(callback).__name__)
            if state is not None and hasattr(callback, "load_checkpoint_state"):
                callback.load_checkpoint_state(state)


class _RestoreLoopState(TrainerCallback):
    def __init__(self, trainer: ResumableTrainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.trainer._restore_loop_state()


__all__ = ["EpochSeededSampler", "ResumableTrainer", "epoch_seed", "length_grouped_indices"]
