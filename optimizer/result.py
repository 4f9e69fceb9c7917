"""What a rebalance returns: targets, actions, the run record, and helpers to read them."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from riskopt._version import __version__
from riskopt.constraints.states import describe_state
from riskopt.optimizer.diff import LABEL_ORDER

if TYPE_CHECKING:
    from riskopt.optimizer.explain import Explanation

OPTIMAL, RELAXED, FALLBACK, DEGRADED = "OPTIMAL", "RELAXED", "FALLBACK", "DEGRADED"


def _string_pool() -> pa.MemoryPool:
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.system_memory_pool()


STRING_POOL = _string_pool()
"""Where the result tables' text columns are allocated: jemalloc, which places a large
text column (``details_json``) in steady time where pyarrow's default pool now and then
stalls on a fresh process (``benchmarks/README.md``, "Text columns' memory pool"). Only
these columns use it: nothing global changes."""


_STR_DTYPE = pd.api.types.pandas_dtype("str")
"""pandas' ``str`` dtype, as ``dtype="str"`` resolves it."""


def _as_text_column(array: pa.Array) -> pd.api.extensions.ExtensionArray:
    """An Arrow text array as pandas' ``str`` column: wrapped as it is where that column
    keeps its text in Arrow's ``large_string`` (no conversion pass), else converted."""
    if (
        isinstance(_STR_DTYPE, pd.StringDtype)
        and _STR_DTYPE.storage == "pyarrow"
        and array.type == pa.large_string()
    ):
        return pd.arrays.ArrowStringArray(array, dtype=_STR_DTYPE)  # type: ignore[call-arg]  # stubs lag pandas 3
    return pd.array(array, dtype="str")


