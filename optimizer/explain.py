"""Why did a name end where it did: held → proposed → final for the name and each of its
sleeves, and every cause of the move from the proposal with its share, its multiplier and
the limit value that bound, in plain words and as a waterfall chart.

Everything is read from what a run already computed (the KKT attribution, the binding
rows, the reasons in ``details_json``): nothing is solved again. Three sources read the
same way: a :class:`RebalanceResult` in memory, a run's output folder (what ``riskopt
rebalance --out`` writes, ``attribution.csv`` included) and a run stored in the runtime
database. A stored run keeps only the causes listed in its actions (each at least 1% of
the move) and no multipliers; what it leaves out is one explicit ``not stored`` row.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from riskopt.data.errors import RiskoptError
from riskopt.optimizer.diff import COSTS, NUMERICAL, RISK_AVERSION

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from riskopt.optimizer.result import RebalanceResult

LOTS = "lots"
"""The cause of what rounding to whole lots moved a name after the solve."""
NOT_STORED = "not_stored"
"""A stored run's remainder: causes under 1% of the move each and rounding to lots."""
UNATTRIBUTED = "unattributed"
"""What a run without an attribution (a book that could not be loaded) leaves unexplained."""
NOISE = 1e-10
"""Terms smaller than this (weight) are folded into the solver-tolerance row."""
ATTRIBUTION = "attribution"
"""The output folder's attribution: one row per (ticker, cause) with a non-zero share."""
DESCRIPTIONS = {
    RISK_AVERSION: "risk aversion",
    COSTS: "trading cost",
    NUMERICAL: "solver tolerance",
    LOTS: "rounding to whole lots",
    NOT_STORED: "causes under 1% of the move each and rounding to lots (not stored)",
    UNATTRIBUTED: "no attribution in this run",
    "fallback.derisk_only": "de-risk-only fallback (no solver succeeded)",
}
FRAME_COLUMNS = [
    "cause",
    "description",
    "group",
    "limit",
    "binding",
    "multiplier",
    "contribution",
    "share",
]


class UnknownTickerError(RiskoptError):
    """The ticker asked about is not in the run's targets."""

    def __init__(self, ticker: str, run_id: str, known: Iterable[str]) -> None:
        self.ticker = ticker
        names = {str(k).casefold(): str(k) for k in known}
        close = [names[k] for k in difflib.get_close_matches(ticker.casefold(), names, n=3)]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        super().__init__(f"unknown ticker {ticker!r} in run {run_id}{hint}")


class RunNotFoundError(RiskoptError):
    """The run to explain cannot be read: no such output folder or stored run."""


@dataclass(frozen=True)
class RunTables:
    """What explaining a name reads from one run, whatever its source.

    ``targets`` is indexed by ticker (``current_weight``, ``proposed_weight``,
    ``solved_weight``, ``target_weight``, ``action_type``, ``risk_reasoning_summary``);
    ``sleeves`` one row per pair; ``contributions`` one row per (ticker, cause);
    ``actions`` the actions' ``ticker`` and ``details_json`` (text or parsed);
    ``complete`` whether ``contributions`` hold every cause (a stored run's do not).
    """

    run: dict[str, Any]
    targets: pd.DataFrame
    sleeves: pd.DataFrame
    contributions: pd.DataFrame
    binding: pd.DataFrame
    actions: pd.DataFrame
    complete: bool = True


@dataclass(frozen=True)
class Explanation:
    """One name's path from held to final, and each cause's part in the move.

    ``frame`` has one row per cause (:data:`FRAME_COLUMNS`); its ``contribution`` column
    adds up to ``move = final − proposed`` and ``share`` to one.
    """

    ticker: str
    run_id: str
    status: str
    gamma: float
    label: str
    held: float
    proposed: float
    solved: float
    final: float
    sleeves: pd.DataFrame
    frame: pd.DataFrame
    reason: str = ""
    rejected: tuple[str, ...] = ()
    """Each decision on the name that the gate refused before the solve (a bad row: an
    unknown ticker, no price, an absurd size...), in words with its reason: it took no
    part in the run, so no cause of the move below is about it."""

    @property
    def move(self) -> float:
        """The gate's move from the proposal: final − proposed (weight)."""
        return self.final - self.proposed

    @property
    def text(self) -> str:
        """The explanation in plain words, one line per sleeve and per cause."""
        return explanation_text(self)

    def __str__(self) -> str:
        return self.text

    def plot(self) -> Figure:
        """The waterfall: held, proposed, each cause's contribution, final (% of NAV)."""
        return waterfall(self)


