"""Progress on screen (issue 15, item 5): the line's content from fed events, the planned budget,
the plain and the terminal drawing, and what a real search prints with and without ``--quiet``."""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from jointsearch.search.cli import main
from jointsearch.search.progress import ProgressDisplay, SearchProgress, format_line, planned_budget


class FakeClock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def fed(clock: FakeClock) -> SearchProgress:
    """Three trials through rungs 1, 3, 9: t0 reaches 9, t1 fails at 3, t2 is still running."""
    p = SearchProgress(budget_planned=40, budget_unit="epochs", clock=clock)
    for tid in ("t0", "t1", "t2"):
        p.trial_started(tid)
    p.evaluation("t0", 1, {"val_error": 0.5})
    p.evaluation("t1", 1, {"val_error": 0.4})
    p.evaluation("t2", 1, {"val_error": 0.6})
    p.trial_state("t0", "paused")
    p.evaluation("t0", 3, {"val_error": 0.45})  # continuation: 2 more epochs, not 3
    p.evaluation("t1", 3, {"val_error": float("nan"), "status": "diverged"})
    p.trial_ended("t1", "failed")
    p.trial_state("t0", "running")
    p.evaluation("t0", 9, {"val_error": 0.3})
    p.trial_ended("t0", "completed")
    clock.now += 20.0
    return p


class TestSnapshot:
    def test_counts_budget_and_incumbent_from_a_fed_sequence(self):
        """Budget is counted as spent (differences between rungs); the incumbent is the best
        result at the highest budget reached, not the lowest error anywhere."""
        s = fed(FakeClock()).snapshot()
        assert (s.trials_started, s.evaluations_done, s.running, s.failed) == (3, 6, 1, 1)
        assert s.budget_spent == pytest.approx(1 + 1 + 1 + 2 + 2 + 6)
        assert (s.best_val_error, s.best_budget, s.best_trial) == (0.3, 9, "t0")
        assert s.elapsed_s == 20.0
        # 13 epochs in 20 s, 27 to go
        assert s.eta_s == pytest.approx((40 - 13) / (13 / 20))

    def test_a_higher_budget_beats_a_lower_error_at_a_lower_budget(self):
        p = SearchProgress(10, clock=FakeClock())
        p.evaluation("a", 1, {"val_error": 0.1})
        p.evaluation("b", 3, {"val_error": 0.2})
        p.evaluation("c", 3, {"val_error": 0.15})
        p.evaluation("d", 1, {"val_error": 0.01})
        s = p.snapshot()
        assert (s.best_trial, s.best_budget, s.best_val_error) == ("c", 3, 0.15)

    def test_nothing_spent_yet_has_no_eta_and_no_incumbent(self):
        s = SearchProgress(10, clock=FakeClock()).snapshot()
        assert s.eta_s is None and s.best_val_error is None and s.evaluations_done == 0
        assert "ETA ?" in format_line(s) and "best -" in format_line(s)

    def test_spending_more_than_planned_raises_the_plan(self):
        clock = FakeClock()
        p = SearchProgress(2, clock=clock)
        p.evaluation("a", 9, {"val_error": 0.1})
        clock.now += 5
        s = p.snapshot()
        assert s.budget_planned == 9 and s.fraction == 1.0 and s.eta_s == 0

    def test_the_plain_line(self):
        line = format_line(fed(FakeClock()).snapshot())
        assert line == ("progress: 6 evaluations done, 1 running, 1 failed | best val_error 0.3000 at 9 epochs "
                        "(trial t0) | budget 13/~40 epochs (32%) | elapsed 0:20, ETA 0:42")


class TestPlannedBudget:
    def test_random_search_trains_everything_to_the_max_budget(self):
        assert planned_budget("fifo", 9, [1, 3, 9], 3) == 81

    def test_asha_is_one_bracket_paying_differences(self):
        # 9 at 1 epoch, 3 continued to 3 (2 more each), 1 continued to 9 (6 more)
        assert planned_budget("asha", 9, [1, 3, 9], 3) == 9 + 3 * 2 + 6

    def test_hyperband_fills_brackets_in_hpbandsters_order(self):
        # brackets of 9 (from rung 1), 3 (from rung 3), 3 (at 9 only): 21 + (3*3 + 1*6) + 3*9
        assert planned_budget("hyperband_bohb", 15, [1, 3, 9], 3) == 21 + 15 + 27
        assert planned_budget("hyperband", 9, [1, 3, 9], 3) == 21


