"""The override report: how often and how strongly the gate overrides each strategy.

Read from the runtime database (``risk_runs`` joined with ``risk_actions``): per strategy,
counts and shares of decisions by label, the mean |proposed − final| weight, and the
limits that most often caused an override (the top cause in each action's attribution);
over time, the share of decisions overridden per day.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from riskopt.data.storage import RiskAction, RiskRun, engine_for
from riskopt.optimizer.diff import LABEL_ORDER


def decision_actions(url: str, since: dt.date | str | None = None) -> pd.DataFrame:
    """Every stored action that answers a decision, with its run's date."""
    engine = engine_for(url)
    query = (
        sa.select(
            RiskRun.as_of,
            RiskAction.run_id,
            RiskAction.strategy_id,
            RiskAction.action_type,
            RiskAction.details_json,
        )
        .join(RiskRun, RiskRun.run_id == RiskAction.run_id)
        .where(RiskAction.decision_id.is_not(None))
    )
    if since is not None:
        query = query.where(RiskRun.as_of >= pd.Timestamp(since).date())
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    engine.dispose()
    details = frame["details_json"].map(lambda d: d if isinstance(d, dict) else json.loads(d))
    frame["proposed_weight"] = details.map(lambda d: d.get("proposed_weight"))
    frame["final_weight"] = details.map(lambda d: d.get("final_weight"))
    frame["top_cause"] = details.map(_top_cause)
    return frame.drop(columns=["details_json"])


def _top_cause(details: dict[str, Any]) -> str | None:
    if details.get("sanity_reject"):
        return "sanity reject"
    causes = details.get("attribution") or []
    return causes[0]["constraint"] if causes else None


def override_table(actions: pd.DataFrame, *, top: int = 3) -> pd.DataFrame:
    """Per strategy: counts and shares by label, mean |proposed − final|, top binding limits."""
    counts = actions.pivot_table(
        index="strategy_id", columns="action_type", values="run_id", aggfunc="count", fill_value=0
    ).reindex(columns=list(LABEL_ORDER), fill_value=0)
    total = counts.sum(axis=1)
    shares = counts.div(total, axis=0).add_suffix(" share")
    moved = (actions["proposed_weight"] - actions["final_weight"]).abs()
    mean_override = moved.groupby(actions["strategy_id"]).mean().rename("mean |proposed − final|")
    overridden = actions[actions["action_type"] != "OK"]
    causes = overridden.groupby("strategy_id")["top_cause"].agg(
        lambda s: ", ".join(f"{c} ({n})" for c, n in Counter(s.dropna()).most_common(top))
    )
    out = pd.concat([counts, shares, mean_override, causes.rename("most frequent causes")], axis=1)
    out.insert(0, "decisions", total)
    return out.fillna({"most frequent causes": ""})


def plot_overrides_over_time(actions: pd.DataFrame, *, save: str | Path | None = None) -> Figure:
    """Share of each strategy's decisions the gate did not pass unchanged, per run date.

    The figure is built outside pyplot, so it leaves the session's backend alone."""
    frame = actions.assign(overridden=actions["action_type"] != "OK")
    daily = frame.groupby(["as_of", "strategy_id"])["overridden"].mean().unstack("strategy_id")
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    for strategy in daily.columns:
        ax.plot(daily.index, daily[strategy], marker="o", label=str(strategy))
    if len(daily.columns):
        ax.legend(title="strategy")
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("share of decisions overridden")
    ax.set_title("Gate overrides by strategy over time")
    fig.tight_layout()
    if save is not None:
        fig.savefig(save, dpi=110)
    return fig
