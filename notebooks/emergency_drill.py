# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Emergency drill: NORMAL → ELEVATED → EMERGENCY
#
# The same decisions under each black-swan state of the default set. Stricter states
# shrink caps, raise the risk-aversion floor and, in EMERGENCY, only de-risk and force
# gross down; the calmer-state envelope keeps each state's exposures at or below the
# calmer one's.

# %%
# %matplotlib inline
import numpy as np
import pandas as pd
from matplotlib.ticker import PercentFormatter

from riskopt.constraints.config import ConstraintSet
from riskopt.data import SAMPLES
from riskopt.data.loaders import load_book, load_decisions
from riskopt.optimizer import rebalance, research

book = load_book(SAMPLES / "book")
decisions = load_decisions(SAMPLES / "decisions.csv")
states = ["NORMAL", "ELEVATED", "EMERGENCY"]
runs = {s: rebalance(book, decisions, "default", state=s) for s in states}
exposures = pd.DataFrame({s: r.run.exposures_after for s, r in runs.items()})
exposures.loc["γ"] = [r.run.gamma for r in runs.values()]
exposures.round(4)

# %%
trades = pd.DataFrame({s: r.label_counts() for s, r in runs.items()})
trades.loc["names traded"] = [int((r.targets["delta_position"] != 0).sum()) for r in runs.values()]
trades

# %%
ax = exposures.loc[["gross", "long", "short", "volatility"]].T.plot.bar(rot=0, figsize=(7, 4))
ax.yaxis.set_major_formatter(PercentFormatter(1.0))
ax.set_ylabel("% of NAV")
ax.set_title("Exposures by state")
# %%
for calm, strict in zip(states, states[1:], strict=False):
    for key in ("gross", "volatility"):
        assert exposures.loc[key, strict] <= exposures.loc[key, calm] + 1e-6, (key, calm, strict)
    assert abs(exposures.loc["net", strict]) <= abs(exposures.loc["net", calm]) + 1e-6
emergency = runs["EMERGENCY"].targets
assert (emergency["target_position"].abs() <= emergency["current_position"].abs()).all()
assert (
    exposures.loc["γ", "EMERGENCY"]
    >= exposures.loc["γ", "ELEVATED"]
    >= exposures.loc["γ", "NORMAL"]
)

# %% [markdown]
# ## The caps each state applies
#
# The same configured gross and volatility caps, swept under each state: `applied` is the
# cap the run used, the configured one times the state's multiplier and the drawdown's
# (the sample book is 2.3% below its peak, against a 15% budget). The calmer-state
# envelope comes on top, as limits of its own.

# %%
cs = ConstraintSet.load("default")
caps = pd.concat(
    {
        s: pd.concat(
            {
                p: research.sweep(book, decisions, cs, p, [v], state=s).iloc[0]
                for p, v in (("gross", 1.6), ("volatility", 0.08))
            }
        ).unstack()[["value", "applied", "gross", "volatility"]]
        for s in states
    }
)
drawdown_m = caps.loc[("NORMAL", "gross"), "applied"] / 1.6
assert drawdown_m < 1
for s in states:
    sop = cs.states.sop(s)
    assert np.isclose(caps.loc[(s, "gross"), "applied"], 1.6 * sop.gross * drawdown_m)
    assert np.isclose(caps.loc[(s, "volatility"), "applied"], 0.08 * sop.volatility * drawdown_m)
    assert caps.loc[(s, "gross"), "gross"] <= caps.loc[(s, "gross"), "applied"] + 1e-4
caps.astype(float).round(4)

# %%
share = (caps["applied"] / caps["value"]).astype(float).unstack()
ax = share.plot.bar(rot=0, figsize=(7, 4))
ax.yaxis.set_major_formatter(PercentFormatter(1.0))
ax.set_ylabel("applied, as a share of the configured cap")
ax.set_title("Gross and volatility caps: state multiplier × drawdown multiplier")
