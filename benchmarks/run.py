"""riskopt's gate timed beside cvxportfolio, the solver's own time, memory and batches.

    python benchmarks/run.py [--sizes 500 2000 5000 10000] [--write benchmarks/README.md]

``make bench`` installs cvxportfolio 1.5.1 into its own environment
(``benchmarks/.venv-peer``; the package never imports it) and runs this script.

Every case runs in a fresh process (imports done, nothing compiled or cached):

* **shared** — the problem both libraries can state: tracking objective with risk
  aversion γ, per-name cap, gross cap, sector net caps, trade ≤ 10% of ADV and the
  factor-model volatility cap. riskopt with the matching constraint set; cvxportfolio
  with its own objects (``benchmarks/peer_cvxportfolio.py``), compiled once and solved
  once per period as in its backtests. Before any time is reported the two must reach
  the same weights (max |Δh| below 1e-5).
* **all** — riskopt with every family of the default set on (per-name, exposure,
  sector/country/cluster, liquidity caps and gates, the volatility cone, sleeve budgets;
  the book is at its peak, so drawdown scaling is 1).
* **batch** — 1,000 books of 300 names through ``rebalance_many``: serially, on a
  process pool and on a Dask ``LocalCluster``, all with two workers, beside the machine's
  own ceiling for two workers (two independent serial processes, half the books each,
  started together); the four again with
  ``keep="summaries"`` (each book's run record comes back and no table is written),
  checked against the serial run's summary table; and on a cluster already running (its
  start and stop not timed), both ways.

Cold: one call in a fresh process. Warm: the same process re-solving with new decisions
(riskopt) or the next period (cvxportfolio). Medians of several runs. Peak RSS is the
process's high-water mark (``ru_maxrss``), imports included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PEER_PYTHON = ROOT / "benchmarks" / ".venv-peer" / "bin" / "python"
PEER_SCRIPT = ROOT / "benchmarks" / "peer_cvxportfolio.py"

GAMMA = 1.0
SEED = 3
AGREE = 1e-5
BATCH_ENGINES = [
    "serial",
    "side-by-side",
    "processes",
    "dask",
    "serial+summaries",
    "side-by-side+summaries",
    "processes+summaries",
    "dask+summaries",
    "dask-running",
    "dask-running+summaries",
]


def factors_for(n: int) -> int:
    return 50 if n >= 10_000 else 20


def steady_universe(n: int, seed: int = SEED, k: int | None = None):  # type: ignore[no-untyped-def]
    """A synthetic book at its NAV peak whose holdings already meet the shared limits,
    with decisions that push past them (so the gate has work to do)."""
    import dataclasses

    from riskopt.data.book import Book
    from riskopt.data.synthetic import make_universe
    from riskopt.optimizer.result import exposures

    u = make_universe(
        n, k or factors_for(n), seed, coverage=0.95, with_returns=False, decision_share=0.5
    )
    book = u.book
    qty = book.positions.groupby("ticker")["quantity"].sum()
    market = book.market
    h0 = (qty * market["price"].reindex(qty.index) / book.nav).reindex(market.index).fillna(0)
    sector_net = h0.groupby(market["sector"]).sum().abs().max()
    model = book.risk_model
    assert model is not None
    vol = exposures(
        h0.to_numpy(),
        model.loadings.reindex(market.index).to_numpy(),
        model.factor_cov.to_numpy(),
        model.specific_var.reindex(market.index).to_numpy(),
    )["volatility"]
    scale = min(1.0, 1.2 / h0.abs().sum(), 0.12 / sector_net, 0.06 / vol, 0.04 / h0.abs().max())
    positions = book.positions.assign(quantity=np.round(book.positions["quantity"] * scale))
    book = Book.create(
        as_of=book.as_of,
        nav=book.nav,
        positions=positions,
        market=market.reset_index(),
        risk_model=model,
    )
    return dataclasses.replace(u, book=book)


SHARED = {
    "name": "shared",
    "position": {"max_weight": 0.05},
    "exposure": {"gross": {"max": 1.6}, "net": {"min": None, "max": None}},
    "trading": {"max_trade_pct_adv": 0.10},
    "groups": {"sector": {"max_net": 0.15}},
    "risk": {"max_volatility": 0.08},
}


def constraint_set(which: str):  # type: ignore[no-untyped-def]
    from riskopt.constraints.config import ConstraintSet

    if which == "all":
        return ConstraintSet.load("default")
    return ConstraintSet.from_dict(SHARED)


def _perturbed(decisions, k: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(k)
    out = decisions.copy()
    out["target_weight"] = out["target_weight"] * (1 + 0.2 * rng.standard_normal(len(out)))
    return out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def case_riskopt(n: int, which: str, warm_runs: int) -> dict[str, Any]:
    from riskopt.optimizer import rebalance
    from riskopt.optimizer.program import ProgramCache

    u = steady_universe(n)
    cs = constraint_set(which)
    cache = ProgramCache()
    t0 = time.perf_counter()
    first = rebalance(u.book, u.decisions, cs, risk_aversion=GAMMA, cache=cache, state="NORMAL")
    cold = time.perf_counter() - t0
    warm, warm_solver, warm_answers = [], [], []
    for k in range(warm_runs):
        dec = _perturbed(u.decisions, k)
        t0 = time.perf_counter()
        r = rebalance(u.book, dec, cs, risk_aversion=GAMMA, cache=cache, state="NORMAL")
        warm.append(time.perf_counter() - t0)
        warm_solver.append(r.run.timings["solver"])
        warm_answers.append(
            (
                r.targets["solved_weight"].to_numpy(dtype=float),
                r.targets["target_position"].tolist(),
            )
        )
    rss = _rss_mb()  # the peak of the calls above, before a second cache joins them
    # The same re-solves on a cache that keeps Clarabel's solver (its first call sets it
    # up, untimed), and how far their weights end from the re-solves above.
    kept_cache = ProgramCache(reuse_solver=True)
    rebalance(u.book, u.decisions, cs, risk_aversion=GAMMA, cache=kept_cache, state="NORMAL")
    kept, kept_solver, kept_apart = [], [], 0.0
    for k in range(warm_runs if which == "all" else 0):
        dec = _perturbed(u.decisions, k)
        t0 = time.perf_counter()
        r_kept = rebalance(u.book, dec, cs, risk_aversion=GAMMA, cache=kept_cache, state="NORMAL")
        kept.append(time.perf_counter() - t0)
        kept_solver.append(r_kept.run.timings["solver"])
        weights, positions = warm_answers[k]
        kept_apart = max(
            kept_apart,
            float(np.abs(r_kept.targets["solved_weight"].to_numpy(dtype=float) - weights).max()),
        )
        if r_kept.targets["target_position"].tolist() != positions:
            raise SystemExit(f"N={n}: a re-solve on the kept solver rounds to other lots")
    targets = first.targets.dropna(subset=["solved_weight"]).set_index("ticker")
    return {
        "kept": statistics.median(kept) if kept else None,
        "kept_solver": statistics.median(kept_solver) if kept_solver else None,
        "kept_apart": kept_apart if kept else None,
        "cold": cold,
        "cold_solver": first.run.timings["solver"],
        "timings": first.run.timings,
        "warm": statistics.median(warm) if warm else None,
        "warm_solver": statistics.median(warm_solver) if warm_solver else None,
        "status": first.run.status,
        "names": len(targets),
        "rss_mb": rss,
        "h": {str(t): float(v) for t, v in targets["solved_weight"].items()},
    }


def case_qp(n: int) -> dict[str, Any]:
    """The shared problem without the volatility cone (a QP): Clarabel on the direct
    assembly against OSQP through cvxpy, the QP solver a per-class choice would pick."""
    from riskopt.optimizer import rebalance

    u = steady_universe(n)
    cs = constraint_set("shared").replace(**{"risk.max_volatility": None})
    out: dict[str, Any] = {}
    solved = {}
    for solver in ("CLARABEL", "OSQP"):
        t0 = time.perf_counter()
        r = rebalance(
            u.book, u.decisions, cs, risk_aversion=GAMMA, state="NORMAL", solvers=[solver]
        )
        out[solver] = {
            "wall": time.perf_counter() - t0,
            "solver": r.run.timings["solver"],
            "outcome": r.run.solver_chain[-1]["outcome"],
        }
        solved[solver] = r.targets.set_index("ticker")["solved_weight"].sort_index()
    out["agree"] = float((solved["CLARABEL"] - solved["OSQP"]).abs().max())
    return out


def export_shared(n: int, path: Path) -> None:
    """The shared problem as plain arrays for the peer (which never imports riskopt)."""
    from riskopt.constraints import FAMILIES
    from riskopt.optimizer.inputs import prepare
    from riskopt.optimizer.rebalance import _tracking_weights

    u = steady_universe(n)
    cs = constraint_set("shared")
    data = prepare(u.book, u.decisions, cs).data
    assert data.loadings is not None and data.factor_cov is not None
    assert data.specific_var is not None
    limits = [limit for family in FAMILIES for limit in family.limits(cs, data)]
    assert {limit.name for limit in limits} == {
        "position.max_weight",
        "exposure.gross.max",
        "groups.sector.net",
        "groups.sector.net_short",
        "risk.max_volatility",
    }, sorted(limit.name for limit in limits)
    c = _tracking_weights(data, cs)
    # Σ_p c_p (w_p − w̃_p)² over a ticker's sleeves, minimized for its total h, is
    # (h − h̃)² / Σ_p 1/c_p: the per-ticker objective cvxportfolio states.
    c_ticker = 1.0 / np.asarray(data.M @ (1.0 / c))
    meta = {
        "tickers": [str(t) for t in data.tickers],
        "sector": [str(s) for s in data.sector],
        "nav": data.nav,
        "gamma": GAMMA,
        "as_of": str(u.book.as_of),
        "max_weight": SHARED["position"]["max_weight"],  # type: ignore[index]
        "gross": SHARED["exposure"]["gross"]["max"],  # type: ignore[index]
        "sector_net": SHARED["groups"]["sector"]["max_net"],  # type: ignore[index]
        "max_trade_pct_adv": SHARED["trading"]["max_trade_pct_adv"],  # type: ignore[index]
        "max_volatility": SHARED["risk"]["max_volatility"],  # type: ignore[index]
    }
    np.savez(
        path,
        meta=json.dumps(meta),
        h0=data.h0,
        h_tilde=data.h_tilde,
        c=c_ticker,
        loadings=data.loadings,
        factor_cov=data.factor_cov,
        specific_var=data.specific_var,
        dollar_adv=data.adv_shares * data.price,
    )


def case_batch(
    books: int,
    names: int,
    engine: str,
    workers: int,
    part: int = 0,
    parts: int = 1,
    go: Path | None = None,
) -> dict[str, Any]:
    """One engine over the batch's books, or over every ``parts``-th book from ``part``
    (one of the side-by-side processes: it says it is ready, ``go`` with ``.ready``
    appended, then waits for ``go`` to exist before its clock starts)."""
    from riskopt.optimizer.batch import Job, local_cluster, rebalance_many

    jobs = []
    for i in range(part, books, parts):
        u = steady_universe(names, seed=1000 + i, k=10)
        jobs.append(Job(u.book, u.decisions, state="NORMAL", run_id=f"acct{i:05d}"))
    base, _, keep = engine.partition("+")
    if go is not None:
        rebalance_many(jobs[:2], "serial", progress=False)  # the same warm-up on both sides
        Path(f"{go}.ready{part}").touch()
        while not go.exists():
            time.sleep(0.001)
    with contextlib.ExitStack() as stack:
        executor: Any = {"serial": "serial", "processes": None, "dask": "dask"}.get(base)
        if base == "dask-running":
            # A cluster already up (set up as rebalance_many's own), as a service would
            # keep one: its start and stop are not timed, and a first small batch has
            # imported the package on every worker.
            from distributed import Client

            executor = stack.enter_context(Client(stack.enter_context(local_cluster(workers))))
            rebalance_many(jobs[: 2 * workers], executor, progress=False)
        t0 = time.perf_counter()
        result = rebalance_many(
            jobs, executor, progress=False, workers=workers, keep=keep or "results"
        )
        wall = time.perf_counter() - t0
    digest = {
        r.run.run_id: [round(float(x), 12) for x in r.targets["target_position"].to_numpy()]
        for r in result
        if not keep
    }
    summary = result.summary().drop(columns=["seconds", "error"])
    summary_digest = summary.round(12).astype(str).to_numpy().tolist()
    return {
        "seconds": wall,
        "batch_seconds": result.seconds,
        "books": len(jobs),
        "failed": len(result.failed),
        "statuses": {s: int(k) for s, k in result.summary()["status"].value_counts().items()},
        "digest": digest,
        "summary_digest": summary_digest,
        "rss_mb": _rss_mb(),
    }


def _batch_command(args: argparse.Namespace, engine: str) -> list[str]:
    """The command line of one batch case in a fresh process."""
    return [
        sys.executable,
        __file__,
        "--case",
        "batch",
        "--engine",
        engine,
        "--batch-books",
        str(args.batch_books),
        "--batch-names",
        str(args.batch_names),
        "--workers",
        str(args.workers),
    ]


def _side_by_side(args: argparse.Namespace, keep: str) -> dict[str, Any]:
    """The machine's own ceiling for ``args.workers`` workers: as many independent
    processes, each running every ``workers``-th book serially, started together (each
    builds its books and warms up first). No batch engine can beat it on these cores;
    what an engine loses against it is its own overhead, what this loses against one
    process alone is the machine's (cores that slow each other down)."""
    with tempfile.TemporaryDirectory() as tmp:
        go = Path(tmp) / "go"
        children = [
            subprocess.Popen(
                [
                    *_batch_command(args, "serial" + keep),
                    *("--part", str(k), "--parts", str(args.workers), "--go", str(go)),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in range(args.workers)
        ]
        deadline = time.monotonic() + 3600
        while not all(Path(f"{go}.ready{k}").exists() for k in range(args.workers)):
            if any(c.poll() is not None for c in children) or time.monotonic() > deadline:
                for c in children:
                    c.kill()
                errors = "\n".join((c.communicate()[1] or "")[-3000:] for c in children)
                raise SystemExit(f"a side-by-side process stopped before its start:\n{errors}")
            time.sleep(0.01)
        go.touch()
        outs = [c.communicate(timeout=3600) for c in children]
    for child, (_, err) in zip(children, outs, strict=True):
        if child.returncode:
            raise SystemExit(f"a side-by-side process failed:\n{err[-3000:]}")
    halves = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    digest: dict[str, Any] = {}
    for half in halves:
        digest.update(half["digest"])
    rows = sorted((row for half in halves for row in half["summary_digest"]), key=lambda r: r[0])
    return {
        "seconds": max(h["seconds"] for h in halves),
        "each": [h["seconds"] for h in halves],
        "books": sum(h["books"] for h in halves),
        "failed": sum(h["failed"] for h in halves),
        "digest": dict(sorted(digest.items())),
        "summary_digest": rows,
        "rss_mb": max(h["rss_mb"] for h in halves),
    }


def _subprocess(cmd: list[str], timeout: float) -> dict[str, Any] | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as err:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err.stderr[-3000:]}") from err
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _ours(which: str, n: int, warm_runs: int, timeout: float) -> dict[str, Any] | None:
    cmd = [sys.executable, __file__, "--case", which, "--n", str(n), "--warm-runs", str(warm_runs)]
    return _subprocess(cmd, timeout)


def _peer(n: int, periods: int, timeout: float) -> dict[str, Any] | None:
    if not PEER_PYTHON.exists():
        raise SystemExit(f"{PEER_PYTHON} missing: run `make bench`, which installs cvxportfolio")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"shared_{n}.npz"
        export_shared(n, path)
        return _subprocess(
            [
                str(PEER_PYTHON),
                str(PEER_SCRIPT),
                str(path),
                "--periods",
                str(periods),
                "--budget",
                str(timeout / 2),
            ],
            timeout,
        )


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _f(x: object, digits: int = 3) -> str:
    return "—" if x is None else f"{float(x):.{digits}f}"  # type: ignore[arg-type]


def _ratio(a: object, b: object) -> str:
    if a is None or b is None or float(b) == 0:  # type: ignore[arg-type]
        return "—"
    return f"{float(a) / float(b):.2f}×"  # type: ignore[arg-type]


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[500, 2000, 5000, 10000])
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--warm-runs", type=int, default=5)
    parser.add_argument("--periods", type=int, default=20)
    parser.add_argument("--peer-timeout", type=float, default=900.0)
    parser.add_argument("--batch-books", type=int, default=1000)
    parser.add_argument("--batch-names", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--case", choices=["shared", "all", "batch", "qp"])
    parser.add_argument("--engine", choices=BATCH_ENGINES)
    parser.add_argument("--n", type=int)
    parser.add_argument("--part", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--parts", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--go", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case == "qp":
        print(json.dumps(case_qp(args.n)))
        return
    if args.case == "batch":
        result = case_batch(
            args.batch_books,
            args.batch_names,
            args.engine,
            args.workers,
            part=args.part,
            parts=args.parts,
            go=args.go,
        )
        print(json.dumps(result))
        return
    if args.case:
        print(json.dumps(case_riskopt(args.n, args.case, args.warm_runs), default=str))
        return

    rows = []
    for n in args.sizes:
        shared = [
            r
            for r in (
                _ours("shared", n, args.warm_runs if i == 0 else 0, 900)
                for i in range(args.cold_runs)
            )
            if r is not None
        ]
        full = [
            r
            for r in (
                _ours("all", n, args.warm_runs if i == 0 else 0, 900) for i in range(args.cold_runs)
            )
            if r is not None
        ]
        qp = (
            _subprocess([sys.executable, __file__, "--case", "qp", "--n", str(n)], 900)
            if n <= 2000
            else None
        )
        peer = _peer(n, args.periods, args.peer_timeout)
        agree = None
        if peer is not None:
            ours_h, theirs = shared[0]["h"], peer["h"]
            agree = max(abs(float(ours_h[t]) - float(theirs[t])) for t in theirs)
            if agree > AGREE:
                raise SystemExit(f"N={n}: riskopt and cvxportfolio disagree by {agree:.2e}")
        row = {
            "n": n,
            "k": factors_for(n),
            "names": shared[0]["names"],
            "shared_cold": _median(shared, "cold"),
            "shared_solver": _median(shared, "cold_solver"),
            "shared_warm": shared[0]["warm"],
            "shared_warm_solver": shared[0]["warm_solver"],
            "shared_rss": max(float(r["rss_mb"]) for r in shared),
            "all_cold": _median(full, "cold"),
            "all_solver": _median(full, "cold_solver"),
            "all_warm": full[0]["warm"],
            "all_warm_solver": full[0]["warm_solver"],
            "all_kept": full[0]["kept"],
            "all_kept_solver": full[0]["kept_solver"],
            "all_kept_apart": full[0]["kept_apart"],
            "all_rss": max(float(r["rss_mb"]) for r in full),
            "all_status": full[0]["status"],
            "all_timings": full[0]["timings"],
            "peer_first": None if peer is None else peer["first"],
            "peer_period": None if peer is None else peer["per_period"],
            "peer_solver": None if peer is None else peer["solver"],
            "peer_rss": None if peer is None else peer["rss_mb"],
            "peer_periods": None if peer is None else peer["periods"],
            "agree": agree,
            "qp": qp,
        }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "all_timings"}), flush=True)

    batch: dict[str, dict[str, Any] | None] = {}
    if args.batch_books:
        for engine in BATCH_ENGINES:
            if engine.startswith("side-by-side"):
                batch[engine] = _side_by_side(args, engine[len("side-by-side") :])
            else:
                batch[engine] = _subprocess(_batch_command(args, engine), 3600)
            print(
                engine,
                json.dumps(
                    {k: v for k, v in (batch[engine] or {}).items() if not k.endswith("digest")}
                ),
                flush=True,
            )
        serial = batch["serial"]
        for engine in BATCH_ENGINES[1:]:
            other = batch[engine]
            if not serial or not other:
                continue
            if other["summary_digest"] != serial["summary_digest"] or (
                other["digest"] and other["digest"] != serial["digest"]
            ):
                raise SystemExit(f"{engine} batch differs from the serial batch")

    text = report(args, rows, batch)
    print(text)
    if args.write:
        old = args.write.read_text() if args.write.exists() else ""
        args.write.write_text(with_hand_written(text, old))