class TestDrawing:
    def test_redirected_output_gets_plain_periodic_lines_and_a_last_one(self):
        out = io.StringIO()
        p = fed(FakeClock())
        with ProgressDisplay(p, out, plain_every_s=0.05):
            time.sleep(0.3)
        lines = out.getvalue().splitlines()
        assert len(lines) >= 3 and all(line.startswith("progress: ") for line in lines)
        assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
        assert lines[-1] == format_line(p.snapshot())

    def test_quiet_draws_nothing(self):
        out = io.StringIO()
        with ProgressDisplay(fed(FakeClock()), out, quiet=True, plain_every_s=0.01):
            time.sleep(0.1)
        assert out.getvalue() == ""

    @pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
    def test_a_terminal_gets_one_live_line_redrawn_at_most_once_a_second(self):
        """On a pty the display is tqdm's single line: carriage returns, no newline until the end,
        and in 2.5 s at most a handful of redraws however many events arrive."""
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))  # a 200-column terminal
        stream = os.fdopen(slave, "w")
        p = SearchProgress(100, clock=time.monotonic)
        display = ProgressDisplay(p, stream).start()
        assert display.tty
        for i in range(200):  # a burst of events: drawn by the timer, not per event
            p.trial_started(f"t{i}")
            p.evaluation(f"t{i}", 0.25, {"val_error": 1 - i / 1000})
            time.sleep(0.0125)
        display.close()
        stream.close()
        chunks = []
        while select.select([master], [], [], 0.2)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        os.close(master)
        text = b"".join(chunks).decode(errors="replace")
        assert "200 evaluations done, 200 running, 0 failed" in text
        assert "best val_error 0.8010 at 0.25 epochs (trial t199)" in text
        assert "50/~100 epochs" in text and "search  50%" in text
        redraws = text.count("\r")
        assert 2 <= redraws <= 8, repr(text[-400:])
        assert text.rstrip("\r\n").count("\n") == 0  # one line, redrawn in place


@pytest.mark.slow
def test_a_real_search_redirected_prints_plain_progress_lines_on_stderr(tmp_path):
    """A real tiny search through the CLI with stdout and stderr redirected: stderr has plain
    progress lines whose last one counts every evaluation; stdout is the summary, untouched."""
    proc = subprocess.run(
        [sys.executable, "-m", "jointsearch.search.cli", "search", "--trainer", "jointsearch.search.testing:fake_trainer",
         "--num-samples", "6", "--min-budget", "1", "--max-budget", "9", "--experiment", "progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "RAY_AUTH_MODE": "disabled", "JOINTSEARCH_PROGRESS_EVERY_S": "0.5",
             "JOINTSEARCH_FAKE_SLEEP_S": "0.3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("progress: ")]
    assert len(lines) >= 2, proc.stderr[-3000:]
    assert "\r" not in proc.stderr and "\x1b[" not in proc.stderr
    evaluations = int(re.search(r"(\d+) evaluations at budgets", proc.stdout).group(1))
    assert lines[-1].startswith(f"progress: {evaluations} evaluations done, 0 running, 0 failed | best val_error ")
    assert "progress:" not in proc.stdout


@pytest.mark.slow
def test_quiet_prints_no_progress(ray_runtime, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JOINTSEARCH_PROGRESS_EVERY_S", "0.2")
    monkeypatch.chdir(tmp_path)
    code = main(["search", "--trainer", "jointsearch.search.testing:fake_trainer", "--num-samples", "4",
                 "--min-budget", "1", "--max-budget", "3", "--experiment", "quiet", "--quiet",
                 "--storage-path", str(tmp_path / "ray")])
    out, err = capsys.readouterr()
    assert code == 0 and "best: val_error" in out
    assert "progress:" not in err and "progress:" not in out and "evaluations done" not in err
