"""Which solver rescues the books Clarabel fails on: every candidate alone on stress books.

    python benchmarks/solver_chain.py [--books 100] [--json out.json]

Each stress book is a synthetic universe (``riskopt.data.synthetic.make_universe``, 20 to 300
names, its own seed) pushed one or two ways at once: a tiny or huge NAV (1e5 to 1e12), a
near-singular or badly scaled factor covariance, decisions far outside the limits, caps
too tight for the trade limit to reach, the EMERGENCY state with forced de-risking, or an
interior-point iteration limit at the set's minimum; every state comes round in turn.
Each candidate solver then runs the book alone through the gate
(``rebalance(..., solvers=[candidate])``), and the table counts its accepted answers
(``OPTIMAL`` or ``RELAXED``, not ``FALLBACK``), the books it rescues where Clarabel's
direct path fails, its median solve time and its distance to a reference answer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from riskopt.constraints.config import ConstraintSet  # noqa: E402
from riskopt.data.book import Book, RiskModel  # noqa: E402
from riskopt.data.synthetic import make_universe  # noqa: E402
from riskopt.optimizer import rebalance  # noqa: E402
from riskopt.optimizer.program import ProgramCache  # noqa: E402

SIZES = (20, 40, 80, 150, 300)
STATES = ("NORMAL", "ELEVATED", "EMERGENCY")
SETS = ("default", "conservative", "long_only", "market_neutral")
AGREE = 1e-4
"""Two accepted answers agree when no solved weight differs by more than this (1 bp)."""


@dataclass
class Case:
    """One stress book: its inputs and what was done to it."""

    name: str
    book: Book
    decisions: pd.DataFrame
    cs: ConstraintSet
    state: str
    gamma: float
    stresses: tuple[str, ...]


@dataclass
class Outcome:
    """One candidate alone on one book: accepted or not, its time and solved weights."""

    accepted: bool
    status: str
    seconds: float
    weights: np.ndarray | None
    chain: list[dict[str, str]] = field(default_factory=list)


Stress = Callable[[Case, np.random.Generator], Case]


def _near_singular(case: Case, rng: np.random.Generator) -> Case:
    """Factor covariance with one direction 1e-13 of the largest (rank-deficient to
    working precision)."""
    model = case.book.risk_model
    assert model is not None
    cov = model.factor_cov.to_numpy()
    values, vectors = np.linalg.eigh(cov)
    values[0] = values[-1] * 1e-13
    if len(values) > 2:
        values[1] = values[-1] * 1e-11
    fixed = (vectors * values) @ vectors.T
    fixed = (fixed + fixed.T) / 2
    frame = pd.DataFrame(fixed, index=model.factor_cov.index, columns=model.factor_cov.columns)
    return _with_model(case, dataclasses.replace(model, factor_cov=frame))


def _badly_scaled(case: Case, rng: np.random.Generator) -> Case:
    """Factor volatilities spread over eight orders of magnitude (1e-4 to 1e4 times)."""
    model = case.book.risk_model
    assert model is not None
    k = model.factor_cov.shape[0]
    scale = np.logspace(-4, 4, k)[rng.permutation(k)]
    cov = model.factor_cov.to_numpy() * np.outer(scale, scale)
    frame = pd.DataFrame(cov, index=model.factor_cov.index, columns=model.factor_cov.columns)
    return _with_model(case, dataclasses.replace(model, factor_cov=frame))


def _with_model(case: Case, model: RiskModel) -> Case:
    return dataclasses.replace(case, book=dataclasses.replace(case.book, risk_model=model))


def _far_outside(case: Case, rng: np.random.Generator) -> Case:
    """Every decision pushed to ±24% (the sanity limit is 25%; the per-name caps 5%)."""
    d = case.decisions.copy()
    sign = np.where(rng.random(len(d)) < 0.5, -1.0, 1.0)
    d["target_weight"] = sign * 0.24
    return dataclasses.replace(case, decisions=d)


def _tight_caps(case: Case, rng: np.random.Generator) -> Case:
    """Per-name cap 0.1% and gross cap 5% (net within ±2%), with trades limited to 0.1%
    of ADV: most of the book cannot reach them."""
    cs = case.cs.replace(
        **{
            "position.max_weight": 0.001,
            "exposure.gross.max": 0.05,
            "exposure.net.min": -0.02,
            "exposure.net.max": 0.02,
            "trading.max_trade_pct_adv": 0.001,
        }
    )
    return dataclasses.replace(case, cs=cs)


def _emergency(case: Case, rng: np.random.Generator) -> Case:
    """The EMERGENCY state, every decision doubling its position (forced de-risking)."""
    d = case.decisions.copy()
    d["target_weight"] = (d["target_weight"] * 2.0).clip(-0.24, 0.24)
    return dataclasses.replace(case, decisions=d, state="EMERGENCY")


def _few_iterations(case: Case, rng: np.random.Generator) -> Case:
    """The set's smallest interior-point iteration limit (10), which these programs exceed."""
    return dataclasses.replace(case, cs=case.cs.replace(**{"solver.max_iters": 10}))


