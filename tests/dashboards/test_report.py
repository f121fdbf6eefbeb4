"""The HTML report: self-contained, all sections present, empty data explained not fatal."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from jointsearch.dashboards.report import render_report, write_report

ERRORS_12 = [0.31, 0.12, 0.45, 0.27, 0.08, 0.52, 0.19, 0.38, 0.23, 0.41, 0.33, 0.29]


@pytest.fixture(scope="module")
def search_records(make_records):
    configs = [{"lr": 0.001 * 2**i, "optimizer": "sgd" if i % 2 else "adam"} for i in range(12)]
    errors = {
        1: ERRORS_12,
        3: [e * 0.9 for e in ERRORS_12[:9]] + [None] * 3,
        9: [None, 0.104, None, None, 0.0712, None, None, None, None, None, None, None],
    }
    return make_records(errors, configs=configs, bracket=0, n_params=50_000, cost_s=2.0)


@pytest.fixture(scope="module")
def page(search_records):
    """Rendered once: each render draws every figure and fits a forest (about a second)."""
    return render_report(search_records, title="BOHB <digits>", settings={"eta": 3, "seed": 0})


def test_report_is_self_contained_and_has_every_section(page):
    assert page.startswith("<!DOCTYPE html>")
    assert 'id="rank-correlation-heatmap"' in page
    assert "data:image/png;base64," in page
    assert "BOHB &lt;digits&gt;" in page  # title is escaped
    assert "<td class=\"text\">eta</td><td class=\"text\">3</td>" in page
    for section in ("settings", "best", "rank-correlation", "importance", "incumbent", "budget",
                    "params"):
        assert f'<section id="{section}">' in page
    # no external resources
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'src="(?!data:)', page)


def test_report_shows_the_best_configuration(page):
    best = page.split('<section id="best">')[1].split("</section>")[0]
    assert "t4" in best and "0.0712" in best and "0.016" in best and "adam" in best


def test_insufficient_pairs_say_so_in_the_table(page):
    assert "insufficient: only 2 configuration(s) at both budgets (need 5)" in page


def test_empty_records_explain_every_section():
    page = render_report([], title="nothing yet")
    assert "No evaluation succeeded" in page
    assert "two or more budgets" in page
    assert "No importance: no successful evaluations" in page
    assert "No evaluations recorded" in page


def test_best_may_be_a_plain_configuration(make_records):
    page = render_report(make_records({1: ERRORS_12[:3]}), title="t",
                         best={"lr": 0.648188, "batch": 89})
    assert "0.648188" in page and "89" in page


def test_write_report(tmp_path, make_records):
    records = make_records({1: ERRORS_12[:3]})
    path = write_report(tmp_path / "sub" / "report.html", records, title="t")
    assert path.read_text(encoding="utf-8").count('id="rank-correlation-heatmap"') == 1


def test_dashboards_import_neither_torch_ray_nor_mlflow():
    code = (
        "import sys, jointsearch.dashboards, jointsearch.dashboards.figures, "
        "jointsearch.dashboards.report\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray', 'mlflow', 'optuna'))\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