def explain_result(result: RebalanceResult, ticker: str) -> Explanation:
    """:meth:`RebalanceResult.explain`: ``ticker`` explained from the run in memory."""
    row = result.attribution.loc[[ticker]] if ticker in result.attribution.index else None
    contributions = _long(row) if row is not None else _long(pd.DataFrame())
    tables = RunTables(
        run={
            "run_id": result.run.run_id,
            "status": result.run.status,
            "gamma": result.run.gamma,
        },
        targets=result.targets,
        sleeves=result.sleeve_targets,
        contributions=contributions,
        binding=result.binding,
        actions=result.actions,
    )
    return explain(tables, ticker)


def attribution_long(attribution: pd.DataFrame, lots: pd.Series | None = None) -> pd.DataFrame:
    """The attribution frame (names × causes) as rows of (ticker, cause, contribution):
    what the output folder keeps of it. Terms under :data:`NOISE` (limits that do not
    bind) are added to the name's solver-tolerance term, so the rows still add up to each
    name's deviation, in a tenth of the rows; ``lots`` (final − solved weight by ticker),
    where given, is one more cause, so that they add up to final − proposed."""
    if lots is not None and len(attribution.columns):
        attribution = attribution.assign(**{LOTS: lots.reindex(attribution.index).fillna(0.0)})
    values = attribution.to_numpy(dtype=float, copy=True)
    if NUMERICAL in attribution.columns and values.size:
        numerical = list(attribution.columns).index(NUMERICAL)
        small = np.abs(values) < NOISE
        small[:, numerical] = False
        values[:, numerical] += np.where(small, values, 0.0).sum(axis=1)
        values[small] = 0.0
    return _long(pd.DataFrame(values, index=attribution.index, columns=attribution.columns))


def _long(attribution: pd.DataFrame) -> pd.DataFrame:
    values = attribution.to_numpy(dtype=float)
    rows, cols = np.nonzero(values) if values.size else (np.zeros(0, int), np.zeros(0, int))
    return pd.DataFrame(
        {
            "ticker": np.asarray(attribution.index, dtype=object)[rows],
            "cause": np.asarray(attribution.columns, dtype=object)[cols],
            "contribution": values[rows, cols] if values.size else np.zeros(0),
        }
    )


def _details_of(actions: pd.DataFrame, ticker: str) -> list[dict[str, Any]]:
    """``ticker``'s attribution entries from its actions' ``details_json``: each action
    lists its own sleeve's causes, so the name's are their sums, cause by cause."""
    mine = actions.loc[actions["ticker"].astype(str) == ticker, "details_json"]
    by_cause: dict[str, dict[str, Any]] = {}
    for raw in mine.tolist():
        details = raw if isinstance(raw, dict) else json.loads(raw) if isinstance(raw, str) else {}
        for entry in details.get("attribution") or []:
            seen = by_cause.setdefault(entry["constraint"], {**entry, "contribution": 0.0})
            seen["contribution"] += float(entry["contribution"])
    return list(by_cause.values())


def _check_ticker(targets: pd.DataFrame, ticker: str, run_id: str) -> None:
    if ticker not in set(targets["ticker"].astype(str)):
        raise UnknownTickerError(ticker, run_id, targets["ticker"].astype(str))


