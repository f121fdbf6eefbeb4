"""Disk a finished search holds, per ``--keep-checkpoints`` mode.

    python -m bench.disk                      # 27 configurations of `tiny`, budgets 1..9 (eta 3)
    python -m bench.disk --num-samples 9      # quicker

Runs the same seeded BOHB search (the fake trainer, which writes a small state file per rung,
so the figures count checkpoints rather than model bytes) once per mode and counts the Tune
checkpoint folders and bytes left under the storage path afterwards, next to the number of
evaluations (Tune's ``num_to_keep=None`` would keep one checkpoint per evaluation: ``all``).
With a real trainer multiply the checkpoint count by the size of one checkpoint (~8.5 bytes
per parameter measured for the built-in trainer, issue 12).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import table, write_json


def one(keep: str, num_samples: int, tmp: Path) -> dict:
    from jointsearch.search import SearchSettings, run_search

    storage = tmp / f"ray-{keep}"
    settings = SearchSettings(space="tiny", min_budget=1, max_budget=9, eta=3, num_samples=num_samples, seed=1,
                              mlflow_uri=f"sqlite:///{tmp / 'mlflow.db'}", experiment=f"disk-{keep}",
                              storage_path=str(storage), trainer="jointsearch.search.testing:fake_trainer",
                              keep_checkpoints=keep)
    started = time.time()
    summary = run_search(settings)
    checkpoints = [p for p in storage.rglob("checkpoint_*") if p.is_dir()]
    held = sum(f.stat().st_size for p in checkpoints for f in p.rglob("*") if f.is_file())
    return {"keep": keep, "trials": summary.n_trials, "evaluations": summary.n_evaluations,
            "checkpoints_left": len(checkpoints), "checkpoint_bytes_left": held, "wall_s": round(time.time() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=27)
    parser.add_argument("--out", default="disk")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-disk-") as tmp:
        rows = [one(keep, args.num_samples, Path(tmp)) for keep in ("all", "promotable", "none")]
    print(table(["keep", "trials", "evaluations", "checkpoints_left", "checkpoint_bytes_left", "wall_s"],
                [[r[k] for k in ("keep", "trials", "evaluations", "checkpoints_left", "checkpoint_bytes_left",
                                 "wall_s")] for r in rows]))
    print(f"wrote {write_json('disk', {'mode': 'full', 'runs': 1, 'num_samples': args.num_samples, 'rows': rows}, args.out)}")


if __name__ == "__main__":
    main()