HAND_WRITTEN = "<!-- Written by hand from here on: `--write` keeps it. -->"


def with_hand_written(text: str, old: str) -> str:
    """The new tables followed by the old file's hand-written part (from the marker on),
    so a run never erases measurements and notes written by hand."""
    at = old.find(HAND_WRITTEN)
    return text if at < 0 else text.rstrip("\n") + "\n\n" + old[at:]


def report(args: argparse.Namespace, rows: list[dict[str, Any]], batch: dict[str, Any]) -> str:
    import clarabel
    import cvxpy

    peer_version = "not installed"
    if PEER_PYTHON.exists():
        peer_version = subprocess.run(
            [str(PEER_PYTHON), "-c", "import cvxportfolio; print(cvxportfolio.__version__)"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    lines = [
        "# Benchmarks",
        "",
        "`make bench` (`python benchmarks/run.py --write benchmarks/README.md`): every case in a",
        "fresh process, side by side in the same run. Times in seconds; medians of "
        f"{args.cold_runs} cold runs,",
        f"{args.warm_runs} warm re-solves, and {args.periods} cvxportfolio periods. How each case is built: the",
        "docstring of `benchmarks/run.py`.",
        "",
        f"Machine: {platform.machine()}, {_cpu()}, {os.cpu_count()} cores, Python {platform.python_version()};",
        f"cvxpy {cvxpy.__version__}, Clarabel {clarabel.__version__}, NumPy {np.__version__}; cvxportfolio {peer_version}",
        "(in its own environment, same cvxpy and Clarabel).",
        "",
        "## The shared problem, riskopt and cvxportfolio",
        "",
        "Tracking objective with γ = 1, per-name cap 5%, gross 160%, sector net ±15%, trades ≤ 10%",
        "of ADV, volatility ≤ 8%; K = 20 factors (50 at N = 10,000). riskopt cold is one fresh",
        "call; cvxportfolio's first call compiles and solves, then each period re-solves its",
        "compiled problem (a large case stops adding periods after half its time limit; the",
        "periods solved are in the last column). `max |Δh|`: the largest weight difference",
        "between the two answers.",
        "",
        "| N | riskopt cold | its solver | riskopt warm | cvxportfolio first call | cvxportfolio per period | its solver | cvxportfolio per period / riskopt cold | max abs Δh | periods |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        agree = "—" if r["agree"] is None else f"{float(r['agree']):.1e}"
        lines.append(
            f"| {r['n']:,} | {_f(r['shared_cold'])} | {_f(r['shared_solver'])} | {_f(r['shared_warm'])} | "
            f"{_f(r['peer_first'])} | {_f(r['peer_period'])} | {_f(r['peer_solver'])} | "
            f"{_ratio(r['peer_period'], r['shared_cold'])} | {agree} | {r['peer_periods'] or '—'} |"
        )
    qp_rows = [r for r in rows if r.get("qp")]
    if qp_rows:
        lines += [
            "",
            "Without the volatility cap the shared problem is a QP. A per-class solver choice",
            "would hand it to a QP solver; OSQP (through riskopt's cvxpy path, to the same 1e-9",
            "tolerance) against Clarabel on the direct assembly, cold:",
            "",
            "| N | Clarabel wall | its solver | OSQP wall | its solver | OSQP outcome | max abs Δh |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in qp_rows:
            q = r["qp"]
            lines.append(
                f"| {r['n']:,} | {_f(q['CLARABEL']['wall'])} | {_f(q['CLARABEL']['solver'])} | "
                f"{_f(q['OSQP']['wall'])} | {_f(q['OSQP']['solver'])} | {q['OSQP']['outcome']} | "
                f"{q['agree']:.1e} |"
            )
        wins = [r["n"] for r in qp_rows if r["qp"]["OSQP"]["wall"] < r["qp"]["CLARABEL"]["wall"]]
        lines += [
            "",
            "OSQP wins at N = "
            + ", ".join(f"{n:,}" for n in wins)
            + ": worth a per-class choice there."
            if wins
            else "OSQP wins nowhere here, so Clarabel stays the solver for every problem class"
            " (a looser OSQP would not meet the gate's tolerances).",
        ]
    lines += [
        "",
        "## Every family on",
        "",
        "The default set: per-name, gross/net/long/short, sector/country/cluster net and gross,",
        "liquidity caps (%ADV, per-name volatility budget) and gates, the volatility cone, sleeve",
        "budgets, drawdown scaling. `wall / solver`: the whole call (inputs, debate-free γ, program",
        "assembly, solve, lots, diff, explanations) over the solver's own time (Clarabel's setup",
        "and iterations). The last column compares with cvxportfolio's per-period time on the",
        "smaller shared problem.",
        "",
        "| N | K | cold | solver | wall / solver | warm | warm solver | warm wall / solver | peak RSS | cvxportfolio per period / cold |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['k']} | {_f(r['all_cold'])} | {_f(r['all_solver'])} | "
            f"{_ratio(r['all_cold'], r['all_solver'])} | {_f(r['all_warm'])} | {_f(r['all_warm_solver'])} | "
            f"{_ratio(r['all_warm'], r['all_warm_solver'])} | {r['all_rss']:.0f} MB | "
            f"{_ratio(r['peer_period'], r['all_cold'])} |"
        )
    lines += [
        "",
        "Warm re-solves on a cache that keeps Clarabel's solver",
        "(`ProgramCache(reuse_solver=True)`: the solver's data overwritten, its setup skipped),",
        "the same perturbed decisions; `apart` is the largest difference of a solved weight",
        "from the re-solve above (the lots are checked to be the same):",
        "",
        "| N | warm, solver kept | its solver | vs warm | apart |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("all_kept") is None:
            continue
        lines.append(
            f"| {r['n']:,} | {_f(r['all_kept'])} | {_f(r['all_kept_solver'])} | "
            f"{_ratio(r['all_warm'], r['all_kept'])} | {r['all_kept_apart']:.1e} |"
        )
    lines += [
        "",
        "Where a cold call's time goes (first cold run; seconds):",
        "",
        "| N | inputs | solve (assembly + solver) | solver | lots, diff, explanations | total |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["all_timings"]
        lines.append(
            f"| {r['n']:,} | {_f(t['prepare'])} | {_f(t['solve'])} | {_f(t['solver'])} | {_f(t['diff'])} | {_f(t['total'])} |"
        )
    lines += [
        "",
        "Peak resident memory of each process (imports included): shared problem "
        + ", ".join(f"{r['shared_rss']:.0f} MB at N = {r['n']:,}" for r in rows)
        + "; cvxportfolio "
        + ", ".join(f"{r['peer_rss']:.0f} MB" if r["peer_rss"] is not None else "—" for r in rows)
        + ".",
    ]
    if batch:
        serial = batch.get("serial")
        lines += [
            "",
            f"## {args.batch_books:,} books of {args.batch_names} names (`rebalance_many`, {args.workers} workers)",
            "",
            "Every family on, K = 10; each engine in a fresh process; results identical to the serial",
            'run\'s (every target position of every book compared; with `keep="summaries"`, every',
            "book's status, label counts and exposures).",
            "",
            'A `keep="summaries"` run without a store writes no table (`rebalance_summary`), so',
            "its books cost less than a full run's: each engine is compared with the serial run",
            "that keeps the same.",
            "",
            "| engine | seconds | books / s | vs serial | vs side by side | failed |",
            "|---|---|---|---|---|---|",
        ]
        for engine, label in (
            ("serial", "serial"),
            ("side-by-side", f"{args.workers} serial processes side by side"),
            ("processes", "process pool"),
            ("dask", "Dask LocalCluster"),
            ("serial+summaries", 'serial, `keep="summaries"`'),
            (
                "side-by-side+summaries",
                f'{args.workers} serial processes side by side, `keep="summaries"`',
            ),
            ("processes+summaries", 'process pool, `keep="summaries"`'),
            ("dask+summaries", 'Dask LocalCluster, `keep="summaries"`'),
            ("dask-running", "Dask LocalCluster already running"),
            ("dask-running+summaries", 'Dask LocalCluster already running, `keep="summaries"`'),
        ):
            b = batch.get(engine)
            if b is None:
                lines.append(f"| {label} | timed out | — | — | — | — |")
                continue
            summaries = engine.endswith("+summaries")
            like = batch.get("serial+summaries") if summaries else serial
            ceiling = batch.get("side-by-side+summaries" if summaries else "side-by-side")
            speed = _ratio(like["seconds"], b["seconds"]) if like else "—"
            of_ceiling = (
                "—"
                if ceiling is None or engine.startswith(("serial", "side-by-side"))
                else _ratio(ceiling["seconds"], b["seconds"])
            )
            lines.append(
                f"| {label} | {b['seconds']:.1f} | {b['books'] / b['seconds']:.1f} | {speed} | "
                f"{of_ceiling} | {b['failed']} |"
            )
        lines += [
            "",
            f"{args.workers} serial processes side by side: independent processes, each running",
            f"one book in {args.workers} in a plain loop, started together once each has built",
            "its books (the slower one's time is shown). No engine can do better on these cores:",
            "`vs side by side` is an engine's throughput as a share of that ceiling, which",
            "separates what the engine costs from what the machine gives two processes at once.",
            "The first two Dask times include starting the cluster (two worker processes",
            "importing the package) and stopping it, about 2.5 s; the last two are the throughput",
            "of a cluster already up (started, and warmed by a first batch of four books, before",
            "the clock starts).",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
