"""cvxportfolio's side of the benchmark, run in its own environment (benchmarks/.venv-peer).

    python benchmarks/peer_cvxportfolio.py PROBLEM.npz [--periods 20]

Reads the shared problem that ``benchmarks/run.py`` wrote (plain arrays; this script
never imports riskopt) and states it with cvxportfolio 1.5.1's own objects:

* objective: ``ReturnsForecast(2 c h̃) − DiagonalCovariance(c) − γ FactorModelCovariance``,
  which is ``−Σ c (h − h̃)² − γ hᵀΣh`` up to a constant: the gate's tracking objective;
* ``MaxWeights``/``MinWeights`` (per-name cap), ``LeverageLimit`` (gross),
  ``FactorMaxLimit``/``FactorMinLimit`` on sector dummies (sector net caps),
  ``ParticipationRateLimit`` (trade ≤ a fraction of ADV) and
  ``FactorModelCovariance(...) <= σ²`` (the volatility cap);
* Clarabel through cvxpy with ``ignore_dpp=True``.

As in a cvxportfolio backtest, the policy is compiled once and then solved once per
period; each period starts from holdings moved slightly (so no two solves are the same).
Prints one JSON line: the first call (compile and solve), the median per-period time, the
median solver time, peak RSS, and the first period's post-trade weights.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
import warnings

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("problem")
    parser.add_argument("--periods", type=int, default=20)
    parser.add_argument(
        "--budget", type=float, default=600.0, help="stop adding periods after this many seconds"
    )
    args = parser.parse_args()

    import cvxportfolio as cvx

    z = np.load(args.problem, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    tickers = list(meta["tickers"])
    nav = float(meta["nav"])
    gamma = float(meta["gamma"])
    c = pd.Series(z["c"], index=tickers)
    h_tilde = pd.Series(z["h_tilde"], index=tickers)
    factors = [f"f{k}" for k in range(z["loadings"].shape[1])]
    F = pd.DataFrame(z["loadings"].T, index=factors, columns=tickers)
    sigma_f = pd.DataFrame(z["factor_cov"], index=factors, columns=factors)
    d = pd.Series(z["specific_var"], index=tickers)
    sectors = pd.get_dummies(pd.Series(meta["sector"], index=tickers)).astype(float)

    objective = (
        cvx.ReturnsForecast(r_hat=2.0 * c * h_tilde)
        - cvx.DiagonalCovariance(sigma_squares=c)
        - gamma * cvx.FactorModelCovariance(F=F, Sigma_F=sigma_f, d=d)
    )
    constraints = [
        cvx.MaxWeights(meta["max_weight"]),
        cvx.MinWeights(-meta["max_weight"]),
        cvx.LeverageLimit(meta["gross"]),
        cvx.FactorMaxLimit(sectors, pd.Series(meta["sector_net"], index=sectors.columns)),
        cvx.FactorMinLimit(sectors, pd.Series(-meta["sector_net"], index=sectors.columns)),
        cvx.ParticipationRateLimit(
            volume_hat=pd.Series(z["dollar_adv"], index=tickers),
            max_fraction_of_volumes=meta["max_trade_pct_adv"],
        ),
        cvx.FactorModelCovariance(F=F, Sigma_F=sigma_f, d=d) <= meta["max_volatility"] ** 2,
    ]
    policy = cvx.SinglePeriodOptimization(
        objective, constraints, include_cash_return=False, solver="CLARABEL", ignore_dpp=True
    )

    h0 = z["h0"] * nav
    cash = nav - h0.sum()
    universe = pd.Index([*tickers, "USDOLLAR"])
    calendar = pd.bdate_range(end=pd.Timestamp(meta["as_of"]), periods=args.periods)
    rng = np.random.default_rng(0)

    times, solver_times = [], []
    first_w: pd.Series | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        policy.initialize_estimator_recursive(universe=universe, trading_calendar=calendar)
        compile_seconds = time.perf_counter() - t0
        started = time.perf_counter()
        for k, t in enumerate(calendar):
            if k >= 2 and time.perf_counter() - started > args.budget:
                break  # a large problem: the median of the periods solved so far
            moved = h0 if k == 0 else h0 * (1 + 0.02 * rng.standard_normal(len(h0)))
            h = pd.Series([*moved, nav - moved.sum()], index=universe)
            v = float(h.sum())
            t0 = time.perf_counter()
            w_plus = policy.values_in_time_recursive(
                t=t,
                past_returns=None,
                past_volumes=None,
                current_weights=h / v,
                current_portfolio_value=v,
                current_prices=None,
            )
            times.append(time.perf_counter() - t0)
            stats = policy._problem.solver_stats  # the solver's own time
            solver_times.append(float(stats.solve_time or 0.0))
            if k == 0:
                first_w = w_plus.iloc[:-1]
    assert first_w is not None
    print(
        json.dumps(
            {
                "first": compile_seconds + times[0],
                "per_period": statistics.median(times[1:]) if len(times) > 1 else times[0],
                "periods": len(times),
                "solver": statistics.median(solver_times),
                "status": str(policy._problem.status),
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "h": dict(zip(tickers, map(float, first_w), strict=True)),
                "cash": float(cash),
            }
        )
    )


if __name__ == "__main__":
    main()