def explain(tables: RunTables, ticker: str) -> Explanation:
    """``ticker`` explained from a run's tables (:class:`RunTables`); a name the run has no
    target for is explained by its decisions rejected before the solve, if it has any."""
    run_id = str(tables.run.get("run_id", ""))
    rejected = rejected_before_solve(tables.actions, ticker)
    if rejected and ticker not in set(tables.targets["ticker"].astype(str)):
        return _only_rejected(tables, ticker, rejected)
    _check_ticker(tables.targets, ticker, run_id)
    targets = tables.targets
    row = targets.loc[targets["ticker"].astype(str) == ticker].iloc[0]
    held, proposed, final = (
        _number(row.get(c)) for c in ("current_weight", "proposed_weight", "target_weight")
    )
    solved = _number(row.get("solved_weight"))
    gamma = float(tables.run.get("gamma") or 0.0)
    frame = cause_frame(tables, ticker, (proposed, solved, final), gamma)
    sleeves = tables.sleeves.loc[tables.sleeves["ticker"].astype(str) == ticker]
    return Explanation(
        ticker=ticker,
        run_id=run_id,
        status=str(tables.run.get("status", "")),
        gamma=gamma,
        label=str(row.get("action_type", "")),
        held=held,
        proposed=proposed,
        solved=solved,
        final=final,
        sleeves=sleeves.reset_index(drop=True),
        frame=frame,
        reason=str(row.get("risk_reasoning_summary", "") or ""),
        rejected=tuple(rejected),
    )


def rejected_before_solve(actions: pd.DataFrame, ticker: str) -> list[str]:
    """Each decision on ``ticker`` that the gate refused before the solve, in words: its
    id, strategy and proposed weight (where the source keeps it) and the reason."""
    if not len(actions):
        return []
    mine = actions.loc[actions["ticker"].astype(str) == ticker]
    out = []
    for rec in mine.to_dict("records"):
        raw = rec.get("details_json")
        details = raw if isinstance(raw, dict) else json.loads(raw) if isinstance(raw, str) else {}
        reason = details.get("sanity_reject")
        if not reason:
            continue
        proposed = _number(rec.get("proposed_weight"))
        weight = f", proposed {_pct(proposed)}" if np.isfinite(proposed) else ""
        out.append(
            f"decision {rec.get('decision_id')} ({rec.get('strategy_id')}{weight}) was rejected "
            f"before the solve: {reason}; it took no part in the run"
        )
    return out


def _only_rejected(tables: RunTables, ticker: str, rejected: list[str]) -> Explanation:
    """A name with no target (not in the book): only its rejected decisions to tell."""
    nan = math.nan
    return Explanation(
        ticker=ticker,
        run_id=str(tables.run.get("run_id", "")),
        status=str(tables.run.get("status", "")),
        gamma=float(tables.run.get("gamma") or 0.0),
        label="REJECTED",
        held=nan,
        proposed=nan,
        solved=nan,
        final=nan,
        sleeves=tables.sleeves.iloc[0:0],
        frame=pd.DataFrame(columns=FRAME_COLUMNS),
        rejected=tuple(rejected),
    )


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def cause_frame(
    tables: RunTables, ticker: str, weights: tuple[float, float, float], gamma: float
) -> pd.DataFrame:
    """One row per cause of ``ticker``'s move (:data:`FRAME_COLUMNS`): the attribution's
    causes (terms under :data:`NOISE` folded into the solver tolerance), rounding to lots,
    and what the source leaves unexplained, so that the contributions add up to the move."""
    proposed, solved, final = weights
    c = tables.contributions
    mine = c.loc[c["ticker"].astype(str) == ticker]
    contributions = mine.groupby("cause", sort=False)["contribution"].sum().astype(float)
    move = final - proposed if np.isfinite(final) and np.isfinite(proposed) else 0.0
    if tables.complete and np.isfinite(solved) and np.isfinite(final):
        contributions[LOTS] = final - solved
    contributions = _fold_noise(contributions)
    rest = move - float(contributions.sum())
    if abs(rest) > NOISE or (not tables.complete and rest != 0.0):
        contributions[NOT_STORED if not tables.complete else UNATTRIBUTED] = rest
    return _described(contributions, tables, ticker, move, gamma)


def _fold_noise(contributions: pd.Series) -> pd.Series:
    """Terms under :data:`NOISE` (a limit that does not bind, lots that moved nothing)
    added to the solver-tolerance row, which is kept only where it is not zero."""
    small = (contributions.abs() < NOISE) & (contributions.index != NUMERICAL)
    folded = float(contributions[small].sum()) + float(contributions.get(NUMERICAL, 0.0))
    out = contributions[~small & (contributions.index != NUMERICAL)].copy()
    if folded != 0.0:
        out[NUMERICAL] = folded
    return out


