"""The private ``Trainer`` members that ``training/trainer.py`` overrides or reads, checked against the installed
transformers. Each test fails with a message naming the override and what changed, so a transformers upgrade that
renames or reshapes one of them breaks here, loudly, instead of silently changing resumed runs."""

from __future__ import annotations

import inspect

import pytest
import transformers
from transformers import Trainer

from distiltune.training.trainer import ResumableTrainer

SOURCE = inspect.getsource(Trainer)


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)


def relied_on(member: str, why: str) -> str:
    return (
        f"transformers {transformers.__version__} changed Trainer.{member}, which "
        f"distiltune.training.trainer.ResumableTrainer relies on: {why}. Update training/trainer.py (and this test)."
    )


def test_get_train_sampler_is_still_the_training_samplers_hook() -> None:
    assert hasattr(Trainer, "_get_train_sampler"), relied_on("_get_train_sampler", "it is gone")
    assert "train_dataset" in parameters(Trainer._get_train_sampler), relied_on(
        "_get_train_sampler", "it no longer takes train_dataset"
    )
    assert "self._get_train_sampler" in SOURCE, relied_on(
        "_get_train_sampler", "the training DataLoader no longer asks it for its sampler"
    )
    args = inspect.signature(transformers.TrainingArguments).parameters
    assert "train_sampling_strategy" in args and "length_column_name" in args, relied_on(
        "_get_train_sampler", "TrainingArguments lost train_sampling_strategy or length_column_name"
    )


def test_get_eval_sampler_is_still_the_evaluation_samplers_hook() -> None:
    assert hasattr(Trainer, "_get_eval_sampler"), relied_on("_get_eval_sampler", "it is gone")
    assert parameters(Trainer._get_eval_sampler) == ["self", "eval_dataset"], relied_on(
        "_get_eval_sampler", f"its parameters are now {parameters(Trainer._get_eval_sampler)}"
    )
    assert "sampler_fn=self._get_eval_sampler" in SOURCE, relied_on(
        "_get_eval_sampler", "the evaluation DataLoader no longer asks it for its sampler"
    )


def test_compute_loss_func_is_still_called_with_the_accumulated_item_count() -> None:
    # training.losses.make_compute_loss divides by num_items_in_batch and relies on the Trainer not dividing again.
    assert "compute_loss_func" in inspect.signature(Trainer.__init__).parameters, relied_on(
        "__init__", "it no longer takes compute_loss_func"
    )
    assert "num_items_in_batch=num_items_in_batch" in SOURCE and "self.compute_loss_func is not None" in SOURCE, (
        relied_on("compute_loss", "compute_loss_func is no longer given num_items_in_batch or trusted to scale")
    )


def test_run_epoch_is_still_called_once_per_epoch_with_the_epoch_keyword() -> None:
    assert hasattr(Trainer, "_run_epoch"), relied_on("_run_epoch", "it is gone (the loop was restructured)")
    assert "epoch" in parameters(Trainer._run_epoch), relied_on("_run_epoch", "it no longer takes epoch")
    assert "self._run_epoch(" in SOURCE and "epoch=epoch" in SOURCE, relied_on(
        "_run_epoch", "the training loop no longer calls it with epoch=epoch"
    )


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("_save_checkpoint", ["self", "model", "trial"]),
        ("_get_output_dir", ["self", "trial"]),
        ("_save_optimizer_and_scheduler", ["self", "output_dir"]),
        ("_save_scaler", ["self", "output_dir"]),
        ("_save_rng_state", ["self", "output_dir"]),
        ("save_model", ["self", "output_dir", "_internal_call"]),
    ],
)
def test_the_checkpoint_writers_keep_their_signatures(member: str, expected: list[str]) -> None:
    assert hasattr(Trainer, member), relied_on(member, "it is gone; the atomic checkpoint writer calls it")
    assert parameters(getattr(Trainer, member)) == expected, relied_on(
        member, f"its parameters are now {parameters(getattr(Trainer, member))}, not {expected}"
    )
    if member == "_save_checkpoint":
        assert "self._save_checkpoint(model, trial)" in SOURCE, relied_on(
            member, "the loop no longer saves through it"
        )


@pytest.mark.parametrize("attribute", ["_tr_loss", "_globalstep_last_logged", "_total_loss_scalar"])
def test_the_loop_bookkeeping_attributes_still_exist(attribute: str) -> None:
    assert f"self.{attribute} = " in SOURCE, relied_on(
        attribute, "the loop no longer keeps this attribute, so a checkpoint cannot carry the logged losses"
    )


def test_resumable_trainer_overrides_exactly_what_the_contract_covers() -> None:
    overridden = {
        name
        for name, value in vars(ResumableTrainer).items()
        if callable(value) and name.startswith("_") and not name.startswith("__") and hasattr(Trainer, name)
    }
    assert overridden == {"_get_eval_sampler", "_get_train_sampler", "_run_epoch", "_save_checkpoint"}, (
        f"ResumableTrainer overrides a private Trainer member that this contract does not check: {sorted(overridden)}"
    )


def test_training_batches_go_through_compute_loss_and_evaluations_through_evaluate() -> None:
    # ResumableTrainer counts the training accuracy in the public compute_loss and hands it over in evaluate.
    assert parameters(Trainer.compute_loss)[:5] == ["self", "model", "inputs", "return_outputs", "num_items_in_batch"]
    assert "self.compute_loss(model, inputs" in inspect.getsource(Trainer.training_step), relied_on(
        "training_step", "it no longer computes the training loss through self.compute_loss"
    )
    assert "self.evaluate(" in inspect.getsource(Trainer._evaluate), relied_on(
        "_evaluate", "the loop's evaluations no longer go through self.evaluate"
    )


@pytest.mark.parametrize("member", ["_save_rng_state", "_load_rng_state"])
def test_each_process_still_saves_and_loads_its_own_rng_state(member: str) -> None:
    # Under DDP every process writes rng_state_<rank>.pth into the staging folder and reads it back on resume.
    source = inspect.getsource(getattr(Trainer, member))
    assert 'f"rng_state_{' in source and "process_index" in source, relied_on(
        member, "it no longer keeps one RNG file per process, which a multi-process checkpoint relies on"
    )
