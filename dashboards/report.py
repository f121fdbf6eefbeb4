"""One self-contained HTML page summarising a search: tables from the analysis records and PNG
figures inlined as base64 data URIs (no external CSS, JS or image files), so the page can be
mailed, attached to an MLflow run or opened offline.

Every section is computed by :mod:`~jointsearch.dashboards.analysis` and drawn by
:mod:`~jointsearch.dashboards.figures`; a section without data says why instead of failing.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from . import analysis, figures
from .records import EvaluationRecord

__all__ = ["render_report", "write_report"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
td.insufficient { color: #777; background: #eee; font-style: italic; }
img { max-width: 100%; height: auto; display: block; margin: .5em 0; }
p.note { color: #555; font-size: .9em; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.{digits}g}"
    return _esc(value)


def _img(figs: figures.Drawn, element_id: str, alt: str, make: Callable[[], Figure]) -> str:
    data = base64.b64encode(figs.png(element_id, make)).decode("ascii")
    return f'<img id="{_esc(element_id)}" alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], text_cols: int = 1) -> str:
    """Cells in ``rows`` are already-escaped HTML; the first ``text_cols`` columns align left."""
    head = "".join(
        f'<th class="text">{_esc(h)}</th>' if i < text_cols else f"<th>{_esc(h)}</th>"
        for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = "".join(
            c if c.startswith("<td") else (f'<td class="text">{c}</td>' if i < text_cols else f"<td>{c}</td>")
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section(title: str, body: str, section_id: str) -> str:
    return f'<section id="{_esc(section_id)}"><h2>{_esc(title)}</h2>\n{body}\n</section>'


def _settings_section(settings: Mapping[str, Any] | None, n_records: int) -> str:
    rows = [[_esc(k), _esc(v)] for k, v in (settings or {}).items()]
    rows.append(["evaluations recorded", _esc(n_records)])
    return _section("Search settings", _table(["setting", "value"], rows, text_cols=2), "settings")


def _best_section(best: EvaluationRecord | Mapping[str, Any] | None) -> str:
    if best is None:
        return _section("Best configuration", _note("No evaluation succeeded, so there is no best "
                                                     "configuration."), "best")
    if isinstance(best, EvaluationRecord):
        config, meta = best.config, [
            ["trial", _esc(best.trial_id)],
            ["val_error", _num(best.val_error)],
            ["budget", _num(best.budget)],
        ]
        if best.n_params is not None:
            meta.append(["parameters", _esc(best.n_params)])
    else:
        config, meta = best, []
    rows = meta + [[_esc(k), _esc(v)] for k, v in config.items()]
    return _section("Best configuration", _table(["", "value"], rows, text_cols=2), "best")


def _rank_section(info: analysis.RankCorrelationInfo, paired: Sequence[analysis.PairedErrors],
                  figs: figures.Drawn) -> str:
    parts = []
    if len(info.budgets) < 2:
        parts.append(_note(f"Rank correlation needs successful evaluations at two or more budgets; "
                           f"found {len(info.budgets)}."))
    else:
        rows = []
        level = f"{info.confidence:.0%}"
        for p in info.pairs:
            head = [_num(p.budget_low), _num(p.budget_high), _esc(p.n_pairs)]
            if p.sufficient:
                ci = f"[{_num(p.ci_low, 3)}, {_num(p.ci_high, 3)}]"
                rows.append(head + [_num(p.spearman, 3), _num(p.kendall, 3), ci,
                                    _num(p.spearman_p, 2)])
            else:
                rows.append(head + [f'<td class="insufficient" colspan="4">insufficient: '
                                    f"{_esc(p.reason)}</td>"])
        parts.append(_table(["budget low", "budget high", "n", "Spearman ρ", "Kendall τ",
                             f"{level} CI of ρ (bootstrap)", "p (ρ)"], rows, text_cols=0))
        parts.append(_note(f"Configurations evaluated OK at both budgets; pairs with fewer than "
                           f"{info.min_pairs} are reported as insufficient, not as a number."))
    parts.append(_img(figs, "rank-correlation-heatmap", "Rank correlation heatmap",
                          lambda: figures.rank_correlation_heatmap(info)))
    if any(p.n_pairs for p in paired):
        parts.append("<h3>Validation error at adjacent budgets</h3>")
        parts.append(_img(figs, "budget-scatter", "Budget scatter", lambda: figures.budget_scatter(paired)))
    return _section("Rank correlation across budgets", "\n".join(parts), "rank-correlation")


def _importance_section(info: analysis.ImportanceInfo | None, error: str | None, figs: figures.Drawn) -> str:
    if info is None:
        return _section("Hyperparameter importance", _note(f"Importance could not be computed: {error}"),
                        "importance")
    if not info.sufficient:
        return _section("Hyperparameter importance", _note(f"No importance: {info.reason}."),
                        "importance")
    parts = [_note(f"fANOVA over {info.n_records} configurations at budget {info.budget:g} "
                   f"(Optuna's FanovaImportanceEvaluator, {info.n_trees} trees, seed {info.seed}).")]
    if info.imputed:
        desc = ", ".join(f"{i.name} = {i.value} ({i.source}, {i.n_imputed} records)"
                         for i in info.imputed)
        parts.append(_note(f"Imputed where inactive: {desc}."))
    parts.append(_img(figs, "importance-bars", "Importance bars", lambda: figures.importance_bars(info)))
    if info.marginals:
        parts.append(_note("Marginals: mean observed validation error per bin of each parameter "
                           "(records where it was active)."))
        parts.append(_img(figs, "marginals", "Marginals", lambda: figures.marginal_plots(info)))
    return _section("Hyperparameter importance", "\n".join(parts), "importance")


def _incumbent_section(info: analysis.IncumbentInfo, figs: figures.Drawn) -> str:
    if info.budget is None:
        return _section("Incumbent trajectory", _note("No evaluation succeeded."), "incumbent")
    body = _img(figs, "incumbent-plot", "Incumbent trajectory", lambda: figures.incumbent_plot(info))
    return _section("Incumbent trajectory", body, "incumbent")


def _budget_section(info: analysis.BudgetInfo, figs: figures.Drawn) -> str:
    if info.n_evaluations == 0:
        return _section("Budget spent", _note("No evaluations recorded."), "budget")
    rows = [[_num(r.budget), _esc(r.n_evaluations), _esc(r.n_ok), _num(r.total_budget),
             _num(r.total_cost_s)] for r in info.rungs]
    parts = [_table(["rung (budget)", "evaluations", "ok", "budget spent", "cost [s]"], rows,
                    text_cols=0)]
    if info.brackets:
        rows = [[_esc(b.bracket), _esc(b.n_evaluations), _esc(b.n_ok), _num(b.total_budget),
                 _esc(", ".join(f"{x:g}" for x in b.budgets))] for b in info.brackets]
        parts.append(_table(["bracket", "evaluations", "ok", "budget spent", "rungs"], rows,
                            text_cols=0))
    parts.append(_img(figs, "budget-bars", "Budget per rung and bracket", lambda: figures.budget_bars(info)))
    return _section("Budget spent", "\n".join(parts), "budget")


def _params_section(info: analysis.ParamsInfo, figs: figures.Drawn) -> str:
    if not info.n_params:
        return _section("Validation error vs parameter count",
                        _note("No successful evaluation recorded its parameter count."), "params")
    body = _img(figs, "params-scatter", "Validation error vs parameters", lambda: figures.params_scatter(info))
    if info.n_without_params:
        body += _note(f"{info.n_without_params} successful evaluation(s) without a parameter "
                      f"count are not shown.")
    return _section("Validation error vs parameter count", body, "params")


def _budget_decisions_section(decisions: Sequence[Mapping[str, Any]]) -> str:
    """Issue 14: each rung the adaptive budgets dropped or restored, with the rank correlation
    (against the top rung it was compared with) and the interval that caused it."""
    rows = []
    for d in decisions:
        verb = "dropped" if d.get("action") == "drop" else "restored"
        ci = f"[{_num(d.get('ci_low'), 2)}, {_num(d.get('ci_high'), 2)}]"
        rows.append([_esc(d.get("step")), _esc(verb), _num(d.get("budget")), _num(d.get("top_budget")),
                     _num(d.get("spearman"), 2), ci, _esc(d.get("n_pairs")), _num(d.get("effective_min_budget"))])
    lines = [f"<li>after {_esc(d.get('step'))} evaluations: budget {_num(d.get('budget'))} "
             f"{'dropped' if d.get('action') == 'drop' else 'restored'}: Spearman ρ with budget "
             f"{_num(d.get('top_budget'))} = {_num(d.get('spearman'), 2)}, CI "
             f"[{_num(d.get('ci_low'), 2)}, {_num(d.get('ci_high'), 2)}] on {_esc(d.get('n_pairs'))} "
             f"configurations; effective minimum budget now {_num(d.get('effective_min_budget'))}</li>"
             for d in decisions]
    body = [_note("A rung is dropped (configurations pass through it without being ranked, and the model "
                  "does not fit on it) when the upper bound of the interval of its rank correlation with "
                  "the highest rung is below the drop threshold, and restored when the lower bound is "
                  "above the restore threshold (see the README, \"Adaptive budgets\")."),
            f"<ul>{''.join(lines)}</ul>",
            _table(["after evaluations", "decision", "budget", "compared with budget", "Spearman ρ", "CI",
                    "pairs", "effective min budget"], rows, text_cols=2)]
    return _section("Adaptive budgets", "\n".join(body), "adaptive-budgets")
def _pareto_section(records: Sequence[EvaluationRecord], objectives: Sequence[str],
                    figs: figures.Drawn) -> str:
    from .pareto import pareto_fronts

    infos = pareto_fronts(records, objectives)
    names = ", ".join(objectives)
    if not infos:
        return _section("Pareto front", _note(f"No successful evaluation with every objective ({names}) yet."),
                        "pareto")
    top = infos[-1]
    parts = [_note(f"Objectives: {names}. Non-dominated evaluations at each budget (the last evaluation of "
                   f"each configuration there); grey points are dominated, the circle marks the knee.")]
    rows = []
    for i, p in enumerate(top.front):
        rows.append([_esc(p.trial_id) + (" (knee)" if i == top.knee else "")] + [_num(v) for v in p.values])
    parts.append(f"<h3>Front at budget {_num(top.budget)}</h3>")
    parts.append(_table(["trial", *top.objectives], rows))
    hv = [f"{_num(i.budget)}: {_num(i.hypervolume)} ({len(i.front)} points)" for i in infos if i.hypervolume is not None]
    if hv:
        parts.append(_note("Hypervolume per budget (reference: the worst value seen plus 10 % of the range, "
                           "per objective): " + "; ".join(hv) + "."))
    parts.append(_img(figs, "pareto-front", "Pareto front per budget", lambda: figures.pareto_plot(infos)))
    return _section("Pareto front", "\n".join(parts), "pareto")


def render_report(
    records: Sequence[EvaluationRecord],
    *,
    title: str,
    space: Any | None = None,
    best: EvaluationRecord | Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    analyses: analysis.Analyses | None = None,
    budget_decisions: Sequence[Mapping[str, Any]] | None = None,
    objectives: Sequence[str] | None = None,
    pngs: figures.Drawn | None = None,
) -> str:
    """The whole report as one HTML string.

    ``space`` (a ConfigSpace space) gives importance its distributions; ``best`` overrides the
    best configuration shown (an :class:`EvaluationRecord`, or a plain mapping of
    hyperparameters such as an exported configuration); by default it is
    :func:`~jointsearch.dashboards.analysis.best_configuration`. ``settings`` is shown as given.
    ``analyses`` are the analyses of ``records`` already computed (:func:`analysis.analyse`; the
    live dashboards pass the ones they logged, so the page and the JSON artifacts agree); by
    default they are computed here. ``budget_decisions`` (dicts with the fields of
    ``search.adaptive_budgets.BudgetDecision``) adds an "Adaptive budgets" section when there are any.
    ``objectives`` (default: the ``objectives`` setting) adds a Pareto front section when there
    are two or more. ``pngs`` (:class:`~jointsearch.dashboards.figures.Drawn`, by element id)
    supplies figures already drawn and receives the ones drawn here: the live dashboards log
    those very bytes as their PNG artifacts, so each figure is drawn once at the end of a
    search (it was drawn twice, half of the final refresh's ~3 CPU-s) and a file cannot differ
    from the page.
    """
    records = list(records)
    a = analyses if analyses is not None else analysis.analyse(records, space)
    if objectives is None:
        objectives = str((settings or {}).get("objectives") or "val_error").split()
    if best is None:
        best = a.best
    figs = pngs if pngs is not None else figures.Drawn()
    sections = [
        _settings_section(settings, len(records)),
        _best_section(best),
        _rank_section(a.rank_correlation, a.paired, figs),
        *([_budget_decisions_section(budget_decisions)] if budget_decisions else []),
        _importance_section(a.importance, a.importance_error, figs),
        _incumbent_section(a.incumbent, figs),
        _budget_section(a.budget, figs),
        _params_section(a.params, figs),
    ]
    if len(objectives) > 1:
        sections.insert(2, _pareto_section(records, list(objectives), figs))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{_esc(title)}</h1>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )


def write_report(path: str | Path, records: Sequence[EvaluationRecord], **kwargs: Any) -> Path:
    """Render the report (same keyword arguments as :func:`render_report`) and write it."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # the CLI refuses a missing folder before this
    html = render_report(records, **kwargs).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:  # atomic: a reader (or a crash) never sees half a report
        with os.fdopen(fd, "wb") as f:
            f.write(html)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
