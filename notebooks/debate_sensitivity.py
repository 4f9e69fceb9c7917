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
# # How the judge's risk aversion moves with the regime and the drawdown
#
# The debate's features on the sample book, then a grid over the volatility regime
# (short-window over long-window realized volatility) and the drawdown (as a share of
# its budget). Everything else is held at the sample's values.

# %%
# %matplotlib inline
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from riskopt.constraints.config import ConstraintSet
from riskopt.data import SAMPLES
from riskopt.data.loaders import load_book, load_decisions
from riskopt.optimizer import rebalance, research
from riskopt.optimizer.debate import compute_features, run_debate
from riskopt.optimizer.inputs import prepare

book = load_book(SAMPLES / "book")
decisions = load_decisions(SAMPLES / "decisions.csv")
cs = ConstraintSet.load("default")
base = compute_features(book, prepare(book, decisions, cs).data, cs, "NORMAL")
pd.Series(base.portfolio()).round(3)

# %%
regimes = np.linspace(0.6, 2.4, 7)
drawdowns = np.linspace(0.0, 1.2, 7)
grid = pd.DataFrame(
    [
        [
            run_debate(dataclasses.replace(base, vol_regime=v, drawdown_ratio=d), cs.debate).gamma
            for d in drawdowns
        ]
        for v in regimes
    ],
    index=pd.Index(np.round(regimes, 2), name="vol regime"),
    columns=pd.Index(np.round(drawdowns, 2), name="drawdown / budget"),
)
grid.round(2)

# %%
fig, ax = plt.subplots(figsize=(6, 4.5))
image = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
ax.set_xticks(range(len(drawdowns)), labels=grid.columns)
ax.set_yticks(range(len(regimes)), labels=grid.index)
ax.set_xlabel("drawdown / budget")
ax.set_ylabel("volatility regime")
fig.colorbar(image, label="judge's γ")
# %% [markdown]
# More stress never lowers γ: every row and every column of the grid is non-decreasing.
# The outcome follows: a calm regime lets more proposals through, a stressed one scales more
# of them down by risk aversion.

# %%
assert (np.diff(grid.to_numpy(), axis=0) >= -1e-12).all()
assert (np.diff(grid.to_numpy(), axis=1) >= -1e-12).all()
calm = rebalance(book, decisions, "default", state="NORMAL", risk_aversion=float(grid.iloc[0, 0]))
stressed = rebalance(
    book, decisions, "default", state="NORMAL", risk_aversion=float(grid.iloc[-1, -1])
)
outcome = pd.DataFrame({"calm": calm.run.exposures_after, "stressed": stressed.run.exposures_after})
assert outcome.loc["volatility", "stressed"] <= outcome.loc["volatility", "calm"] + 1e-9
assert stressed.scaled_by_risk_aversion() >= calm.scaled_by_risk_aversion()
outcome.round(4)

# %% [markdown]
# ## What the range of γ costs and buys
#
# Seven of the grid's `γ`, from its calmest corner to its most stressed, as a frontier:
# ex-ante volatility against tracking error to the proposal (‖h − h̃‖ in the risk model's
# metric), limits held fixed under NORMAL. Each step up in `γ` buys less risk for more
# distance to the proposal; the line never turns back.

# %%
gammas = np.unique(np.round(np.quantile(grid.to_numpy(), np.linspace(0, 1, 7)), 3))
line = research.frontier(book, decisions, "default", "gamma", gammas, state="NORMAL")
assert np.allclose(line["gamma"], line["value"])
assert (np.diff(line["tracking_error"]) <= 1e-6).all()
assert (np.diff(line["volatility"]) >= -1e-6).all()
line[["gamma", "volatility", "tracking_error", "gross", "SCALED_DOWN"]].round(4)

# %%
research.plot_frontier(line)
