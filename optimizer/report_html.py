"""The run report: one self-contained HTML page a risk officer can read.

A run's exposures before, as proposed and after (portfolio, by sector, by country, by
factor), its binding limits with their multipliers, its breaches by tier, its labels by
strategy, its largest overrides with their attribution and the risk debate. Charts are
drawn with :class:`matplotlib.figure.Figure` (no pyplot, no backend chosen) and embedded
as inline SVG, so the page needs no network and no file beside it.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from riskopt.constraints.states import describe_state
from riskopt.data.book import Book
from riskopt.optimizer.diff import LABEL_ORDER
from riskopt.optimizer.result import (
    RebalanceResult,
    binding_by_family,
    exposures,
    gamma_meaning,
)

STAGES = ("before", "proposed", "after")
PORTFOLIO_KEYS = ("gross", "net", "long", "short", "volatility")
STATUS_MEANING = {
    "OPTIMAL": "every limit holds",
    "RELAXED": "some policy limit gave way to the hard limits or to a higher tier (see the breaches)",
    "FALLBACK": "the solvers failed; the de-risk-only fallback set the targets",
    "DEGRADED": "the inputs could not be used; no new risk was taken",
}
COLORS = {"before": "#9aa5b1", "proposed": "#e0a458", "after": "#2b6cb0"}
LABEL_COLORS = {
    "OK": "#38a169",
    "SCALED_DOWN": "#d69e2e",
    "CAPPED": "#dd6b20",
    "REJECTED": "#c53030",
}
TOP_GROUPS = 15
"""Sectors, countries or factors shown per chart (the largest |after| or |proposed|)."""


@dataclass(frozen=True)
class ReportData:
    """What the page shows, from a result in memory or a run read back from the database.

    ``weights`` is indexed by ticker with columns ``before``, ``proposed`` and ``after``
    (signed fractions of NAV); ``decisions`` has one row per decision (``action_type``,
    ``strategy_id``, ``proposed_weight``, ``final_weight``, ``reason``, ``details_json``);
    ``binding`` is ``None`` where it was not kept (a stored run); ``book`` gives the
    sectors, countries and the risk model, ``None`` where the book is not at hand.
    """

    run: dict[str, Any]
    weights: pd.DataFrame
    decisions: pd.DataFrame
    binding: pd.DataFrame | None
    book: Book | None

    @classmethod
    def of(cls, result: RebalanceResult, book: Book | None = None) -> ReportData:
        """The report of ``result``; ``book`` (the run's own) adds the group breakdowns."""
        t = result.targets
        weights = pd.DataFrame(
            {
                "before": t["current_weight"].to_numpy(dtype=float),
                "proposed": t["proposed_weight"].to_numpy(dtype=float),
                "after": t["target_weight"].to_numpy(dtype=float),
            },
            index=pd.Index(t["ticker"].astype(str), name="ticker"),
        )
        decisions = result.actions[result.actions["decision_id"].notna()]
        return cls(result.run.to_dict(), weights, decisions, result.binding, book)


def stored_report(url: str, run_id: str) -> ReportData:
    """The report of a stored run: its record, targets and actions from ``url``, and the
    book of its date where the database holds one (else no group breakdowns)."""
    import sqlalchemy as sa

    from riskopt.data.errors import StoreError
    from riskopt.data.storage import RiskAction, RiskRun, TargetPosition, engine_for

    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.select(RiskRun.record).where(RiskRun.run_id == run_id)).first()
            targets = pd.read_sql(
                sa.select(TargetPosition.__table__).where(TargetPosition.run_id == run_id), conn
            )
            actions = pd.read_sql(
                sa.select(RiskAction.__table__).where(
                    RiskAction.run_id == run_id, RiskAction.decision_id.is_not(None)
                ),
                conn,
            )
    finally:
        engine.dispose()
    if row is None:
        raise StoreError(f"no run {run_id!r} in the database")
    record = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    book = _stored_book(url, record["as_of"], targets)
    return ReportData(
        record, _stored_weights(targets, book), _stored_decisions(actions), None, book
    )


