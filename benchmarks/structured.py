"""The structured interior-point solver beside Clarabel on the same assembled program.

    python benchmarks/structured.py [--sizes 500 2000 10000] [--runs 3] [--write README.md benchmarks/README.md]

For each size, in a fresh process: the benchmark's book with every family of the
default set on (``run.py``'s "all" case), its program assembled once, then

* **solver**: Clarabel (its setup and solve, at the gate's settings) and the structured
  method (equilibration, symbolic analysis and solve) on that assembly, median of
  ``--runs``; before any time is reported both must reach the same weights, and the
  weights are also compared with Clarabel held to 1e-14;
* **call**: ``rebalance`` with each as the solver, warm (the program cached), its wall
  time and the solver's share of it;
* **cold**: one ``rebalance`` in a fresh process with the structured solver, numba's
  cache present; and the first call after install (the cache removed) reported apart.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
MARK_START = "<!-- structured:start -->"
MARK_END = "<!-- structured:end -->"


def _book(n: int) -> tuple[Any, Any, Any]:
    import run as bench

    u = bench.steady_universe(n)
    return u.book, u.decisions, bench.constraint_set("all")


def _assembly(book: Any, decisions: Any, cs: Any) -> Any:
    """The assembled program of one gate call (captured from Clarabel's solve)."""
    import run as bench

    from riskopt.optimizer import clarabel_program, rebalance

    seen: list[Any] = []
    real = clarabel_program.ClarabelProgram.assemble

    def keep(self: Any, v: Any, **options: Any) -> Any:
        out = real(self, v, **options)
        seen.append(out)
        return out

    clarabel_program.ClarabelProgram.assemble = keep  # type: ignore[method-assign]
    try:
        rebalance(book, decisions, cs, risk_aversion=bench.GAMMA, state="NORMAL", cache=None)
    finally:
        clarabel_program.ClarabelProgram.assemble = real  # type: ignore[method-assign]
    return seen[0]


def _timed(fn: Any, runs: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _solvers(a: Any, runs: int) -> dict[str, Any]:
    """Clarabel and the structured method on one assembly, and how far apart they end."""
    from riskopt.optimizer import ipm
    from riskopt.optimizer.clarabel_program import _clarabel, _cones
    from riskopt.optimizer.structured import StructuredKkt

    zero, nonneg, soc = a.cones

    def structured() -> Any:
        problem = ipm.Problem.of(a.P, a.q, a.A, a.b, ipm.Cones(zero, nonneg, (soc,) if soc else ()))
        return ipm.solve(problem, StructuredKkt(problem))

    structured()  # numba's compiled code loaded from its cache, outside the timing
    t_ours, ours = _timed(structured, runs)
    t_clarabel, theirs = _timed(lambda: _clarabel(a, _cones(a), 500, refine=False), runs)
    tight = _clarabel(a, _cones(a), 500, refine=True, tolerance=1e-14)
    w_ours, w_theirs, w_tight = ours.x[a.w], np.asarray(theirs.x)[a.w], np.asarray(tight.x)[a.w]
    apart = float(np.abs(w_ours - w_theirs).max())
    if apart > 1e-6:
        raise SystemExit(f"the solvers disagree by {apart:.1e}: no time is reported")
    return {
        "structured": t_ours,
        "structured_iterations": ours.iterations,
        "clarabel": t_clarabel,
        "clarabel_iterations": int(theirs.iterations),
        "apart": apart,
        "apart_tight": float(np.abs(w_ours - w_tight).max()),
        "clarabel_apart_tight": float(np.abs(w_theirs - w_tight).max()),
    }


def _calls(book: Any, decisions: Any, cs: Any, runs: int) -> dict[str, Any]:
    """Warm ``rebalance`` wall time and the solver's part of it, per solver."""
    import run as bench

    from riskopt.optimizer import rebalance
    from riskopt.optimizer.program import ProgramCache

    out: dict[str, Any] = {}
    for name, chain in (("structured", ["STRUCTURED", "CLARABEL"]), ("clarabel", ["CLARABEL"])):
        cache = ProgramCache()
        walls, solver = [], []
        for _ in range(runs + 1):
            start = time.perf_counter()
            r = rebalance(
                book,
                decisions,
                cs,
                risk_aversion=bench.GAMMA,
                state="NORMAL",
                cache=cache,
                solvers=chain,
            )
            walls.append(time.perf_counter() - start)
            solver.append(r.run.timings["solver"])
            if r.run.solver_chain[0] != {"solver": chain[0], "outcome": "optimal"}:
                raise SystemExit(f"{name}: {r.run.solver_chain}")
        out[f"{name}_wall"] = statistics.median(walls[1:])
        out[f"{name}_solver"] = statistics.median(solver[1:])
    return out


def case(n: int, runs: int) -> dict[str, Any]:
    book, decisions, cs = _book(n)
    result = {"n": n, **_solvers(_assembly(book, decisions, cs), runs)}
    result.update(_calls(book, decisions, cs, runs))
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def cold(n: int) -> dict[str, Any]:
    """One ``rebalance`` with the structured solver in this (fresh) process."""
    import run as bench

    from riskopt.optimizer import rebalance

    book, decisions, cs = _book(n)
    start = time.perf_counter()
    r = rebalance(
        book,
        decisions,
        cs,
        risk_aversion=bench.GAMMA,
        state="NORMAL",
        cache=None,
        solvers=["STRUCTURED", "CLARABEL"],
    )
    return {"cold": time.perf_counter() - start, "chain": r.run.solver_chain[0]["solver"]}


def _run(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _clear_cache() -> None:
    for path in (ROOT / "optimizer" / "__pycache__").glob("structured_kernels*.nb[ic]"):
        path.unlink()


def table(rows: list[dict[str, Any]], first: float | None) -> str:
    lines = [
        "| N | structured (s) | its | Clarabel (s) | its | Clarabel ÷ structured | "
        "call, structured (s) | call ÷ its solver | call, Clarabel (s) | cold call (s) | "
        "peak RSS (MB) | max \\|Δw\\| | to Clarabel at 1e-14: ours, Clarabel's |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['structured']:.3f} | {r['structured_iterations']} | "
            f"{r['clarabel']:.3f} | {r['clarabel_iterations']} | "
            f"{r['clarabel'] / r['structured']:.2f}× | {r['structured_wall']:.3f} | "
            f"{r['structured_wall'] / r['structured_solver']:.2f}× | {r['clarabel_wall']:.3f} | "
            f"{r['cold']:.3f} | {r['rss_mb']:.0f} | {r['apart']:.1e} | "
            f"{r['apart_tight']:.1e}, {r['clarabel_apart_tight']:.1e} |"
        )
    if first is not None:
        lines.append("")
        lines.append(
            f"The first call after install (numba's cache removed) took {first:.1f} s at "
            f"N = {rows[0]['n']:,}: the compile, once per install."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[500, 2000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", type=Path, nargs="*", default=[])
    parser.add_argument("--case", type=int)
    parser.add_argument("--cold", type=int)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(case(args.case, args.runs)))
        return
    if args.cold:
        print(json.dumps(cold(args.cold)))
        return
    _clear_cache()
    first = _run(["--cold", str(args.sizes[0])])["cold"]
    rows = []
    for n in args.sizes:
        row = _run(["--case", str(n), "--runs", str(args.runs)])
        row.update(_run(["--cold", str(n)]))
        rows.append(row)
        print(json.dumps(row), flush=True)
    text = table(rows, first)
    print(text)
    for path in args.write:
        _write(path, text)


def _write(path: Path, text: str) -> None:
    """``text`` between the markers of ``path`` (appended with them where it has none)."""
    readme = path.read_text()
    block = f"{MARK_START}\n{text}\n{MARK_END}"
    if MARK_START in readme:
        head, rest = readme.split(MARK_START, 1)
        readme = head + block + rest.split(MARK_END, 1)[1]
    else:
        readme += "\n" + block + "\n"
    path.write_text(readme)


if __name__ == "__main__":
    main()
