"""Tests for trainers/loop.py, grouped by how a call can go: learning at all, budgets, exact
continuation from a checkpoint, reporting, and divergence."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from jointsearch.trainers.data import DataSplits, Split, load_dataset
from jointsearch.trainers.loop import (
    CHECKPOINT_FILE, Hyperparameters, Progress, TrainSettings, lr_factor, restarts_factor,
    sgdr_factor, train,
)

TINY = {"res_blocks_1": 1, "res_blocks_2": 1, "res_blocks_3": 1, "filters_0": 8,
        "learning_rate": 0.05, "batch_size": 64, "mixup_alpha": 0.0, "cutout_length": 0}
# Every random stream in use: two branches (Shake-Shake), ShakeDrop, MixUp, CutOut, crops.
RANDOM_EVERYWHERE = {"res_blocks_1": 1, "res_blocks_2": 1, "res_branches_1": 2,
                     "res_branches_2": 2, "filters_0": 4, "shakedrop_death_rate": 0.5,
                     "mixup_alpha": 0.4, "cutout_length": 3, "batch_size": 48,
                     "learning_rate": 0.05}


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def synthetic() -> DataSplits:
    return load_dataset("synthetic")


def make_nan_data(data: DataSplits) -> DataSplits:
    x = data.train.x.clone()
    x[:, :, 0, 0] = float("nan")
    return dataclasses.replace(data, train=Split(x, data.train.y))


def weights_equal(dir_a, dir_b) -> bool:
    a = torch.load(dir_a / CHECKPOINT_FILE, weights_only=True)["model"]
    b = torch.load(dir_b / CHECKPOINT_FILE, weights_only=True)["model"]
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class TestHyperparameters:
    def test_missing_keys_take_the_paper_baseline(self):
        hp = Hyperparameters.from_config({}, image_size=32, n_train=45000)
        assert (hp.learning_rate, hp.batch_size, hp.weight_decay, hp.momentum) == \
            (0.1, 32, 5e-4, 0.9)
        assert (hp.mixup_alpha, hp.cutout_length, hp.shakedrop_death_rate) == (0.2, 16, 0.0)

    def test_batch_and_cutout_are_rounded_and_clamped(self):
        hp = Hyperparameters.from_config({"batch_size": 88.6, "cutout_length": 20},
                                         image_size=8, n_train=50)
        assert (hp.batch_size, hp.cutout_length) == (50, 8)


class TestSchedule:
    def test_sgdr_restarts_after_cycles_of_growing_length(self):
        """T0 = 1, Tmult = 2: restarts at 1, 3, 7; half-way through a cycle the factor is 1/2."""
        for restart in (0.0, 1.0, 3.0, 7.0):
            assert sgdr_factor(restart, 1.0, 2.0) == pytest.approx(1.0)
        for cycle_end in (1.0, 3.0, 7.0):
            assert sgdr_factor(cycle_end - 1e-9, 1.0, 2.0) == pytest.approx(0.0, abs=1e-6)
        assert sgdr_factor(2.0, 1.0, 2.0) == pytest.approx(0.5)
        assert sgdr_factor(5.0, 1.0, 2.0) == pytest.approx(0.5)

    def test_constant_cycles_with_tmult_one(self):
        assert sgdr_factor(2.5, 1.0, 1.0) == pytest.approx(0.5)

    def test_invalid_settings_are_rejected(self):
        with pytest.raises(ValueError):
            TrainSettings(t0=0.0)
        with pytest.raises(ValueError):
            TrainSettings(t_mult=0.5)
        with pytest.raises(ValueError, match="ascending"):
            TrainSettings(cycle_ends=(3.0, 1.0))
        with pytest.raises(ValueError, match="ascending"):
            TrainSettings(cycle_ends=(0.0, 1.0))

    def test_restarts_end_a_cycle_at_every_given_point(self):
        """Cycles [0, 1], [1, 3], [3, 9]: 0 just before each end, 1 at each restart, 1/2 half-way."""
        ends = (1.0, 3.0, 9.0)
        for end in ends:
            assert restarts_factor(end - 1e-9, ends, 2.0) == pytest.approx(0.0, abs=1e-6)
        for start in (0.0, 1.0, 3.0):
            assert restarts_factor(start, ends, 2.0) == pytest.approx(1.0)
        assert restarts_factor(0.5, ends, 2.0) == pytest.approx(0.5)
        assert restarts_factor(2.0, ends, 2.0) == pytest.approx(0.5)
        assert restarts_factor(6.0, ends, 2.0) == pytest.approx(0.5)

    def test_restarts_go_on_as_sgdr_past_the_last_point(self):
        """Past 9 the next cycle is Tmult x the last one (6 -> 12): restart at 9, minimum at 21."""
        ends = (1.0, 3.0, 9.0)
        assert restarts_factor(9.0, ends, 2.0) == pytest.approx(1.0)
        assert restarts_factor(15.0, ends, 2.0) == pytest.approx(0.5)
        assert restarts_factor(21.0 - 1e-9, ends, 2.0) == pytest.approx(0.0, abs=1e-6)

    def test_lr_factor_picks_the_schedule(self):
        assert lr_factor(2.0, TrainSettings(), 1.0) == sgdr_factor(2.0, 1.0, 2.0)
        assert lr_factor(2.0, TrainSettings(cycle_ends=(1.0, 3.0)), 1.0) == pytest.approx(0.5)


class TestLearning:
    def test_one_step_has_a_finite_loss(self, digits):
        steps_per_epoch = math.ceil(len(digits.train) / 64)
        record = train(TINY, 1 / steps_per_epoch, digits)
        assert record.steps == 1 and record.status == "ok"
        assert math.isfinite(record.train_loss)
        assert 0.0 <= record.val_error <= 1.0
        assert record.device == "cpu" and record.n_params > 0

    def test_five_epochs_on_digits_beat_chance_by_far(self, digits):
        record = train(TINY, 5, digits, evaluate_test=True)
        assert record.val_error < 0.5          # chance is 0.9
        assert record.test_error is not None and record.test_error < 0.5
        assert record.budget_reached == 5.0 and record.budget_unit == "epochs"

    def test_same_seed_same_result_other_seed_other_result(self, synthetic):
        a = train(RANDOM_EVERYWHERE, 1, synthetic, seed=0)
        b = train(RANDOM_EVERYWHERE, 1, synthetic, seed=0)
        c = train(RANDOM_EVERYWHERE, 1, synthetic, seed=1)
        assert a.train_loss == b.train_loss
        assert a.train_loss != c.train_loss


class TestBudgets:
    def test_fractional_epochs_round_to_steps(self, synthetic):
        steps_per_epoch = math.ceil(len(synthetic.train) / 48)
        record = train(RANDOM_EVERYWHERE, 1.5, synthetic)
        assert record.steps == round(1.5 * steps_per_epoch)

    def test_seconds_budget_stops_near_the_budget(self, digits):
        record = train(TINY, 1.0, digits, budget_unit="seconds")
        assert record.status == "ok" and record.budget_unit == "seconds"
        assert 1.0 <= record.budget_reached < 1.5
        assert record.steps > 1
        assert record.cost_s >= record.budget_reached

    def test_unknown_unit_is_rejected(self, synthetic):
        with pytest.raises(ValueError, match="budget_unit"):
            train(TINY, 1, synthetic, budget_unit="minutes")


class TestContinuation:
    """train(total) == train(part, save) + train(total, checkpoint): weights and val_error."""

    @pytest.mark.parametrize("first", [1.0, 1.5], ids=["epoch-boundary", "mid-epoch"])
    def test_continuation_is_exact(self, synthetic, tmp_path, first):
        settings = TrainSettings(t0=0.5)
        whole = train(RANDOM_EVERYWHERE, 3, synthetic, settings=settings,
                      save_checkpoint=tmp_path / "whole")
        part = train(RANDOM_EVERYWHERE, first, synthetic, settings=settings,
                     save_checkpoint=tmp_path / "part")
        rest = train(RANDOM_EVERYWHERE, 3, synthetic, settings=settings,
                     checkpoint=tmp_path / "part", save_checkpoint=tmp_path / "rest")
        assert part.steps < rest.steps == whole.steps
        assert rest.val_error == whole.val_error
        assert weights_equal(tmp_path / "whole", tmp_path / "rest")

    def test_continuation_is_exact_with_restarts_at_the_rungs(self, synthetic, tmp_path):
        """The ``restarts`` protocol: one call to 3 equals 1 (saved) + 2 more, through a restart."""
        settings = TrainSettings(cycle_ends=(1.0, 3.0))
        whole = train(RANDOM_EVERYWHERE, 3, synthetic, settings=settings,
                      save_checkpoint=tmp_path / "whole")
        part = train(RANDOM_EVERYWHERE, 1, synthetic, settings=settings,
                     save_checkpoint=tmp_path / "part")
        rest = train(RANDOM_EVERYWHERE, 3, synthetic, settings=settings,
                     checkpoint=tmp_path / "part", save_checkpoint=tmp_path / "rest")
        assert part.budget_start == 0.0 and rest.budget_start == 1.0
        assert rest.budget_reached - rest.budget_start == 2.0
        assert rest.val_error == whole.val_error
        assert weights_equal(tmp_path / "whole", tmp_path / "rest")

    def test_budget_already_reached_only_evaluates(self, synthetic, tmp_path):
        first = train(TINY, 1, synthetic, save_checkpoint=tmp_path / "a")
        again = train(TINY, 1, synthetic, checkpoint=tmp_path / "a")
        assert again.steps == first.steps and again.val_error == first.val_error

    def test_checkpoint_in_other_unit_is_rejected(self, synthetic, tmp_path):
        train(TINY, 0.5, synthetic, save_checkpoint=tmp_path / "a")
        with pytest.raises(ValueError, match="epochs"):
            train(TINY, 1, synthetic, budget_unit="seconds", checkpoint=tmp_path / "a")

    def test_missing_checkpoint_is_a_clear_error(self, synthetic, tmp_path):
        with pytest.raises(FileNotFoundError, match=CHECKPOINT_FILE):
            train(TINY, 1, synthetic, checkpoint=tmp_path / "nowhere")


class TestAcceleratorInputPath:
    """The GPU's input path (data on the device, one host sync every 16 steps) forced on the CPU:
    its logic is covered here; the CUDA kernels and the channels-last layout need a GPU."""

    GPU_PATH = {"sync_every": 16}

    def test_the_device_chooses_unless_forced(self):
        assert TrainSettings().input_path(torch.device("cpu")) == (False, 1)
        assert TrainSettings().input_path(torch.device("cuda")) == (True, 16)
        assert TrainSettings(**self.GPU_PATH).input_path(torch.device("cpu")) == (False, 16)
        with pytest.raises(ValueError, match="sync_every"):
            TrainSettings(sync_every=0)

    def test_continuation_is_exact_on_the_accelerator_path(self, synthetic, tmp_path):
        settings = TrainSettings(t0=0.5, **self.GPU_PATH)
        whole = train(RANDOM_EVERYWHERE, 3, synthetic, settings=settings, save_checkpoint=tmp_path / "whole")
        train(RANDOM_EVERYWHERE, 1.5, synthetic, settings=settings, save_checkpoint=tmp_path / "part")
        rest = train(RANDOM_EVERYWHERE, 3, synthetic, settings=settings, checkpoint=tmp_path / "part",
                     save_checkpoint=tmp_path / "rest")
        assert rest.steps == whole.steps and rest.val_error == whole.val_error
        assert weights_equal(tmp_path / "whole", tmp_path / "rest")
        assert whole.status == "ok" and 0.0 <= whole.val_error <= 1.0

    def test_divergence_is_seen_at_the_next_sync(self, synthetic):
        """NaN from the first step: the host looks only every 16 steps (or at an epoch's end)."""
        steps_per_epoch = math.ceil(len(synthetic.train) / TINY.get("batch_size", 64))
        record = train(TINY, 3, make_nan_data(synthetic), settings=TrainSettings(**self.GPU_PATH))
        assert record.status == "diverged" and record.val_error == 1.0
        assert record.steps == min(16, steps_per_epoch)
        host = train(TINY, 3, make_nan_data(synthetic))
        assert host.steps == 1  # the host path looks after every step

    def test_time_budgets_end_on_the_accelerator_path(self, synthetic):
        record = train(TINY, 1.0, synthetic, budget_unit="seconds", settings=TrainSettings(**self.GPU_PATH))
        assert record.status == "ok" and record.budget_reached >= 1.0 and record.steps >= 16


class TestReporting:
    def test_report_after_each_epoch_and_at_the_end(self, synthetic):
        seen: list[Progress] = []
        record = train(TINY, 2.5, synthetic, report=seen.append)
        steps_per_epoch = math.ceil(len(synthetic.train) / 64)
        end = round(2.5 * steps_per_epoch) / steps_per_epoch
        assert 2.0 < end < 3.0
        assert [p.epoch for p in seen] == pytest.approx([1.0, 2.0, end])
        assert all(p.val_error is not None for p in seen)
        assert seen[-1].val_error == record.val_error and seen[-1].step == record.steps
        assert seen[0].elapsed_s <= seen[1].elapsed_s <= seen[2].elapsed_s

    def test_no_duplicate_report_when_ending_on_an_epoch(self, synthetic):
        seen: list[Progress] = []
        train(TINY, 2, synthetic, report=seen.append)
        assert [p.step for p in seen] == sorted(set(p.step for p in seen)) and len(seen) == 2


class TestDivergence:
    def test_huge_learning_rate_diverges(self, digits):
        record = train({**TINY, "learning_rate": 1e6}, 2, digits)
        assert record.status == "diverged"
        assert record.val_error == 1.0 and record.train_loss == math.inf

    def test_nan_input_diverges_at_once_and_stays_diverged(self, synthetic, tmp_path):
        record = train(TINY, 3, make_nan_data(synthetic), evaluate_test=True,
                       save_checkpoint=tmp_path / "nan")
        assert record.status == "diverged" and record.steps == 1
        assert record.val_error == 1.0 and record.test_error == 1.0
        again = train(TINY, 5, synthetic, checkpoint=tmp_path / "nan")
        assert again.status == "diverged" and again.steps == 1
