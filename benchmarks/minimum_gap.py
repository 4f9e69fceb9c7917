"""How far the minimum-sizes heuristic lands from the best choice, on small books.

    python benchmarks/minimum_gap.py [--books 50] [--seed 0]

For each random small book (``small_book``: 5 to 8 names, one sleeve, a market factor so
that names interact through the risk term, γ = 0.5, the shipped ``default`` set) and each
minimum alone, the gate runs with the minimum (the heuristic of ``optimizer/minimum.py``)
and without it (the convex program's own optimum). The exhaustive search then solves the
convex sub-problem of every combination of per-name choices that the minimum allows, on
the same program (its boxes changed, nothing else), and keeps the best objective:

* ``trade`` (``t``): each name not traded (``h = h0``, sleeves at ``w0``), closed, or
  traded by at least ``t`` up or down (a half-line box);
* ``holding`` (``m``): each name closed, or held at ``|h| ≥ m`` long or short;
* ``max_names`` (``K``): each set of names closed that leaves at most ``K`` others.

Every choice is intersected with the name's hard box (only-trim hull and all), so both
sides search the same feasible set. The figures are the heuristic's objective above the
best one, as a share of the best (``gap``), and the largest difference between the two
answers' weights (``Δh``, in NAV), over the books where the minimum moved the answer;
a book where the heuristic left a name breaking the minimum (said in the run's alerts)
is counted apart, as its answer lies outside the searched set.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from riskopt.constraints.config import ConstraintSet  # noqa: E402
from riskopt.data.book import Book, RiskModel  # noqa: E402
from riskopt.optimizer.assemble import Assembled, Box  # noqa: E402
from riskopt.optimizer.gate import Gated, Options, gate  # noqa: E402
from riskopt.optimizer.program import ProgramCache  # noqa: E402
from riskopt.optimizer.result import RebalanceResult  # noqa: E402
from riskopt.optimizer.solve import solve  # noqa: E402

MINIMUMS = {"trade": 0.002, "holding": 0.004}
"""The minimums measured (weight); ``max_names`` is the book's names less two."""
GAMMA = 0.5
Choice = tuple[float, float, float | None]
"""A name's choice in the search: its box ``(lo, hi)`` and its sleeves' fixed weight
(``None``: free)."""


def small_book(
    rng: np.random.Generator, n: int, *, factor: float = 1.0
) -> tuple[Book, pd.DataFrame]:
    """``n`` names in one sleeve, some held; proposals of every size from dust to 3%,
    a few short; a market factor of loading ``factor`` (0: the names' risks are
    independent, the objective separable) and equal specific risks."""
    tickers = [f"N{k}" for k in range(n)]
    price = rng.uniform(10, 100, n)
    nav = 1e7
    held = rng.random(n) < 0.5
    h0 = np.where(held, rng.choice([-1, 1], n, p=[0.2, 0.8]) * rng.uniform(0.0005, 0.03, n), 0.0)
    market = pd.DataFrame(
        {
            "ticker": tickers,
            "price": price,
            "adv_shares": 1e9,
            "spread_bps": 5.0,
            "volatility": 0.3,
            "sector": [f"S{k % 4}" for k in range(n)],
            "country": "US",
            "lot_size": 1,
            "tick_size": 0.01,
        }
    )
    positions = pd.DataFrame(
        {"strategy_id": "s", "ticker": tickers, "quantity": h0 * nav / price}
    ).loc[held]
    model = RiskModel(
        loadings=pd.DataFrame(factor, index=tickers, columns=["MARKET"]),
        factor_cov=pd.DataFrame([[0.04]], index=["MARKET"], columns=["MARKET"]),
        specific_var=pd.Series(0.09, index=tickers),
    )
    book = Book.create(as_of="2026-11-20", nav=nav, positions=positions, market=market,
                       risk_model=model)  # fmt: skip
    size = np.where(rng.random(n) < 0.5, rng.uniform(0.0, 0.006, n), rng.uniform(0.006, 0.03, n))
    target = size * rng.choice([-1, 1], n, p=[0.2, 0.8])
    decisions = pd.DataFrame(
        {
            "decision_id": [f"d{k}" for k in range(n)],
            "strategy_id": "s",
            "ticker": tickers,
            "target_weight": target,
            "confidence": 1.0,
        }
    )
    return book, decisions


