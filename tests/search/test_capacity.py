"""search/ray_capacity.py: configurations that cannot fit are never started but taught to the
searcher as bad points; searches bounded by time or GPU-hours stop starting new configurations
when the budget is nearly spent; and, on a simulated GPU cluster, ``--gpus-per-trial auto``
packs small configurations onto one GPU."""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jointsearch.search import read_search
from jointsearch.search.ray_capacity import INFEASIBLE, CapacitySearcher
from jointsearch.search.ray_tune import ConfigSpaceRandomSearcher
from jointsearch.spaces import get


def _fits(config) -> dict:
    """A planner that refuses every configuration with a batch above 32 (a real one is in
    trainers/memory.py; this one makes the split predictable)."""
    if config["batch_size"] > 32:
        return {"feasible": False, "fraction": 0.0, "need_bytes": 2**40, "device_bytes": 2**30,
                "reason": f"batch {config['batch_size']} needs 1024 GiB, one device has 1.0 GiB"}
    return {"feasible": True, "fraction": 0.25, "need_bytes": 2**28, "device_bytes": 2**30, "reason": ""}


class TestInfeasibleConfigurations:
    def test_never_suggested_but_recorded_and_taught_to_the_searcher(self):
        inner = ConfigSpaceRandomSearcher(get("tiny"), seed=3)
        recorded = []
        searcher = CapacitySearcher(inner, planner=_fits, on_infeasible=lambda *a: recorded.append(a))
        configs = [searcher.suggest(f"t{i}") for i in range(10)]
        assert all(c["batch_size"] <= 32 for c in configs)
        assert recorded and searcher.infeasible == len(recorded)
        for trial_id, config, plan in recorded:
            assert trial_id.endswith(f"-{INFEASIBLE}") and config["batch_size"] > 32 and "GiB" in plan["reason"]
        # the wrapped searcher saw them (it will not propose them again) and closed them
        from jointsearch.search.tracking import config_id

        assert {config_id(c) for _, c, _ in recorded} <= inner.seen
        assert len(inner.live) == 10  # only the ten started configurations are still running

    def test_bohb_learns_an_infeasible_configuration_as_an_infinite_loss(self):
        from ray.tune.search.bohb import TuneBOHB

        inner = TuneBOHB(space=get("tiny"), seed=0, metric="val_error", mode="min")
        searcher = CapacitySearcher(inner, planner=_fits)
        ids = [f"t{i}" for i in range(8)]
        for trial_id in ids:
            assert searcher.suggest(trial_id)["batch_size"] <= 32
        losses = [loss for per_budget in inner.bohber.losses.values() for loss in per_budget]
        assert losses and all(math.isinf(loss) for loss in losses)
        assert len(losses) == searcher.infeasible
        # Tune's trial ids reach BOHB under the id it was asked with (aliases after a retry).
        for trial_id in ids:
            searcher.on_pause(trial_id)
        assert len(inner.paused) == 8 and not inner.running
        for trial_id in ids:
            searcher.on_unpause(trial_id)
            searcher.on_trial_complete(trial_id, {"val_error": 0.5})
        assert not inner.running and not inner.trial_to_params


class TestBudgetExhaustion:
    def test_time_budget_stops_new_configurations_when_one_more_would_overrun(self):
        searcher = CapacitySearcher(ConfigSpaceRandomSearcher(get("tiny"), seed=0), time_budget_s=1.0)
        assert isinstance(searcher.suggest("a"), dict)
        time.sleep(0.3)
        searcher.on_trial_complete("a", {"val_error": 0.5})  # a configuration takes ~0.3 s
        assert isinstance(searcher.suggest("b"), dict)  # 0.3 + 0.3 < 1.0
        time.sleep(0.45)
        assert searcher.suggest("c") == "FINISHED"  # 0.75 + 0.3 >= 1.0
        assert "time budget" in searcher.stopped_reason
        searcher.on_trial_complete("b", {"val_error": 0.4})  # running trials still report

    def test_gpu_hours_count_the_gpu_share_of_every_evaluation(self):
        searcher = CapacitySearcher(ConfigSpaceRandomSearcher(get("tiny"), seed=0), gpu_seconds=10.0,
                                    gpus_per_trial=0.5)
        for trial_id in ("a", "b", "c", "d"):
            assert isinstance(searcher.suggest(trial_id), dict)
            searcher.on_trial_result(trial_id, {"val_error": 0.5, "cost_s": 3.0})  # 1.5 GPU-s
            searcher.on_trial_complete(trial_id, {"val_error": 0.5})
        assert searcher.spent_gpu_s == pytest.approx(6.0)
        assert isinstance(searcher.suggest("e"), dict)  # 6 + 1.5 < 10
        searcher.on_trial_result("e", {"val_error": 0.5, "cost_s": 4.0})  # 8 GPU-s spent
        assert searcher.suggest("f") == "FINISHED"  # 8 + 0.75 (e still running) + 1.5 >= 10
        assert "GPU budget" in searcher.stopped_reason

    @pytest.mark.slow
    def test_a_search_bounded_by_time_starts_configurations_until_the_budget_and_ends_soon_after(
            self, ray_runtime, make_settings):
        from jointsearch.search import run_search

        budget = 25.0
        # --num-samples 1: the budget alone decides how many start (2 slots start at once). It was
        # 3, and a CI machine loaded enough to make one configuration cost ~20 s started only 2.
        settings = make_settings(scheduler="asha", time_budget_s=budget, num_samples=1, cpus_per_trial=1,
                                 trainer_kwargs={"sleep_s": 0.5})
        started = time.time()
        summary = run_search(settings)
        wall = time.time() - started
        results = read_search(settings.tracking_uri, settings.experiment)
        # far more configurations than --num-samples: the budget, not the count, bounded it
        assert summary.n_trials > settings.num_samples, summary
        # no configuration started after the budget was spent (MLflow opens a trial's run when
        # Tune starts it) ...
        import mlflow

        client = mlflow.MlflowClient(settings.tracking_uri)
        starts = [client.get_run(r).info.start_time / 1000.0 for r in results.trial_runs.values()]
        # the budget counts from when the search hands Tune its first configuration
        assert max(starts) - min(starts) <= budget, (max(starts) - min(starts), summary)
        last_start = max(starts)
        # ... and the running ones then ended: a configuration is 3 rungs of 0.5 s plus Tune's
        # overhead, which a loaded 2-core machine stretches to tens of seconds (the tail itself
        # is measured in bench/cluster.py, not asserted here)
        last = max(r.finished_at for r in results.records)
        assert last - started < budget + 60, (last - started, summary)
        print(f"{summary.n_trials} trials, {summary.n_evaluations} evaluations; last configuration started "
              f"{last_start - started:.1f} s, last evaluation ended {last - started:.1f} s after the start; "
              f"the search took {wall:.1f} s, for a {budget:g} s budget")
        assert results.status == "FINISHED"