def string_column(values: list[Any] | np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``values`` (text; ``None`` or NaN for missing) as pandas' ``str`` column; anything
    else (a number in a rejected decision's id) is written as pandas writes it."""
    try:
        array = text_array(values)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pd.array(values, dtype="str")
    return _as_text_column(array)


def text_array(values: list[Any] | np.ndarray) -> pa.Array:
    """``values`` (text; ``None`` or NaN for missing) as one Arrow array in
    :data:`STRING_POOL`: what :func:`string_column` wraps, and what text read into several
    columns (the tickers, in the targets and sleeves tables) is converted to once, for
    :func:`string_take`."""
    return pa.array(values, type=pa.large_string(), from_pandas=True, memory_pool=STRING_POOL)


def string_take(texts: pa.Array, indices: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """The ``str`` column of ``texts[indices]`` (:func:`text_array`)."""
    return _as_text_column(texts.take(indices))


TARGET_COLUMNS = (
    "ticker",
    "current_position",
    "target_position",
    "delta_position",
    "current_weight",
    "target_weight",
    "proposed_weight",
    "solved_weight",
    "priority",
    "action_type",
    "risk_reasoning_summary",
)


@dataclass
class RunInfo:
    """The run record: status, solver path, risk aversion, breaches, exposures, timings."""

    run_id: str
    as_of: dt.date | None
    """The book's date; ``None`` (shown "unknown") for a run whose book gave none."""
    created_at: dt.datetime
    status: str
    constraint_set: str
    solver: str | None
    solver_chain: list[dict[str, str]]
    gamma: float
    state: str = "NORMAL"
    breaches: list[dict[str, Any]] = field(default_factory=list)
    exposures_before: dict[str, float] = field(default_factory=dict)
    exposures_after: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    program_built: bool = True
    state_source: str = "given"
    """How the state was decided: ``"given"``, ``"missing"``, ``"stale"``, ``"malformed"``
    (``riskopt.constraints.states.SOURCES``)."""
    alerts: list[str] = field(default_factory=list)
    """Alerts raised by the run (also logged at WARNING or above)."""
    debate: list[dict[str, Any]] = field(default_factory=list)
    """The debate transcript (portfolio turns), when the debate set γ."""
    risk_model: dict[str, Any] = field(default_factory=dict)
    """Where the risk model came from: ``source`` (``given``, ``estimated`` or ``none``)
    and, when estimated, the settings used and the number of dates fitted on."""
    version: str = __version__
    """The riskopt version that made the run (``riskopt.__version__``)."""
    error: str | None = None
    """Why the run failed, on one line, when its gate raised (the run is then ``DEGRADED``)."""
    error_type: str | None = None
    """The name of the exception that made the run fail (``None`` when it did not)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["as_of"] = None if self.as_of is None else self.as_of.isoformat()
        out["created_at"] = self.created_at.isoformat()
        return out


def _breach_line(b: dict[str, Any]) -> str:
    """One breach for a terminal: the limit, its row and tier, value against limit."""
    lots = " (left by rounding to whole lots)" if b.get("cause") == "lots" else ""
    if b.get("by_lots"):
        lots = f" ({b['by_lots']:.4%} of it added by rounding to whole lots)"
    return (
        f"  {b['constraint']} [{b['label']}] tier {b['tier']}: "
        f"{b['value']:.4%} vs limit {b['limit']:.4%}{lots}"
    )


def _degraded_summary(result: RebalanceResult) -> str:
    """A DEGRADED run's summary: no targets, the book held, and why."""
    run = result.run
    lines = [
        f"run {run.run_id}  as of {run.as_of or 'unknown'}  status DEGRADED: no targets; "
        "the current book is held as it is",
        f"why: {run.error or (run.alerts[0] if run.alerts else 'the book could not be read')}",
        "",
        "decisions by label",
    ]
    lines.extend(f"  {label:<12}{count:>6}" for label, count in result.label_counts().items())
    return "\n".join(lines)


def gamma_meaning(gamma: float) -> str:
    """What the run's risk aversion does on its own, in words a portfolio manager reads."""
    if gamma <= 0:
        return "γ = 0: no risk aversion; the limits alone move the book"
    return f"γ = {gamma:.3g}: on its own it would shrink the book by {gamma / (1 + gamma):.0%}"


@dataclass
class RebalanceResult:
    """Final targets of one rebalance, with every decision labelled and explained.

    ``targets`` has one row per ticker, indexed by ticker (its ``ticker`` column too),
    ordered by execution ``priority`` (1 first);
    ``sleeve_targets`` one row per (strategy, ticker); ``actions`` one row per decision
    plus one per name the gate changed without a decision; ``binding`` the policy rows
    and hard bounds with a positive multiplier; ``attribution`` each name's deviation
    from its proposal split by cause (columns add up to ``h − h̃``).
    """

    run: RunInfo
    targets: pd.DataFrame
    sleeve_targets: pd.DataFrame
    actions: pd.DataFrame
    binding: pd.DataFrame
    attribution: pd.DataFrame
    debate: Any = None
    """The :class:`DebateResult` when the debate set the risk aversion, else ``None``."""

    def explain(self, ticker: str) -> Explanation:
        """Why ``ticker`` ended where it did: held → proposed → final for the name and each
        of its sleeves, and each cause's share of the move with its multiplier and bound
        (:class:`riskopt.optimizer.explain.Explanation`: ``text``, ``frame``, ``plot()``).
        Read from this result's tables, never solved again; an unknown ticker raises
        :class:`~riskopt.optimizer.explain.UnknownTickerError`."""
        from riskopt.optimizer.explain import explain_result

        return explain_result(self, ticker)

    def scaled_by_risk_aversion(self) -> int:
        """Decisions scaled down by risk aversion rather than by a limit."""
        dec = self.actions[
            (self.actions["decision_id"].notna()) & (self.actions["action_type"] == "SCALED_DOWN")
        ]
        top = dec["details_json"].map(
            lambda d: (json.loads(d).get("attribution") or [{}])[0].get("constraint")
        )
        return int((top == "risk_aversion").sum())

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def breaches(self) -> list[dict[str, Any]]:
        return self.run.breaches

    def label_counts(self) -> pd.Series:
        """Counts of decisions by label (actions without a decision excluded)."""
        labels = self.actions["action_type"].to_numpy(dtype=object)
        labels = labels[self.actions["decision_id"].notna().to_numpy()]
        return pd.Series(
            [int(np.count_nonzero(labels == label)) for label in LABEL_ORDER],
            index=pd.Index(LABEL_ORDER, name="action_type"),
            name="count",
            dtype=np.int64,
        )

    def largest_overrides(self, k: int = 5) -> pd.DataFrame:
        """The ``k`` decisions the gate moved most from their proposal."""
        dec = self.actions[self.actions["decision_id"].notna()].copy()
        dec = dec[dec["action_type"] != "OK"]
        dec["override"] = (dec["proposed_weight"] - dec["final_weight"]).abs()
        dec = dec.sort_values(
            ["override", "decision_id"], ascending=[False, True], na_position="last"
        )
        return dec.head(k)[
            ["decision_id", "ticker", "strategy_id", "action_type", "override", "reason"]
        ]

    def _limit_lines(self) -> list[str]:
        """The summary's binding constraints and breaches."""
        lines: list[str] = []
        if len(self.binding):
            lines.append("")
            lines.append(
                "binding constraints (multiplier λ; for per-name limits, names binding and largest λ)"
            )
            for row in binding_by_family(self.binding).itertuples(index=False):
                lines.append(
                    f"  {row.constraint:<30} {row.kind:<7} tier {row.tier!s:<5} names {row.rows:>4}  λ {row.dual:.3g}"
                )
        breaches = self.run.breaches
        if breaches:
            lines.append("")
            lines.append("breaches left (limits that gave way to the hard limits or a higher tier)")
            lines.extend(_breach_line(b) for b in breaches[:10])
            if len(breaches) > 10:
                lines.append(f"  ... {len(breaches) - 10} more")
        return lines

    def summary(self, *, top: int = 5) -> str:
        """A plain-text summary for a terminal."""
        run = self.run
        if run.status == DEGRADED:
            return _degraded_summary(self)
        lines = [
            f"run {run.run_id}  as of {run.as_of or 'unknown'}  set {run.constraint_set}",
            f"state: {describe_state(run.state, run.state_source)}",
            f"status {run.status}  solver {run.solver or '-'}  γ = {run.gamma:.4g}  "
            f"total {run.timings.get('total', float('nan')):.3f}s (solver {run.timings.get('solver', 0.0):.3f}s)",
            gamma_meaning(run.gamma),
        ]
        before, after = run.exposures_before, run.exposures_after
        lines.append("")
        lines.append(f"{'exposure':<12}{'before':>10}{'after':>10}")
        for key in ("gross", "net", "long", "short", "volatility"):
            if key in before:
                lines.append(f"{key:<12}{before[key]:>10.2%}{after[key]:>10.2%}")
        if self.debate is not None:
            lines.append("")
            lines.append(
                f"risk debate: judge γ = {self.debate.gamma:.3g} (stress {self.debate.stress:.2f})"
            )
            for speaker, row in self.debate.last_proposals().iterrows():
                lines.append(f"  {speaker:<8} γ {row['risk_aversion']:>7.3g}  {row['rationale']}")
            lines.append(
                f"  decisions scaled by risk aversion rather than a limit: {self.scaled_by_risk_aversion()}"
            )
        lines.append("")
        lines.append("decisions by label")
        for label, count in self.label_counts().items():
            lines.append(f"  {label:<12}{count:>6}")
        lines.extend(self._limit_lines())
        overrides = self.largest_overrides(top)
        if len(overrides):
            lines.append("")
            lines.append(f"{top} largest overrides")
            for row in overrides.itertuples(index=False):
                lines.append(
                    f"  {row.decision_id} {row.ticker:<9} {row.strategy_id:<9} {row.reason}"
                )
        for w in run.warnings:
            lines.append(f"warning: {w}")
        for a in run.alerts:
            if a not in run.warnings:
                lines.append(f"ALERT: {a}")
        return "\n".join(lines)


@dataclass(frozen=True)
class BookSummary:
    """A rebalance's run record (status, label counts, exposures, breaches, warnings,
    timings) without its tables: what a batch keeps of a book with ``keep="summaries"``,
    about 1 kB where a 300-name book's full result pickles to about 550 kB."""

    run: RunInfo
    names: int
    """Rows of the book's target table."""

    @classmethod
    def of(cls, result: RebalanceResult) -> BookSummary:
        return cls(run=result.run, names=len(result.targets))


def binding_by_family(binding: pd.DataFrame) -> pd.DataFrame:
    """Binding rows grouped by constraint: how many rows bind and the largest multiplier."""
    if binding.empty:
        return pd.DataFrame(columns=["constraint", "kind", "tier", "rows", "dual"])
    grouped = binding.groupby(["constraint", "kind"], sort=False).agg(
        tier=("tier", "first"), rows=("label", "size"), dual=("dual", "max")
    )
    out = grouped.reset_index().sort_values("dual", ascending=False)
    out["tier"] = out["tier"].map(lambda t: "-" if pd.isna(t) else str(int(t)))
    return out


def exposures(
    h: np.ndarray,
    loadings: np.ndarray | None,
    factor_cov: np.ndarray | None,
    specific: np.ndarray | None,
) -> dict[str, float]:
    out = {
        "gross": float(np.abs(h).sum()),
        "net": float(h.sum()),
        "long": float(np.maximum(h, 0).sum()),
        "short": float(np.maximum(-h, 0).sum()),
    }
    if loadings is not None and factor_cov is not None and specific is not None:
        f = loadings.T @ h
        out["volatility"] = float(np.sqrt(max(f @ factor_cov @ f + (specific * h * h).sum(), 0.0)))
    return out