def _described(
    contributions: pd.Series, tables: RunTables, ticker: str, move: float, gamma: float
) -> pd.DataFrame:
    """The causes with their words, group, limit value and multiplier, largest first."""
    entries = {e["constraint"]: e for e in _details_of(tables.actions, ticker)}
    causes = [str(k) for k in contributions.index]
    words = _described_elsewhere(tables.actions, [k for k in causes if k not in entries])
    group = [entries.get(k, {}).get("group") for k in causes]
    names = set(tables.targets["ticker"].astype(str))
    duals = [
        _multiplier(tables.binding, k, (ticker, g), names)
        for k, g in zip(causes, group, strict=True)
    ]
    values = contributions.to_numpy(dtype=float)
    frame = pd.DataFrame(
        {
            "cause": causes,
            "description": [_description(k, entries.get(k, words.get(k)), gamma) for k in causes],
            "group": group,
            "limit": [_number(entries.get(k, {}).get("limit")) for k in causes],
            "binding": [bool(np.isfinite(d) and d > 0) for d in duals],
            "multiplier": duals,
            "contribution": values,
            "share": values / move if move != 0 else np.zeros(len(values)),
        },
        columns=FRAME_COLUMNS,
    )
    order = np.argsort(-np.abs(values), kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def _described_elsewhere(actions: pd.DataFrame, causes: list[str]) -> dict[str, dict[str, Any]]:
    """Each cause's words where the name's own actions do not list it (an ``OK`` name, a
    small share): from the first action of the run that does (its description only; the
    group and value that bound are another name's)."""
    out: dict[str, dict[str, Any]] = {}
    texts = actions["details_json"] if len(actions) else pd.Series(dtype=object)
    if not len(causes) or not len(texts) or not isinstance(texts.iloc[0], str):
        return out
    for cause in causes:
        found = texts[texts.str.contains(f'"constraint": {json.dumps(cause)}', regex=False)]
        if len(found):
            entry = next(
                e for e in json.loads(found.iloc[0])["attribution"] if e["constraint"] == cause
            )
            out[cause] = {"description": entry.get("description")}
    return out


def _description(cause: str, entry: dict[str, Any] | None, gamma: float) -> str:
    if cause == RISK_AVERSION:
        return f"risk aversion, γ = {gamma:.3g}"
    if entry is not None and entry.get("description"):
        return str(entry["description"])
    return DESCRIPTIONS.get(cause, cause)


def _multiplier(
    binding: pd.DataFrame, cause: str, where: tuple[str, Any], names: set[str]
) -> float:
    """The multiplier of ``cause`` on a name (``where``: the ticker and the group that
    binds it, if known): its binding row for the name (or the largest of the name's
    pairs'), else the group's row, else its only row where that row is no other name's
    or pair's; NaN where no row of it binds here (or the source keeps none)."""
    ticker, group = where
    if binding.empty:
        return math.nan
    rows = binding.loc[binding["constraint"].astype(str) == cause]
    if rows.empty:
        return math.nan
    labels = rows["label"].astype(str)
    only = len(rows) == 1 and labels.iloc[0] not in names and ":" not in labels.iloc[0]
    for mask in (
        (labels == ticker) | labels.str.endswith(f":{ticker}"),
        labels == str(group) if group is not None else labels != labels,
        pd.Series(only, index=rows.index),
    ):
        if mask.any():
            return float(rows.loc[mask, "dual"].max())
    return math.nan


def _pct(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.2%}".replace("-0.00%", "0.00%")


def cause_line(row: Any, move: float, word: str) -> str:
    """One cause in plain words: what it is, its bound and multiplier, its part of the move."""
    return f"{_cause_words(row)} {_part(row.contribution, move, word)}"


def _cause_words(row: Any) -> str:
    """A cause's name, with what it is, its bound and multiplier in brackets."""
    words = "" if row.description == row.cause else str(row.description)
    words += f" {row.group}" if isinstance(row.group, str) else ""
    words += f" {_pct(row.limit)}" if np.isfinite(row.limit) else ""
    facts = [words.strip()] if words.strip() else []
    if row.binding:
        facts.append(f"binding, multiplier {row.multiplier:.4g}")
    return f"{row.cause} ({', '.join(facts)})" if facts else str(row.cause)


def _part(contribution: float, move: float, word: str) -> str:
    """A contribution's part of the move, in words: took, or pushed back against it (for
    no move, which way it pulls)."""
    if move == 0:
        size = _pct(abs(contribution))
        return f"pulls {'' if size == '0.00%' else '+' if contribution > 0 else '-'}{size}"
    share = f" ({contribution / move:.1%})" if move != 0 else ""
    size = _pct(abs(contribution))
    if move == 0 or np.sign(contribution) == np.sign(move):
        return f"took {size} of the {_pct(abs(move))} {word}{share}"
    return f"pushed back {size} against the {_pct(abs(move))} {word}{share}"


OPPOSED = 3.0
"""Causes whose sizes add up to more than this many times the move pull against each
other: the text nets the largest of them, each larger than the move, in pairs."""


def opposed_pairs(contributions: np.ndarray, move: float) -> list[tuple[int, int]]:
    """Pairs ``(with, against)`` of causes to read as one: while the causes' sizes add up
    to more than :data:`OPPOSED` times the move, the largest left that pushes the way the
    name moved (either way for no move) and the largest left that pushes back, where
    each is larger than the move itself. Two soft limits that both bind on a name can
    pull thousands of times its move each way; read apart they are noise, netted they
    say what held it. The contributions stay exact."""
    c = np.asarray(contributions, dtype=float)
    way = np.sign(move) if move != 0 else (np.sign(c[np.argmax(np.abs(c))]) if c.size else 1.0)
    free = np.ones(len(c), dtype=bool)
    pairs: list[tuple[int, int]] = []
    sizes = np.abs(c)
    while sizes.sum() > OPPOSED * abs(move):
        with_ = np.flatnonzero(free & (c * way > 0))
        against = np.flatnonzero(free & (c * way < 0))
        if not len(with_) or not len(against):
            break
        a, b = with_[np.argmax(sizes[with_])], against[np.argmax(sizes[against])]
        if min(sizes[a], sizes[b]) <= max(abs(move), NOISE):
            break
        pairs.append((int(a), int(b)))
        free[[a, b]] = False
        sizes[a], sizes[b] = abs(c[a] + c[b]), 0.0
    return pairs


def cause_lines(frame: pd.DataFrame, move: float, word: str) -> list[str]:
    """The causes in plain words, one line each, largest first; causes pulling against
    each other far beyond the move (:func:`opposed_pairs`) as one line: held between the
    two, how hard they pull each way, and their net part of the move."""
    rows = list(frame.itertuples(index=False))
    c = frame["contribution"].to_numpy(dtype=float)
    pairs = opposed_pairs(c, move)
    partner = {a: b for a, b in pairs}
    netted = {b for _, b in pairs}
    lines = []
    for k, row in enumerate(rows):
        if k in netted:
            continue
        if k not in partner:
            lines.append(cause_line(row, move, word))
            continue
        j = partner[k]
        lines.append(
            f"held between {_cause_words(row)} and {_cause_words(rows[j])} (they pull "
            f"±{_pct(min(abs(c[k]), abs(c[j])))} against each other): net "
            f"{_part(float(c[k] + c[j]), move, word)}"
        )
    return lines


def explanation_text(e: Explanation) -> str:
    """The explanation's text (:attr:`Explanation.text`)."""
    word = "cut" if abs(e.final) < abs(e.proposed) else "move"
    untargeted = bool(e.rejected) and e.sleeves.empty and not np.isfinite(e.final)
    lines = [f"{e.ticker} in run {e.run_id} ({e.status}, γ = {e.gamma:.3g}): {e.label}"]
    if not untargeted:
        lines.append(
            f"  name: held {_pct(e.held)} → proposed {_pct(e.proposed)} → final {_pct(e.final)}"
        )
    for s in e.sleeves.itertuples(index=False):
        lines.append(
            f"  sleeve {s.strategy_id}: held {_pct(_number(s.current_weight))} → proposed "
            f"{_pct(_number(s.proposed_weight))} → final {_pct(_number(s.target_weight))} "
            f"({s.action_type})"
        )
    lines.extend(f"  {line}" for line in e.rejected)
    if untargeted:
        lines.append("  the run has no target for it: nothing held or traded")
    elif e.move == 0 and e.frame.empty:
        lines.append("  the gate left the proposal as it was")
    else:
        lines.append(f"  causes of the {word} final − proposed = {_pct(e.move)}:")
        lines.extend(f"    {line}" for line in cause_lines(e.frame, e.move, word))
    if e.reason:
        lines.append(f"  reason: {e.reason}")
    return "\n".join(lines)


def netted_steps(frame: pd.DataFrame, move: float) -> tuple[list[str], np.ndarray]:
    """The causes as the text reads them (:func:`cause_lines`): each with its
    contribution, a pair pulling against each other as one, ``"A ↔ B"``, with its net."""
    c = frame["contribution"].to_numpy(dtype=float)
    causes = [str(x) for x in frame["cause"]]
    pairs = opposed_pairs(c, move)
    partner = {a: b for a, b in pairs}
    netted = {b for _, b in pairs}
    names, steps = [], []
    for k, cause in enumerate(causes):
        if k in netted:
            continue
        j = partner.get(k)
        names.append(cause if j is None else f"{cause} ↔ {causes[j]}")
        steps.append(c[k] if j is None else c[k] + c[j])
    return names, np.asarray(steps, dtype=float)


def waterfall(e: Explanation) -> Figure:
    """Held and proposed weights as bars from zero, each cause's contribution as a bar
    from where the previous one ended (two causes that pull against each other far
    beyond the move as one bar, their net: :func:`opposed_pairs`), the final weight from
    zero; percent axis. Built on a bare :class:`Figure` (no pyplot state, no backend
    chosen)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    names, steps = netted_steps(e.frame, e.move)
    n = len(names)
    fig = Figure(figsize=(max(6.0, 1.0 + 0.9 * (n + 3)), 4.0))
    ax = fig.add_subplot()
    start = (0.0 if not np.isfinite(e.proposed) else e.proposed) + np.concatenate(
        [[0.0], np.cumsum(steps)[:-1]]
    )
    totals = [0.0 if not np.isfinite(v) else v for v in (e.held, e.proposed, e.final)]
    ax.bar([0, 1, n + 2], totals, color="#4c72b0", label="weight")
    ax.bar(
        np.arange(2, n + 2),
        steps,
        bottom=start,
        color=np.where(steps < 0, "#c44e52", "#55a868"),
        label="causes",
    )
    ax.set_xticks(np.arange(n + 3), ["held", "proposed", *names, "final"], rotation=30, ha="right")
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=2))
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylabel("weight (% of NAV)")
    ax.set_title(f"{e.ticker}: {e.label} (run {e.run_id})")
    fig.tight_layout()
    return fig


def read_folder(folder: Path) -> RunTables:
    """A run's output folder (its tables as CSV or Parquet) as :class:`RunTables`; one
    missing file is a :class:`RunNotFoundError` naming it."""
    if not folder.is_dir():
        raise RunNotFoundError(f"no run output folder at {folder}")
    run_file = folder / "run.json"
    if run_file.is_file() and json.loads(run_file.read_text()).get("status") == "DEGRADED":
        raise RunNotFoundError(
            f"the run in {folder} is DEGRADED: it made no targets (the book was held), so "
            "there is no move to explain; its run.json says why"
        )
    suffix = ".parquet" if (folder / "targets.parquet").is_file() else ".csv"
    needed = ["targets", "sleeve_targets", "actions", "binding", ATTRIBUTION]
    for name in ["run.json", *(f"{table}{suffix}" for table in needed)]:
        if not (folder / name).is_file():
            raise RunNotFoundError(f"{folder} is not a complete run output folder: no {name}")
    tables = {table: _read_table(folder / f"{table}{suffix}") for table in needed}
    targets = tables["targets"]
    targets.index = pd.Index(targets["ticker"].astype(str))
    return RunTables(
        run=json.loads((folder / "run.json").read_text()),
        targets=targets,
        sleeves=tables["sleeve_targets"],
        contributions=tables[ATTRIBUTION],
        binding=tables["binding"],
        actions=tables["actions"],
    )


def _read_table(path: Path) -> pd.DataFrame:
    """One table of an output folder, its text columns read as text."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    text = {"ticker": str, "label": str}
    return pd.read_csv(path, dtype=text, keep_default_na=False, na_values=[""])


def read_stored(url: str, run_id: str, ticker: str) -> RunTables:
    """A run stored in the runtime database, as :class:`RunTables` for ``ticker``: its
    targets, and the actions on ``ticker`` (their pairs' weights and the causes they
    list). A name's held weight is its position at the price the run's target implies
    (NaN where neither the target nor the actions tell it)."""
    import sqlalchemy as sa

    from riskopt.data.storage import RiskAction, RiskRun, TargetPosition, engine_for
    from riskopt.optimizer.cli_support import mask_url

    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            run = conn.execute(sa.select(RiskRun).where(RiskRun.run_id == run_id)).first()
            if run is None:
                raise RunNotFoundError(f"no run {run_id!r} is stored in {mask_url(url)}")
            targets = pd.read_sql(
                sa.select(TargetPosition).where(TargetPosition.run_id == run_id), conn
            )
            actions = pd.read_sql(
                sa.select(RiskAction).where(
                    (RiskAction.run_id == run_id) & (RiskAction.ticker == ticker)
                ),
                conn,
            )
    finally:
        engine.dispose()
    actions["details_json"] = actions["details_json"].map(
        lambda d: d if isinstance(d, dict) else json.loads(d)
    )
    return RunTables(
        run={"run_id": run.run_id, "status": run.status, "gamma": run.gamma},
        targets=_stored_targets(targets, actions),
        sleeves=_stored_sleeves(actions),
        contributions=pd.DataFrame(
            [
                {"ticker": ticker, "cause": e["constraint"], "contribution": e["contribution"]}
                for e in _details_of(actions, ticker)
            ],
            columns=["ticker", "cause", "contribution"],
        ),
        binding=pd.DataFrame(columns=["constraint", "label", "dual"]),
        actions=actions,
        complete=False,
    )


def _stored_targets(targets: pd.DataFrame, actions: pd.DataFrame) -> pd.DataFrame:
    """Stored targets with each name's held weight: its position at the price per share
    (of NAV) its target implies, or its pairs' held weights from the actions where it has
    no target position."""
    targets = targets.copy()
    target_position = targets["target_position"].to_numpy(dtype=float)
    per_share = np.divide(
        targets["target_weight"].to_numpy(dtype=float),
        target_position,
        out=np.full(len(targets), np.nan),
        where=target_position != 0,
    )
    current = targets["current_position"].to_numpy(dtype=float)
    held = np.where(current == 0, 0.0, current * per_share)
    if len(actions):
        from_actions = actions["details_json"].map(lambda d: d.get("current_weight"))
        by_ticker = pd.to_numeric(from_actions, errors="coerce").groupby(actions["ticker"]).sum()
        fill = targets["ticker"].map(by_ticker).to_numpy(dtype=float)
        held = np.where(np.isnan(held), fill, held)
    targets["current_weight"] = held
    targets["solved_weight"] = np.nan
    targets.index = pd.Index(targets["ticker"].astype(str))
    return targets


def _stored_sleeves(actions: pd.DataFrame) -> pd.DataFrame:
    """One row per stored action on the name (its pair's weights and label), but those of
    decisions rejected before the solve, which have no pair."""
    actions = actions.loc[~actions["details_json"].map(lambda d: bool(d.get("sanity_reject")))]
    details = actions["details_json"]
    return pd.DataFrame(
        {
            "strategy_id": actions["strategy_id"],
            "ticker": actions["ticker"],
            "current_weight": details.map(lambda d: d.get("current_weight")),
            "proposed_weight": details.map(lambda d: d.get("proposed_weight")),
            "target_weight": details.map(lambda d: d.get("final_weight")),
            "action_type": actions["action_type"],
        }
    )