def _stored_book(url: str, as_of: str, targets: pd.DataFrame) -> Book | None:
    """The database's book of the run's date, where it is this run's: every target's name
    priced in it and held in the shares the run started from (several books stored on one
    date would otherwise lend one another their sectors and prices)."""
    from riskopt.data.database import load_book
    from riskopt.data.errors import RiskoptError

    try:
        book = load_book(url, as_of)
    except RiskoptError:
        return None
    tickers = targets["ticker"].astype(str)
    by_ticker = book.positions.groupby(book.positions["ticker"].astype(str))["quantity"].sum()
    held = by_ticker.reindex(tickers).fillna(0.0).to_numpy(dtype=float)
    priced = tickers.isin(book.market.index.astype(str)).all()
    start = targets["current_position"].to_numpy(dtype=float)
    same = np.allclose(held, start, rtol=0, atol=1e-6)
    return book if priced and same else None


def _stored_weights(targets: pd.DataFrame, book: Book | None) -> pd.DataFrame:
    """Weights of a stored run's targets; the weight before is the held shares at the
    book's price over its NAV (NaN without the book: only the run's totals are known)."""
    tickers = targets["ticker"].astype(str)
    before = np.full(len(targets), np.nan)
    if book is not None:
        price = book.market["price"].reindex(tickers).to_numpy(dtype=float)
        before = targets["current_position"].to_numpy(dtype=float) * price / book.nav
    return pd.DataFrame(
        {
            "before": before,
            "proposed": targets["proposed_weight"].to_numpy(dtype=float),
            "after": targets["target_weight"].to_numpy(dtype=float),
        },
        index=pd.Index(tickers, name="ticker"),
    )


def _stored_decisions(actions: pd.DataFrame) -> pd.DataFrame:
    """A stored run's decision actions with the weights and reason out of their details."""
    details = actions["details_json"].map(lambda d: d if isinstance(d, dict) else json.loads(d))
    return actions.assign(
        proposed_weight=details.map(lambda d: d.get("proposed_weight")).astype(float),
        final_weight=details.map(lambda d: d.get("final_weight")).astype(float),
        reason=details.map(lambda d: d.get("reason") or ""),
        details_json=details.map(json.dumps),
    )


# --- numbers -------------------------------------------------------------------------


def portfolio_exposures(data: ReportData) -> pd.DataFrame:
    """Gross, net, long, short and ex-ante volatility before, as proposed and after: the
    run's own figures before and after, the proposal's from its weights (its volatility
    needs the book's risk model)."""
    run = data.run
    proposed = data.weights["proposed"].fillna(0.0).to_numpy()
    model = _risk_model(data)
    computed = exposures(proposed, *model) if model else exposures(proposed, None, None, None)
    if data.weights.empty:  # no targets (a run stopped before its book): nothing was proposed
        computed = {}
    table = pd.DataFrame(
        {
            "before": pd.Series(run.get("exposures_before") or {}, dtype=float),
            "proposed": pd.Series(computed, dtype=float),
            "after": pd.Series(run.get("exposures_after") or {}, dtype=float),
        }
    )
    return table.reindex([k for k in PORTFOLIO_KEYS if k in table.index])