STRESSES: dict[str, Stress] = {
    "near_singular_cov": _near_singular,
    "badly_scaled_cov": _badly_scaled,
    "far_outside": _far_outside,
    "tight_caps": _tight_caps,
    "emergency": _emergency,
    "few_iterations": _few_iterations,
}
NAVS = (1e5, 1e7, 1e9, 1e12)


def stress_books(count: int) -> list[Case]:
    """``count`` stress books, the same ones every run (seeded by their index)."""
    names = list(STRESSES)
    cases = []
    for i in range(count):
        rng = np.random.default_rng(1000 + i)
        n = SIZES[i % len(SIZES)]
        nav = NAVS[(i // len(SIZES)) % len(NAVS)]
        universe = make_universe(n, 4 + i % 7, seed=i, nav=nav, years=0.5, with_returns=False)
        cs = ConstraintSet.load(SETS[(i // 3) % len(SETS)])
        case = Case(
            name=f"b{i:03d}",
            book=universe.book,
            decisions=universe.decisions,
            cs=cs,
            state=STATES[i % len(STATES)],
            gamma=(0.0, 0.25, 1.0, 4.0)[i % 4],
            stresses=(f"nav={nav:.0e}",),
        )
        picked = [names[i % len(names)]]
        if i % 3 == 0:
            picked.append(names[(i // len(names) + 2 + i) % len(names)])
        for stress in dict.fromkeys(picked):
            case = STRESSES[stress](case, rng)
            case.stresses += (stress,)
        cases.append(case)
    return cases


def candidates() -> dict[str, Any]:
    """The chain names tried alone: Clarabel on the direct assembly and on cvxpy's compile
    (``CLARABEL_CVXPY``), then each other solver the chain knows that cvxpy has installed."""
    import cvxpy as cp

    installed = set(cp.installed_solvers())
    out: dict[str, Any] = {"CLARABEL": "CLARABEL", "CLARABEL_CVXPY": "CLARABEL_CVXPY"}
    for name in ("SCS", "ECOS", "OSQP", "PIQP"):
        if name in installed:
            out[name] = name
    return out


def run_one(
    case: Case, solver: Any, cache: ProgramCache, *, max_iters: int | None = None
) -> Outcome:
    """``solver`` alone on ``case`` through the gate: accepted, solve time, solved weights."""
    cs = case.cs if max_iters is None else case.cs.replace(**{"solver.max_iters": max_iters})
    result = rebalance(
        case.book,
        case.decisions,
        cs,
        state=case.state,
        risk_aversion=case.gamma,
        cache=cache,
        solvers=[solver],
    )
    status = result.run.status
    accepted = status in ("OPTIMAL", "RELAXED")
    weights = None
    if accepted:
        solved = result.targets.set_index("ticker")["solved_weight"].sort_index()
        weights = solved.to_numpy(dtype=float)
    return Outcome(
        accepted=accepted,
        status=status,
        seconds=float(result.run.timings["solve"]),
        weights=weights,
        chain=result.run.solver_chain,
    )


def run_case(case: Case) -> dict[str, Any]:
    """Every candidate alone on ``case``, and the reference answer: Clarabel's, or, where
    the iteration limit was the stress, Clarabel's at the set's usual 500 iterations."""
    cache = ProgramCache(8)
    outcomes = {}
    for label, solver in candidates().items():
        if label != "CLARABEL":
            for program in list(cache._programs.values()):
                _ = program.cvxpy  # its compile is paid once per book, not timed
        outcomes[label] = run_one(case, solver, cache)
    reference = outcomes["CLARABEL"].weights
    if "few_iterations" in case.stresses:
        reference = run_one(case, "CLARABEL", cache, max_iters=500).weights
    return {"case": case, "outcomes": outcomes, "reference": reference}


def _distance(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    if a is None or b is None or a.shape != b.shape:
        return None
    return float(np.nanmax(np.abs(np.nan_to_num(a - b, nan=0.0)), initial=0.0))


def _rescues(result: dict[str, Any], label: str) -> bool:
    """Whether ``label`` rescues a book Clarabel's direct path fails: accepted, and within
    :data:`AGREE` of the reference (or of every other accepted answer, where none)."""
    outcomes: dict[str, Outcome] = result["outcomes"]
    mine = outcomes[label]
    if outcomes["CLARABEL"].accepted or not mine.accepted:
        return False
    others = [result["reference"]] if result["reference"] is not None else []
    if not others:
        others = [o.weights for k, o in outcomes.items() if k != label and o.accepted]
    return all((_distance(mine.weights, w) or 0.0) <= AGREE for w in others)


def table(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per candidate: books accepted, rescues of Clarabel's failures, median solve
    time and the largest distance of an accepted answer to the reference."""
    rows = []
    for label in results[0]["outcomes"]:
        outcomes = [r["outcomes"][label] for r in results]
        distances = [_distance(r["outcomes"][label].weights, r["reference"]) for r in results]
        known = [d for d in distances if d is not None]
        rows.append(
            {
                "solver": label,
                "accepted": sum(o.accepted for o in outcomes),
                "rescues": sum(_rescues(r, label) for r in results),
                "median_s": statistics.median(o.seconds for o in outcomes),
                "max_distance": max(known) if known else None,
            }
        )
    return rows


def best_chain(results: list[dict[str, Any]], names: set[str]) -> list[str]:
    """Clarabel first, then greedily the candidate (among the chain's ``names``) that
    rescues most of the books still failing, while one rescues any."""
    chain = ["CLARABEL"]
    left = [r for r in results if not r["outcomes"]["CLARABEL"].accepted]
    while left:
        counts = {k: sum(_rescues(r, k) for r in left) for k in names - set(chain)}
        pick = max(sorted(counts), key=lambda k: counts[k], default=None)
        if pick is None or counts[pick] == 0:
            break
        chain.append(pick)
        left = [r for r in left if not _rescues(r, pick)]
    return chain


def _record(result: dict[str, Any]) -> dict[str, Any]:
    case: Case = result["case"]
    return {
        "book": case.name,
        "n": len(case.book.market),
        "set": case.cs.name,
        "state": case.state,
        "stresses": list(case.stresses),
        "outcomes": {
            k: {
                "status": o.status,
                "seconds": o.seconds,
                "distance": _distance(o.weights, result["reference"]),
                "chain": o.chain,
            }
            for k, o in result["outcomes"].items()
        },
    }


def main() -> None:
    """Run the stress books, print the table and the chain that rescues most."""
    import clarabel
    import cvxpy as cp
    import scs

    from riskopt.constraints.config import SOLVERS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=100)
    parser.add_argument("--jsonl", type=Path, default=None)
    args = parser.parse_args()
    logging.disable(logging.ERROR)
    results = []
    sink = args.jsonl.open("w") if args.jsonl else None
    for case in stress_books(args.books):
        start = time.perf_counter()
        results.append(run_case(case))
        if sink:
            sink.write(json.dumps(_record(results[-1])) + "\n")
            sink.flush()
        print(f"{case.name} {case.stresses} {time.perf_counter() - start:.1f}s", flush=True)
    print(
        f"\n{platform.platform()}, Python {platform.python_version()}, cvxpy {cp.__version__}, "
        f"Clarabel {clarabel.__version__}, SCS {scs.__version__}"
    )
    print(
        "| solver | accepted | rescues of Clarabel's failures | median solve (s) | max distance |"
    )
    print("|---|---|---|---|---|")
    for row in table(results):
        distance = "—" if row["max_distance"] is None else f"{row['max_distance']:.1e}"
        print(
            f"| {row['solver']} | {row['accepted']} | {row['rescues']} | "
            f"{row['median_s']:.3f} | {distance} |"
        )
    failures = sum(not r["outcomes"]["CLARABEL"].accepted for r in results)
    print(f"\nClarabel (direct) failed {failures} of {len(results)} books")
    print("chain:", best_chain(results, set(SOLVERS) & set(results[0]["outcomes"])))


if __name__ == "__main__":
    main()
