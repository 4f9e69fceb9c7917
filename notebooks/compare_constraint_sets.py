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
# # Comparing constraint sets on the sample book
#
# The same book and decisions through the four shipped sets, under the NORMAL state. The
# sets are compared at one risk aversion `γ`: the debate's on the first set (`default`),
# held for all four, so that the rows differ by their limits alone. Further down, the same
# comparison with each set's own debate, a risk/tracking frontier and the factor exposures.

# %%
# %matplotlib inline
import numpy as np

from riskopt.data import SAMPLES
from riskopt.data.loaders import load_book, load_decisions
from riskopt.optimizer import rebalance, research

book = load_book(SAMPLES / "book")
decisions = load_decisions(SAMPLES / "decisions.csv")
sets = ["default", "conservative", "long_only", "market_neutral"]
columns = [
    "gamma",
    "gamma_source",
    "volatility",
    "gross",
    "net",
    "turnover",
    "tracking",
    "tracking_error",
    "OK",
    "SCALED_DOWN",
    "CAPPED",
    "REJECTED",
    "largest_sector",
    "binding",
]
table = research.compare(book, decisions, {s: s for s in sets}, state="NORMAL")
table[columns].round(3)

# %% [markdown]
# Every row ran at the same `γ`. The conservative set runs the smallest gross book of the
# long/short sets and sits furthest from the proposal; the market-neutral set holds its net
# exposure inside its ±2% band; every set moves the book away from its proposal
# (tracking > 0): the proposals break limits in all of them.

# %%
gamma = float(table["gamma"].iloc[0])
assert np.allclose(table["gamma"], gamma)
assert table.loc["conservative", "gross"] < table.loc["default", "gross"]
assert table.loc["conservative", "gross"] < table.loc["market_neutral", "gross"]
assert table.loc["conservative", "tracking"] == table["tracking"].max()
assert abs(table.loc["market_neutral", "net"]) <= 0.02 + 1e-4
assert (table["tracking"] > 0).all()

# %% [markdown]
# ## With each set's own debate
#
# Each set's debate reads the book against that set's limits and picks its own `γ`: this
# table compares the sets as the gate would run them, debate included. The `γ` it used
# differs by set, so part of what differs between the rows is the debate, not the limits.

# %%
debated = research.compare(book, decisions, {s: s for s in sets}, state="NORMAL", debate=True)
assert debated["gamma"].nunique() == len(sets)
assert debated.loc["default", "gamma"] == gamma
debated[["gamma", "gamma_source", "volatility", "gross", "tracking", "tracking_error"]].round(3)

# %%
results = {s: rebalance(book, decisions, s, state="NORMAL", risk_aversion=gamma) for s in sets}
research.plot_label_counts(results)

# %%
research.plot_sector_exposures(results["default"], book)

# %%
research.plot_overrides_by_strategy(results["default"])

# %% [markdown]
# ## Factor exposures
#
# Each factor's exposure `Bᵀh` before the run, as proposed and after the gate. The gate
# does not target factors, but its risk term and the volatility cap pull the largest
# factor bets toward zero: the largest proposed exposure is smaller after the gate.

# %%
factors = research.factor_exposures(results["default"], book)
largest = factors["proposed"].abs().idxmax()
assert abs(factors.loc[largest, "after"]) < abs(factors.loc[largest, "proposed"])
factors.round(4)

# %%
research.plot_factor_exposures(results["default"], book)

# %% [markdown]
# ## The risk/tracking frontier
#
# The volatility cap swept from tight to loose at one `γ`: ex-ante volatility against
# tracking error to the proposal (‖h − h̃‖ in the risk model's metric). As the cap
# loosens, tracking error falls and risk rises until the cap stops binding. Points are
# labelled by the cap applied (the configured cap times the drawdown's multiplier: the
# sample book is 2.3% below its peak).

# %%
line = research.frontier(
    book, decisions, "default", "volatility", [0.03, 0.035, 0.04, 0.045, 0.05], state="NORMAL"
)
assert (np.diff(line["tracking_error"]) <= 1e-6).all()
assert (np.diff(line["volatility"]) >= -1e-6).all()
assert (line["applied"] < line["value"]).all()
line[["value", "applied", "volatility", "tracking_error", "gross", "binding"]].round(4)

# %%
research.plot_frontier(line)

# %% [markdown]
# A gross cap traces gross against the distance to the proposal: each looser cap moves the
# book closer to it. Its ex-ante volatility need not follow (a tighter gross cap cuts hedges
# as well as bets), which is why the risk frontier sweeps the volatility cap or `γ`.

# %%
gross = research.frontier(book, decisions, "default", "gross", [0.9, 1.1, 1.3, 1.6], state="NORMAL")
assert (np.diff(gross["tracking"]) <= 1e-6).all()
assert (np.diff(gross["gross"]) >= -1e-6).all()
research.plot_frontier(gross, x="gross", y="tracking")
