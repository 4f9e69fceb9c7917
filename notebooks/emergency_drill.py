# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
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
import pandas as pd

from riskopt.data import SAMPLES
from riskopt.data.loaders import load_book, load_decisions
from riskopt.optimizer import rebalance

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
ax.set_ylabel("fraction of NAV")
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