def run(book: Book, decisions: pd.DataFrame, cs: ConstraintSet, cache: ProgramCache) -> Gated:
    """The gate up to its labels, at γ = 0.5 in NORMAL."""
    options = Options("NORMAL", GAMMA, None, None, cache, True, None)
    gated = gate(book, decisions, cs, options, run_id="gap", store=None)
    assert not isinstance(gated, RebalanceResult)
    return gated


def choices(kind: str, a: Assembled, value: float) -> list[list[Choice]]:
    """Each name's choices under the minimum ``kind`` (module docstring)."""
    data = a.data
    out = []
    for i in range(data.n):
        h0 = float(data.h0[i])
        if kind == "trade":
            named: list[Choice] = [
                (h0, h0, float(data.w0[i])),
                (0.0, 0.0, 0.0),
                (h0 + value, np.inf, None),
                (-np.inf, h0 - value, None),
            ]
        elif kind == "holding":
            named = [(0.0, 0.0, 0.0), (value, np.inf, None), (-np.inf, -value, None)]
        else:
            named = [(0.0, 0.0, 0.0), (-np.inf, np.inf, None)]
        out.append([c for c in named if max(c[0], a.box.lo[i]) <= min(c[1], a.box.hi[i])])
    return out


def exhaustive(
    a: Assembled, kind: str, value: float, cache: ProgramCache
) -> tuple[float, np.ndarray]:
    """The best objective over every combination of choices, and its weights (one sleeve
    per name: a pair is its ticker)."""
    best, best_h = np.inf, a.data.h0
    per_name = choices(kind, a, value)
    for combo in itertools.product(*per_name):
        if kind == "max_names" and sum(c[1] != 0.0 for c in combo) > value:
            continue
        lo = np.maximum(a.box.lo, [c[0] for c in combo])
        hi = np.minimum(a.box.hi, [c[1] for c in combo])
        fixed = np.array([np.nan if c[2] is None else c[2] for c in combo])[a.data.pair_ticker]
        w_lo = np.where(np.isnan(fixed), a.box.w_lo, fixed)
        w_hi = np.where(np.isnan(fixed), a.box.w_hi, fixed)
        trial = dataclasses.replace(a, box=Box(lo, hi, w_lo, w_hi))
        solution = solve(trial, solvers=None, cache=cache)
        if solution.solved is not None and solution.solved.objective < best:
            best, best_h = solution.solved.objective, solution.h
    return best, best_h


def measure(books: int, seed: int) -> dict[str, list[tuple[float, float, bool]]]:
    """Per minimum, each book's ``(gap, Δh, bound)``: ``bound`` where the minimum moved
    the heuristic's answer."""
    rng = np.random.default_rng(seed)
    base_cs = ConstraintSet.load("default")
    out: dict[str, list[tuple[float, float, bool]]] = {k: [] for k in (*MINIMUMS, "max_names")}
    cache = ProgramCache(4)
    for _ in range(books):
        n = int(rng.integers(5, 9))
        book, decisions = small_book(rng, n)
        plain = run(book, decisions, base_cs, cache)
        for kind in out:
            value = MINIMUMS.get(kind, n - 2)
            cs = base_cs.replace(**{f"minimum.{kind}": value})
            heuristic = run(book, decisions, cs, cache)
            solved = heuristic.solution.solved
            assert solved is not None
            moved = bool(heuristic.notes)
            if not moved:
                out[kind].append((0.0, 0.0, False))
                continue
            best, best_h = exhaustive(plain.assembled, kind, value, cache)
            gap = (solved.objective - best) / max(abs(best), 1e-12)
            if any(alert.startswith("minimum") for alert in heuristic.run.alerts):
                gap = np.nan  # the heuristic left a name breaking it: not comparable
            out[kind].append((gap, float(np.max(np.abs(heuristic.solution.h - best_h))), True))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = measure(args.books, args.seed)
    print(f"{args.books} books of 5 to 8 names, seed {args.seed}, γ = {GAMMA}")
    print(
        "| minimum | binds in | left breaking | gap: median | gap: worst | Δh: median | Δh: worst |"
    )
    print("|---|---|---|---|---|---|---|")
    for kind, rows in results.items():
        left = sum(1 for r in rows if np.isnan(r[0]))
        bound = [r for r in rows if r[2] and not np.isnan(r[0])]
        gaps = [r[0] for r in bound] or [0.0]
        dh = [r[1] for r in bound] or [0.0]
        print(
            f"| {kind} | {len(bound)} | {left} | {statistics.median(gaps):.2%} | {max(gaps):.2%} "
            f"| {statistics.median(dh):.4f} | {max(dh):.4f} |"
        )


if __name__ == "__main__":
    main()