@pytest.mark.slow
def test_auto_packing_shares_a_simulated_gpu_and_never_starts_what_cannot_fit(tmp_path, sqlite_uri):
    """One logical GPU of a real Ray head (4 CPUs), the joint space on CIFAR-10's image size with
    a 4 GiB device: small configurations run several at once on the one GPU, configurations
    that cannot fit get a FAILED MLflow run with failure_kind=infeasible and never run."""
    from bench.cluster import SimulatedCluster

    cluster = SimulatedCluster(gpus=1, cpus=4)
    log = tmp_path / "evaluations.jsonl"
    uri = sqlite_uri
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "jointsearch.search.cli", "search", "--ray-address", cluster.address,
             "--space", "zela2018", "--dataset", "cifar10", "--scheduler", "bohb",
             "--trainer", "bench.problems:cluster_sleeper", "--trainer-arg", "unit_s=0.5",
             "--trainer-arg", f"log_path={log}", "--num-samples", "12", "--min-budget", "1", "--max-budget", "3",
             "--eta", "3", "--gpus-per-trial", "auto", "--gpu-memory-gib", "4", "--cpus-per-trial", "1",
             "--experiment", "packing", "--mlflow-uri", uri, "--storage-path", str(tmp_path / "ray")],
            cwd=tmp_path, capture_output=True, text=True, timeout=400,
            env={**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(Path(__file__).parents[2])})
    finally:
        cluster.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluations = [json.loads(line) for line in log.read_text().splitlines()]
    shares = [e["gpu"] for e in evaluations]
    assert evaluations and all(0 < g <= 1 for g in shares) and min(shares) < 1, shares
    overlapping = max(sum(1 for o in evaluations if o["start"] <= e["start"] < o["end"]) for e in evaluations)
    assert overlapping > 1, "no two configurations ever shared the GPU"
    results = read_search(uri, "packing")
    infeasible = {t: tags for t, tags in results.trial_tags.items() if tags.get("failure_kind") == INFEASIBLE}
    assert infeasible, "expected some joint-space configurations not to fit 4 GiB"
    import mlflow

    client = mlflow.MlflowClient(uri)
    for trial_id, tags in infeasible.items():
        assert tags["final_status"] == "failed" and tags["last_status"] == INFEASIBLE
        assert "one device has 4.0 GiB" in tags["failure_reason"]
        assert client.get_run(results.trial_runs[trial_id]).info.status == "FAILED"
    from jointsearch.search.tracking import CONFIG_ID_TAG, config_id

    started = {config_id(e["config"]) for e in evaluations}
    never = {tags[CONFIG_ID_TAG] for tags in infeasible.values()}
    assert len(never) == len(infeasible) and not started & never
    print(f"{len(evaluations)} evaluations, up to {overlapping} at once on 1 GPU, shares "
          f"{sorted({e['gpu'] for e in evaluations})}; {len(infeasible)} infeasible never started")


@pytest.mark.parametrize("args", [
    ["--gpus-per-trial", "lots"],
    ["--gpus-per-trial", "-1"],
    ["--gpu-hours", "2"],  # with no GPU per trial there are no GPU-hours to count
    ["--time-budget", "-5"],
    ["--gpu-memory-gib", "-1", "--gpus-per-trial", "auto"],
    ["--gpus-per-trial", "auto", "--scheduler", "hpbandster"],
    ["--time-budget", "60", "--scheduler", "hpbandster"],
])
def test_capacity_options_user_errors_are_one_line_exit_2_and_write_nothing(tmp_path, args):
    before = set(os.listdir(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "jointsearch.search.cli", "search", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jointsearch: error:"), proc.stderr
    assert set(os.listdir(tmp_path)) == before


def test_gpus_per_trial_auto_is_a_setting_that_survives_a_resume(make_settings):
    """settings.json stores "auto" as it is; validation accepts it and the new fields."""
    import dataclasses

    settings = make_settings(gpus_per_trial="auto", gpu_memory_gib=16.0, time_budget_s=3600.0).validate()
    assert settings.gpu_packing and settings.budgeted
    stored = json.loads(json.dumps(dataclasses.asdict(settings), default=str))
    assert type(settings)(**stored) == settings
    assert settings.as_params()["gpus_per_trial"] == "auto"