def _risk_model(data: ReportData) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The book's loadings, factor covariance and specific variances on the report's names."""
    model = None if data.book is None else data.book.risk_model
    if model is None:
        return None
    tickers = data.weights.index
    loadings = model.loadings.reindex(tickers).fillna(0.0).to_numpy(dtype=float)
    specific = model.specific_var.reindex(tickers).fillna(0.0).to_numpy(dtype=float)
    return loadings, model.factor_cov.to_numpy(dtype=float), specific


def group_exposures(data: ReportData, column: str) -> pd.DataFrame | None:
    """Net exposure per sector or country (``column`` of the book's market), before, as
    proposed and after; ``None`` without the book."""
    if data.book is None or column not in data.book.market:
        return None
    groups = data.book.market[column].reindex(data.weights.index).fillna("(unknown)")
    table = data.weights.groupby(groups.to_numpy()).sum(min_count=1)
    return _largest(table)


def factor_exposures(data: ReportData) -> pd.DataFrame | None:
    """Each factor's exposure (Bᵀh) before, as proposed and after; ``None`` without a model."""
    if data.book is None or data.book.risk_model is None:
        return None
    loadings = data.book.risk_model.loadings.reindex(data.weights.index).fillna(0.0)
    weights = data.weights.fillna(0.0)
    table = pd.DataFrame(loadings.to_numpy().T @ weights.to_numpy(), index=loadings.columns)
    table.columns = weights.columns
    return _largest(table)


def _largest(table: pd.DataFrame) -> pd.DataFrame:
    """The :data:`TOP_GROUPS` rows of largest |after| or |proposed|, largest last (a
    horizontal bar chart reads top down)."""
    size = table[["proposed", "after"]].abs().max(axis=1).fillna(0.0)
    return table.loc[size.sort_values(kind="stable").index[-TOP_GROUPS:]]


def labels_by_strategy(decisions: pd.DataFrame) -> pd.DataFrame:
    """Counts of decisions per strategy and label (every label a column, in order)."""
    if decisions.empty:
        return pd.DataFrame(columns=list(LABEL_ORDER), dtype=int)
    counts = pd.crosstab(decisions["strategy_id"].astype(str), decisions["action_type"])
    return counts.reindex(columns=list(LABEL_ORDER), fill_value=0)


def largest_overrides(decisions: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """The ``k`` decisions moved most from their proposal, with their top causes."""
    moved = decisions[decisions["action_type"] != "OK"].copy()
    moved["override"] = (moved["proposed_weight"] - moved["final_weight"]).abs()
    moved = moved.sort_values(["override", "decision_id"], ascending=[False, True])
    moved = moved.head(k)
    moved["causes"] = moved["details_json"].map(_causes)
    return moved


def _causes(details: str) -> str:
    """The attribution of one action as ``cause (share)`` items, largest first."""
    parsed = json.loads(details)
    if parsed.get("sanity_reject"):
        return f"sanity reject: {parsed['sanity_reject']}"
    items = []
    for entry in (parsed.get("attribution") or [])[:4]:
        where = f" [{entry['group']}]" if entry.get("group") not in (None, "portfolio") else ""
        share = entry.get("share")
        amount = f" {share:.0%}" if isinstance(share, int | float) else ""
        items.append(f"{entry.get('description') or entry.get('constraint')}{where}{amount}")
    return "; ".join(items)


# --- charts --------------------------------------------------------------------------


def _svg(fig: Figure, key: str) -> str:
    """``fig`` as an inline ``<svg>``: ids prefixed with ``key`` (several share one page),
    no XML prolog, namespace or metadata (nothing that names a URL)."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": key}):
        fig.savefig(
            buffer,
            format="svg",
            metadata={"Creator": None, "Date": None, "Format": None, "Type": None},
        )
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text)
    text = re.sub(r'(\bid="|href="#|url\(#)', rf"\g<1>{key}-", text)
    return re.sub(r'<svg width="[^"]*" height="[^"]*"', '<svg role="img"', text, count=1)


def _axes(height: float, labels: Iterable[Any] = ()) -> tuple[Figure, Any]:
    """A figure 8 inches wide and one axes with margins fixed in inches (room on the left
    for the longest of ``labels``, below for the ticks and the legend): no layout engine,
    which would draw every chart twice."""
    fig = Figure(figsize=(8.0, height))
    fig.set_facecolor("white")
    left = max(0.7, 0.085 * max((len(str(x)) for x in labels), default=0) + 0.25)
    fig.subplots_adjust(
        left=left / 8.0, right=1 - 0.3 / 8.0, top=1 - 0.4 / height, bottom=0.85 / height
    )
    return fig, fig.subplots()


def _legend(fig: Figure, ax: Any, columns: int) -> None:
    """The legend in one row under the axes, at the figure's foot."""
    fig.legend(
        *ax.get_legend_handles_labels(),
        loc="lower left",
        bbox_to_anchor=(ax.get_position().x0, 0.02),
        ncols=columns,
        frameon=False,
        fontsize=8,
    )


def _stage_bars(table: pd.DataFrame, title: str, key: str, *, horizontal: bool) -> str:
    """Grouped bars of ``table``'s before / proposed / after columns, on a percent axis."""
    rows = len(table)
    height = max(2.6, 0.34 * rows + 1.3) if horizontal else 3.2
    fig, ax = _axes(height, table.index if horizontal else ())
    position = np.arange(rows)
    width = 0.8 / len(STAGES)
    for k, stage in enumerate(STAGES):
        values = table[stage].to_numpy(dtype=float)
        # before on top in a horizontal chart, on the left in a vertical one
        offset = position + ((1 - k) if horizontal else (k - 1)) * width
        bar = ax.barh if horizontal else ax.bar
        bar(offset, np.nan_to_num(values), width, label=stage, color=COLORS[stage])
    axis, other = (ax.xaxis, ax.yaxis) if horizontal else (ax.yaxis, ax.xaxis)
    axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    (ax.set_yticks if horizontal else ax.set_xticks)(position, [str(i) for i in table.index])
    other.set_tick_params(length=0)
    (ax.axvline if horizontal else ax.axhline)(0.0, color="#444", linewidth=0.8)
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(axis="x" if horizontal else "y", color="#ddd", linewidth=0.6)
    ax.set_axisbelow(True)
    _legend(fig, ax, 3)
    return _svg(fig, key)


def _label_chart(counts: pd.DataFrame, key: str) -> str:
    """Decisions per strategy as stacked shares by label (percent axis), counts in the table."""
    shares = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)
    fig, ax = _axes(max(2.2, 0.45 * len(shares) + 1.3), shares.index)
    left = np.zeros(len(shares))
    for label in LABEL_ORDER:
        values = shares[label].to_numpy(dtype=float)
        ax.barh(shares.index.astype(str), values, left=left, color=LABEL_COLORS[label], label=label)
        left += values
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_xlim(0, 1)
    ax.set_title("decisions by label, share of each strategy's", loc="left", fontsize=11)
    _legend(fig, ax, 4)
    return _svg(fig, key)


def _debate_chart(turns: pd.DataFrame, gamma: float, key: str) -> str:
    """Each analyst's proposed γ, grouped by round, against the judge's γ."""
    analysts = turns[turns["round"].notna()]
    table = analysts.pivot_table(
        index="round", columns="speaker", values="risk_aversion", aggfunc="last", sort=False
    )
    fig, ax = _axes(3.2)
    position = np.arange(len(table))
    width = 0.8 / max(len(table.columns), 1)
    for k, speaker in enumerate(table.columns):
        offset = position + (k - (len(table.columns) - 1) / 2) * width
        ax.bar(offset, table[speaker].to_numpy(dtype=float), width, label=str(speaker))
    ax.axhline(gamma, color="#222", linestyle="--", linewidth=1, label=f"judge γ = {gamma:.3g}")
    ax.set_xticks(position, [f"round {int(r)}" for r in table.index])
    ax.set_ylabel("proposed γ")
    ax.set_title("risk debate: each analyst's risk aversion", loc="left", fontsize=11)
    ax.grid(axis="y", color="#ddd", linewidth=0.6)
    ax.set_axisbelow(True)
    _legend(fig, ax, 4)
    return _svg(fig, key)


# --- the page ------------------------------------------------------------------------

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a202c;
  margin: 0 auto; max-width: 1100px; padding: 1.5em 2em 4em; background: #fff; }
h1 { font-size: 1.5em; margin: 0 0 .3em; } h2 { font-size: 1.15em; margin: 2em 0 .6em;
  border-bottom: 1px solid #cbd5e0; padding-bottom: .2em; }
header { background: #f7fafc; border: 1px solid #e2e8f0; border-radius: 6px; padding: 1em 1.3em; }
header dl { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1.2em; margin: .5em 0 0; }
header dt { color: #4a5568; } header dd { margin: 0; }
.status { font-weight: 600; padding: 0 .4em; border-radius: 3px; }
.status-OPTIMAL { background: #c6f6d5; } .status-RELAXED { background: #fefcbf; }
.status-FALLBACK, .status-DEGRADED { background: #fed7d7; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: 13px; }
th, td { border-bottom: 1px solid #e2e8f0; padding: .25em .7em; text-align: left; vertical-align: top; }
th { background: #edf2f7; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
figure.chart { margin: .5em 0 1.2em; } figure.chart svg { max-width: 100%; height: auto; display: block; }
.note { color: #4a5568; font-style: italic; } .warn { color: #9c4221; }
"""


def _pct(value: Any, digits: int = 2) -> str:
    """A fraction as a percent (how the terminal summary prints it); ``–`` when missing."""
    if value is None or not np.isfinite(float(value)):
        return "–"
    return f"{float(value):.{digits}%}"


def _text(value: Any) -> str:
    """A table's text cell: empty for a missing value (a rejected row without a ticker)."""
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(
    header: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()
) -> str:
    """A plain table; cells are escaped here, columns in ``numeric`` set right-aligned.
    A cell given as ``(text, id)`` gets that id (the figures a test reads back)."""

    def cell(tag: str, k: int, value: Any) -> str:
        css = ' class="num"' if k in numeric else ""
        if isinstance(value, tuple):
            return f'<{tag}{css} id="{_e(value[1])}">{_e(value[0])}</{tag}>'
        return f"<{tag}{css}>{_e(value)}</{tag}>"

    head = "".join(cell("th", k, h) for k, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", k, v) for k, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _chart(key: str, svg: str) -> str:
    return f'<figure class="chart" id="chart-{key}">{svg}</figure>'


def _header(run: dict[str, Any]) -> str:
    """Run id, date, state, status and γ with what each means."""
    status = str(run.get("status", "?"))
    gamma = float(run.get("gamma", float("nan")))
    items = [
        ("as of", run.get("as_of") or "unknown"),
        ("state", describe_state(str(run.get("state")), str(run.get("state_source", "given")))),
        ("constraint set", run.get("constraint_set")),
        ("solver", run.get("solver") or "–"),
        ("risk aversion", gamma_meaning(gamma) if np.isfinite(gamma) else "–"),
        ("created", run.get("created_at")),
        ("riskopt", run.get("version")),
    ]
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    meaning = STATUS_MEANING.get(status, "")
    problems = [
        *run.get("warnings", []),
        *(a for a in run.get("alerts", []) if a not in run.get("warnings", [])),
    ]
    if run.get("error"):
        problems.insert(0, f"error: {run['error']}")
    notes = "".join(f'<p class="warn">{_e(p)}</p>' for p in problems)
    return (
        f'<header><h1>riskopt run <span id="run-id">{_e(run.get("run_id"))}</span></h1>'
        f'<p>status <span class="status status-{_e(status)}" id="run-status">{_e(status)}</span>'
        f" — {_e(meaning)}</p><dl>{rows}</dl>{notes}</header>"
    )


def _exposure_section(data: ReportData) -> str:
    """The portfolio's exposures and, with the book, by sector, country and factor."""
    table = portfolio_exposures(data)
    rows = [
        [key, *((_pct(table.at[key, s]), f"exposure-{key}-{s}") for s in STAGES)]
        for key in table.index
    ]
    if table.isna().all().all():
        return '<h2>Exposures</h2><p class="note">No exposure: the run has no book.</p>'
    parts = [
        "<h2>Exposures</h2>",
        _table(["", *STAGES], rows, numeric=(1, 2, 3)),
        _chart(
            "portfolio",
            _stage_bars(table, "portfolio exposures (% of NAV)", "c1", horizontal=False),
        ),
    ]
    breakdowns = [
        ("sector", group_exposures(data, "sector"), "net exposure by sector (% of NAV)"),
        ("country", group_exposures(data, "country"), "net exposure by country (% of NAV)"),
        ("factor", factor_exposures(data), "factor exposure Bᵀh (loading × % of NAV)"),
    ]
    for k, (name, frame, title) in enumerate(breakdowns):
        if frame is None:
            parts.append(
                f'<p class="note">No {name} breakdown: the run\'s book is not at hand.</p>'
            )
            continue
        parts.append(_chart(name, _stage_bars(frame, title, f"c{k + 2}", horizontal=True)))
    return "".join(parts)


def _labels_section(data: ReportData) -> str:
    counts = labels_by_strategy(data.decisions)
    if counts.empty:
        return '<h2>Decisions by label</h2><p class="note">No decision in this run.</p>'
    rows = [[s, *(int(n) for n in counts.loc[s]), int(counts.loc[s].sum())] for s in counts.index]
    total = [
        ("all", "labels-all"),
        *((int(counts[c].sum()), f"labels-{c}") for c in counts),
        int(counts.to_numpy().sum()),
    ]
    return (
        "<h2>Decisions by label</h2>"
        + _table(["strategy", *counts.columns, "decisions"], [*rows, total], numeric=range(1, 6))
        + _chart("labels", _label_chart(counts, "c5"))
    )


def _binding_section(data: ReportData) -> str:
    if data.binding is None:
        return (
            '<h2>Binding limits</h2><p class="note">The multipliers are not stored with a run; '
            "each override's attribution below names the limits that moved it.</p>"
        )
    grouped = binding_by_family(data.binding)
    if grouped.empty:
        return '<h2>Binding limits</h2><p class="note">No limit binds.</p>'
    rows = [
        [name, kind, tier, count, f"{dual:.4g}"]
        for name, kind, tier, count, dual in zip(
            *(grouped[c].tolist() for c in ("constraint", "kind", "tier", "rows", "dual")),
            strict=True,
        )
    ]
    return (
        "<h2>Binding limits</h2><p>Multiplier λ: what one more unit of the limit would be "
        "worth to the objective; for per-name limits, the names binding and the largest λ.</p>"
        + _table(["limit", "kind", "tier", "rows binding", "λ"], rows, numeric=(3, 4))
    )


def _breach_section(run: dict[str, Any]) -> str:
    breaches = run.get("breaches") or []
    if not breaches:
        return '<h2>Breaches</h2><p class="note" id="breaches-none">No policy limit is left breached.</p>'
    parts = [
        "<h2>Breaches by tier</h2><p>Limits that gave way to the hard limits or to a limit "
        "of a higher tier.</p>"
    ]
    frame = pd.DataFrame(breaches)
    for tier, rows in frame.groupby("tier", sort=True):
        parts.append(f"<h3>tier {_e(tier)}: {len(rows)} breached</h3>")
        parts.append(
            _table(
                ["limit", "row", "value", "limit", "breach"],
                (
                    [
                        b.get("description") or b["constraint"],
                        b["label"],
                        _pct(b["value"], 4),
                        _pct(b["limit"], 4),
                        _pct(b["breach"], 4),
                    ]
                    for b in rows.to_dict("records")
                ),
                numeric=(2, 3, 4),
            )
        )
    return "".join(parts)


def _override_section(data: ReportData) -> str:
    top = largest_overrides(data.decisions)
    if top.empty:
        return '<h2>Largest overrides</h2><p class="note">Every decision passed unchanged.</p>'
    rows = [
        [
            _text(r.decision_id),
            _text(r.ticker),
            _text(r.strategy_id),
            r.action_type,
            _pct(r.proposed_weight, 3),
            _pct(r.final_weight, 3),
            _pct(r.override, 3),
            r.causes,
            r.reason,
        ]
        for r in top.itertuples(index=False)
    ]
    header = [
        "decision",
        "ticker",
        "strategy",
        "label",
        "proposed",
        "final",
        "|override|",
        "attribution (share of the push)",
        "reason",
    ]
    return "<h2>Largest overrides</h2>" + _table(header, rows, numeric=(4, 5, 6))


def _debate_section(run: dict[str, Any]) -> str:
    turns = pd.DataFrame(run.get("debate") or [])
    gamma = float(run.get("gamma", float("nan")))
    if turns.empty:
        return f'<h2>Risk debate</h2><p class="note">No debate: γ = {gamma:.3g} was given.</p>'
    rows = [
        [
            "judge" if pd.isna(t["round"]) else int(t["round"]),
            t["speaker"],
            f"{t['risk_aversion']:.3g}",
            t["rationale"],
        ]
        for t in turns.to_dict("records")
    ]
    return (
        f"<h2>Risk debate</h2><p>The judge's verdict: {_e(gamma_meaning(gamma))}.</p>"
        + _chart("debate", _debate_chart(turns, gamma, "c6"))
        + _table(["round", "speaker", "γ", "argument"], rows, numeric=(2,))
    )


def render(data: ReportData) -> str:
    """The whole page as one HTML string."""
    run = data.run
    body = "".join(
        [
            _header(run),
            _exposure_section(data),
            _binding_section(data),
            _breach_section(run),
            _labels_section(data),
            _override_section(data),
            _debate_section(run),
        ]
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>riskopt run {_e(run.get('run_id'))}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def write_report(data: ReportData, path: str | Path) -> Path:
    """Write the page to ``path`` (its folder made); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(data), encoding="utf-8")
    return target


def book_at_hand(book: Book | str | Path | None) -> Book | None:
    """The run's book for the group breakdowns, read again from its folder where given as
    a path; ``None`` where it cannot be read (the run itself then says why)."""
    from riskopt.data.errors import RiskoptError
    from riskopt.data.loaders import load_book

    if book is None or isinstance(book, Book):
        return book
    try:
        return load_book(book)
    except (RiskoptError, OSError):
        return None


def write_result_report(
    result: RebalanceResult, path: str | Path, book: Book | str | Path | None = None
) -> Path:
    """Write ``result``'s page to ``path``; ``book`` (a Book or its folder) adds the
    breakdowns by sector, country and factor and the proposal's volatility."""
    return write_report(ReportData.of(result, book_at_hand(book)), path)


# --- a batch -------------------------------------------------------------------------


def folder_name(run_id: str) -> str:
    """A run id as a folder name: anything but letters, digits, ``.``, ``_`` and ``-``
    becomes ``_`` (a manifest's run id may hold a slash)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", run_id).lstrip(".")
    return name or "_"


def _render_one(job: tuple[RebalanceResult, Book | str | Path | None, Path]) -> None:
    result, book, path = job
    write_result_report(result, path, book)


def write_batch_reports(
    outcomes: Sequence[Any],
    books: Sequence[Book | str | Path | None],
    out: str | Path,
    *,
    workers: int | None = 1,
) -> Path:
    """One page per book with tables (``out/<run id>/report.html``, drawn by ``workers``
    processes; 1 draws here) and ``out/index.html``, one line per book linking its page.
    A book kept as a summary only (no tables) is listed without a page."""
    from concurrent.futures import ProcessPoolExecutor

    root = Path(out)
    pages: dict[int, str] = {}
    jobs = []
    used: set[str] = set()
    for k, (outcome, book) in enumerate(zip(outcomes, books, strict=True)):
        if not isinstance(outcome, RebalanceResult):
            continue
        name = folder_name(outcome.run.run_id)
        name = name if name not in used else f"{name}-{k}"
        used.add(name)
        pages[k] = f"{name}/report.html"
        jobs.append((outcome, book, root / pages[k]))
    if len(jobs) > 1 and (workers is None or workers > 1):
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_render_one, jobs, chunksize=4))
    else:
        for job in jobs:
            _render_one(job)
    index = root / "index.html"
    index.write_text(render_index([o.run for o in outcomes], pages), encoding="utf-8")
    return index


def _book_line(run: Any) -> str:
    """One book in a line: status, decisions by label, gross and net before → after."""
    counts = ", ".join(f"{n} {label}" for label, n in run.counts.items() if n)
    before, after = run.exposures_before, run.exposures_after
    line = (
        f"{run.status}; {counts or 'no decision'}; gross {_pct(before.get('gross'))} → "
        f"{_pct(after.get('gross'))}, net {_pct(before.get('net'))} → {_pct(after.get('net'))}"
    )
    if run.breaches:
        line += f"; {len(run.breaches)} breaches"
    return line + (f"; {run.error}" if run.error else "")


def render_index(runs: Sequence[Any], pages: dict[int, str]) -> str:
    """The batch's index page: one row per book (its page linked where written)."""
    statuses = pd.Series([r.status for r in runs], dtype=object).value_counts()
    rows = []
    for k, run in enumerate(runs):
        name = _e(run.run_id)
        link = f'<a href="{_e(pages[k])}">{name}</a>' if k in pages else name
        rows.append(
            f'<tr><td>{link}</td><td><span class="status status-{_e(run.status)}">'
            f"{_e(run.status)}</span></td><td>{_e(run.state)}</td><td>{_e(run.as_of or 'unknown')}</td>"
            f"<td>{_e(_book_line(run))}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("run", "status", "state", "as of", "summary"))
    tally = ", ".join(f"{_e(s)} {n}" for s, n in statuses.items())
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>riskopt batch: {len(runs)} books</title><style>{CSS}</style></head><body>"
        f"<header><h1>riskopt batch: {len(runs)} books</h1><p>{tally}</p></header>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</body></html>\n"
    )
