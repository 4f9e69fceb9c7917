"""One test per label where the right answer is known by construction, and attribution."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from riskopt.constraints.config import ConstraintSet
from riskopt.optimizer import rebalance
from riskopt.optimizer.diff import (
    Attribution,
    Cause,
    attribution_details,
    attribution_json,
    percent_texts,
    rounded,
)
from riskopt.optimizer.result import string_column, string_take, text_array
from tests.helpers import decisions, hand_book

PRICES = {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0, "DDD": 10.0}


def _pct(x: float) -> str:
    """One weight's text as :func:`percent_texts` writes it, written alone: the reference."""
    text = f"{100.0 * x:.2f}%"
    return "0.00%" if text == "-0.00%" else text


def policy(**changes: object) -> ConstraintSet:
    base = ConstraintSet.from_dict(
        {
            "name": "test",
            "position": {"max_weight": 0.05},
            "exposure": {"gross": {"max": 1.0}, "net": {"min": None, "max": None}},
            "trading": {"max_trade_pct_adv": 1.0},
        }
    )
    return base.replace(**changes) if changes else base


def action(result, decision_id: str) -> dict:  # type: ignore[no-untyped-def]
    row = result.actions.set_index("decision_id").loc[decision_id]
    return {**row.to_dict(), "details": json.loads(row["details_json"])}


def test_ok_when_the_proposal_satisfies_every_limit() -> None:
    book = hand_book(PRICES, {("s1", "AAA"): 0.02})
    result = rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.03), ("D2", "s1", "BBB", -0.01)]),
        policy(),
        risk_aversion=0.0,
    )
    assert result.status == "OPTIMAL"
    assert set(result.actions["action_type"]) == {"OK"}
    targets = result.targets.set_index("ticker")
    assert targets.loc["AAA", "target_weight"] == pytest.approx(0.03, abs=1e-9)
    assert targets.loc["BBB", "target_weight"] == pytest.approx(-0.01, abs=1e-9)


def test_capped_by_the_names_own_cap_with_attribution() -> None:
    book = hand_book(PRICES, {("s1", "AAA"): 0.02})
    result = rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.08), ("D2", "s1", "BBB", 0.01)]),
        policy(),
        risk_aversion=0.0,
    )
    a = action(result, "D1")
    assert a["action_type"] == "CAPPED"
    assert a["final_weight"] == pytest.approx(0.05, abs=1e-6)
    assert "per-name cap" in a["reason"] and "proposed 8.00% → final 5.00%" in a["reason"]
    top = a["details"]["attribution"][0]
    assert top["constraint"] == "position.max_weight"
    assert top["share"] == pytest.approx(1.0, abs=1e-4)
    assert action(result, "D2")["action_type"] == "OK"


def test_scaled_down_by_gross_cap() -> None:
    book = hand_book(PRICES)
    cs = policy(**{"exposure.gross.max": 0.06})
    result = rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.04), ("D2", "s1", "BBB", -0.04)]),
        cs,
        risk_aversion=0.0,
    )
    assert result.run.exposures_after["gross"] == pytest.approx(0.06, abs=1e-6)
    for d in ("D1", "D2"):
        a = action(result, d)
        assert a["action_type"] == "SCALED_DOWN"
        assert a["details"]["attribution"][0]["constraint"] == "exposure.gross.max"
        assert abs(a["final_weight"]) == pytest.approx(0.03, abs=1e-6)


def test_scaled_down_by_risk_aversion() -> None:
    book = hand_book(PRICES)
    result = rebalance(book, decisions([("D1", "s1", "AAA", 0.04)]), policy(), risk_aversion=2.0)
    a = action(result, "D1")
    assert a["action_type"] == "SCALED_DOWN"
    assert 0 < a["final_weight"] < 0.04
    assert a["details"]["attribution"][0]["constraint"] == "risk_aversion"
    # The reason names the risk aversion the run used.
    assert a["reason"].startswith(
        "SCALED_DOWN by risk aversion (γ = 2): held 0.00% → proposed 4.00% → final "
    )
    again = rebalance(book, decisions([("D1", "s1", "AAA", 0.04)]), policy(), risk_aversion=0.35)
    assert action(again, "D1")["reason"].startswith("SCALED_DOWN by risk aversion (γ = 0.35): ")


def test_rejected_when_no_trade_toward_the_proposal_is_possible() -> None:
    # AAA already sits at its cap: a decision to add is rejected, and says why.
    # DDD has no liquidity at all: the trade limit allows no trade.
    book = hand_book(PRICES, {("s1", "AAA"): 0.05, ("s1", "DDD"): 0.01}, adv_shares={"DDD": 0.0})
    result = rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.07), ("D2", "s1", "DDD", 0.03)]),
        policy(),
        risk_aversion=0.0,
    )
    a1, a2 = action(result, "D1"), action(result, "D2")
    assert a1["action_type"] == "REJECTED" and "per-name cap" in a1["reason"]
    assert a2["action_type"] == "REJECTED" and "trade limit" in a2["reason"]
    targets = result.targets.set_index("ticker")
    assert targets.loc["DDD", "delta_position"] == 0


def test_capped_by_the_trade_limit() -> None:
    # 1% of ADV of BBB is 2,000 shares = $100k = 1% of NAV.
    book = hand_book(PRICES, adv_shares={"BBB": 200_000})
    cs = policy(**{"trading.max_trade_pct_adv": 0.01})
    result = rebalance(book, decisions([("D1", "s1", "BBB", 0.04)]), cs, risk_aversion=0.0)
    a = action(result, "D1")
    assert a["action_type"] == "CAPPED"
    assert a["final_weight"] == pytest.approx(0.01, abs=1e-9)
    assert a["details"]["attribution"][0]["constraint"] == "trading.max_trade_pct_adv"
    assert "max trade 1.00% of NAV" in a["reason"]


@pytest.mark.parametrize(
    ("state", "bound"), [("NORMAL", 1e-5), ("ELEVATED", 5e-5), ("EMERGENCY", 5e-5)]
)
def test_attribution_adds_up_to_the_deviation(sample, state: str, bound: float) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    for gamma in (0.0, 1.0, 5.0):
        result = rebalance(book, dec, "default", risk_aversion=gamma, state=state)
        attribution = result.attribution
        targets = result.targets.set_index("ticker").loc[attribution.index]
        deviation = targets["solved_weight"] - targets["proposed_weight"]
        # The columns add up exactly to the solver's deviation from the proposal.
        assert np.allclose(attribution.sum(axis=1), deviation, atol=1e-12, rtol=0)
        # What no limit explains is solver tolerance: under 0.1 bp of NAV in NORMAL; the
        # calmer-state envelope of stricter states costs the solver some accuracy.
        assert attribution["numerical"].abs().max() < bound


def test_attribution_shares_are_exact_for_two_binding_limits() -> None:
    # AAA: proposal 8% with a 5% cap and a gross cap that binds too.
    book = hand_book(PRICES)
    cs = policy(**{"exposure.gross.max": 0.07})
    result = rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.08), ("D2", "s1", "BBB", 0.04)]),
        cs,
        risk_aversion=0.0,
    )
    row = result.attribution.loc["AAA"]
    final = result.targets.set_index("ticker").loc["AAA", "target_weight"]
    assert row.sum() == pytest.approx(final - 0.08, abs=1e-7)
    assert row["position.max_weight"] < 0 and row["exposure.gross.max"] < 0


def test_trading_costs_stop_a_small_trade_short_and_are_attributed() -> None:
    # κ = half-spread (2.5 bp) + 5 bp commission: with c = 1 the gate stops κ/2c short.
    book = hand_book(PRICES, {("s1", "AAA"): 0.01})
    cs = policy(**{"objective.costs": True, "objective.commission_bps": 5.0})
    result = rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.03), ("D2", "s1", "BBB", 0.00002)]),
        cs,
        risk_aversion=0.0,
    )
    kappa = (2.5 + 5.0) * 1e-4
    row = result.attribution.loc["AAA"]
    assert row.sum() == pytest.approx(-kappa / 2, abs=1e-7)
    assert row["costs"] == pytest.approx(-kappa / 2, abs=1e-7)
    # A trade smaller than the cost band is not worth making: BBB stays at zero.
    assert result.targets.set_index("ticker").loc["BBB", "target_position"] == 0


def test_attribution_json_is_the_json_of_attribution_details() -> None:
    """The per-ticker JSON built from pre-encoded pieces equals ``json.dumps`` of the
    details, byte for byte: quotes and non-ASCII text, groups that are missing, limits that
    are not finite, causes without a tier, shares below the cut, a name that did not move."""
    rng = np.random.default_rng(5)
    causes = (
        Cause("position.max_weight", 'cap "per name"', "name", 2),
        Cause("risk.max_volatility", "volatility cap (drawdown-scaled ×0.85)", "portfolio", 1),
        Cause("groups.sector.net", "sector net", "group", 3),
        Cause("risk_aversion", "risk aversion", "portfolio"),
    )
    n = 40
    contributions = rng.standard_normal((n, len(causes))) * rng.choice([1e-4, 1.0, 3e3], n)[:, None]
    contributions[3] = 0.0
    contributions[5, 1] = -0.0
    sector = np.array([None if k % 3 == 0 else f"S{k % 4}" for k in range(n)], dtype=object)
    cap = np.where(np.arange(n) % 5 == 0, np.inf, 0.05)
    cap[7] = np.nan
    attribution = Attribution(
        causes,
        contributions,
        contributions.sum(axis=1),
        {"position.max_weight": cap},
        {"groups.sector.net": sector},
    )
    encoded = attribution_json(attribution, np.arange(n))
    for i in range(n):
        assert encoded[i] == json.dumps(attribution_details(attribution, i), sort_keys=True)
    assert encoded[3] == "[]"
    some = [31, 2, 9, 3]  # a few names, out of order: each gets its own entries
    assert attribution_json(attribution, np.array(some)) == {i: encoded[i] for i in some}
    assert "\\u00d7" in encoded[0] and '\\"per name\\"' in encoded[0]


def test_every_details_json_is_written_as_json_dumps_writes_it() -> None:
    """The actions' details are assembled from pre-encoded pieces; each must read back and
    re-encode to itself, byte for byte (separators, escapes, float digits, null), on a
    book with decisions rejected before the solve, a name moved without a decision, and
    labels other than OK."""
    book = hand_book(PRICES, {("s1", "AAA"): 0.08, ("s2", "CCC"): -0.03})
    result = rebalance(
        book,
        decisions(
            [
                ("D1", "s1", "AAA", 0.09),  # past the 5% cap
                ("D2", "s1", "BBB", -0.0123456789),
                ("D3", "s1", "ZZZ", 0.01),  # unknown ticker: rejected before the solve
                ("D4", "s2", "DDD", float("nan")),  # rejected before the solve
            ]
        ),
        policy(),
        risk_aversion=0.5,
    )
    actions = result.actions
    assert {"REJECTED", "SCALED_DOWN"} <= set(actions["action_type"])
    assert actions["decision_id"].isna().any()  # CCC moved without a decision
    for text in actions["details_json"]:
        assert json.dumps(json.loads(text)) == text


@pytest.mark.parametrize(
    "values",
    [
        ["AAA", None, float("nan"), pd.NA, "≤ 5% σ"],
        ["id-1", 3, 2.5, None],  # what a malformed decision may carry
        np.array(["x", "yy"]),
        [],
    ],
)
def test_text_columns_read_as_pandas_would_write_them(values: list[object]) -> None:
    """The result tables' text columns are built in their own Arrow pool; they must be
    what pandas' own conversion gives, value for value and dtype for dtype."""
    ours = pd.Series(string_column(values))
    theirs = pd.Series(pd.array(list(values), dtype="str"))
    assert ours.dtype == theirs.dtype == pd.Series(["a"]).dtype
    pd.testing.assert_series_equal(ours, theirs)


def test_ticker_columns_taken_from_one_arrow_array_read_as_built_one_by_one() -> None:
    tickers = np.array(["AAA", "BB", "ÇÇ", "D"], dtype=object)
    at = np.array([3, 0, 0, 2])
    ours = pd.Series(string_take(text_array(tickers), at))
    pd.testing.assert_series_equal(ours, pd.Series(string_column(tickers[at].astype(str))))


weights = st.floats(-2.0, 2.0, allow_nan=False) | st.sampled_from([0.0, -0.0, -1e-13, -4.9e-5])


@given(
    st.lists(st.tuples(weights, weights, st.booleans()), max_size=30),
)
def test_percent_texts_read_as_pct_of_each_value(rows: list[tuple[float, float, bool]]) -> None:
    """Each text is :func:`_pct` of its value, written afresh or taken from ``like``
    where the value there is the same (and only there)."""
    values = np.array([v for v, _, _ in rows])
    seen = np.array([v if same else other for v, other, same in rows])
    expected = [_pct(v) for v in values.tolist()]
    assert percent_texts(values) == expected
    assert percent_texts(values, like=(seen, [_pct(v) for v in seen.tolist()])) == expected
    # Texts are taken only where the value is the same: a wrong text there would show.
    same = (values == seen).tolist()
    marked = ["?" if eq else _pct(b) for eq, b in zip(same, seen.tolist(), strict=True)]
    taken = percent_texts(values, like=(seen, marked))
    assert taken == ["?" if eq else e for eq, e in zip(same, expected, strict=True)]


halves = st.builds(  # x·10⁶ at, or a few ulps from, a half: where rint could disagree
    lambda k, ulps: (
        float(np.nextafter((k + 0.5) / 1e6, np.inf if ulps > 0 else -np.inf))
        if ulps
        else (k + 0.5) / 1e6
    ),
    st.integers(-(10**7), 10**7),
    st.integers(-1, 1),
)


percent_halves = st.builds(  # 10⁴x at, or an ulp from, a half: where rint could disagree
    lambda k, ulps: (
        float(np.nextafter((k + 0.5) / 1e4, np.sign(ulps) * np.inf)) if ulps else (k + 0.5) / 1e4
    ),
    st.integers(-(10**6), 10**6) | st.integers(-(2**45), 2**45),  # weights; beyond 2³¹
    st.integers(-1, 1),
)


@given(st.lists(st.floats(allow_subnormal=True) | percent_halves | weights, max_size=40))
def test_percent_texts_match_each_value_formatted_alone(values: list[float]) -> None:
    """Texts written once per distinct hundredth read as each value formatted alone: at
    and beside the halves, and for values too large, infinite or NaN."""
    assert percent_texts(np.array(values, dtype=float)) == [_pct(v) for v in values]


@given(st.lists(st.floats(allow_subnormal=True) | halves, max_size=40))
def test_rounded_is_round_to_the_last_bit(values: list[float]) -> None:
    ours = rounded(np.array(values, dtype=float), 6)
    theirs = [round(x, 6) for x in values]
    assert [repr(x) for x in ours] == [repr(x) for x in theirs]


@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.floats(-1e3, 1e3)), max_size=40),
    st.lists(st.floats(0.0, 1e3), min_size=6, max_size=6),
    st.booleans(),
)
def test_limit_weights_are_scipys_products_to_the_last_bit(
    m: int, n: int, entries: list[tuple[int, int, float]], lam: list[float], sort: bool
) -> None:
    """Aᵀλ, |A|ᵀλ and each entry's push λ_row·|A| (|A| = A for a non-negative limit) are
    what scipy's own products give, byte for byte, on matrices stored with duplicates,
    zeros and unsorted columns (a COO built as is), or canonical."""
    import scipy.sparse as sp

    from riskopt.optimizer.diff import _limit_weights

    kept = [(r, c, v) for r, c, v in entries if r < m and c < n]
    rows = np.array([r for r, _, _ in kept], dtype=np.int32)
    order = np.argsort(rows, kind="stable")  # rows in order, columns as they came
    cols = np.array([c for _, c, _ in kept], dtype=np.int32)[order]
    data = np.array([v for _, _, v in kept], dtype=float)[order]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=m))])
    a = sp.csr_matrix((data, cols, indptr), shape=(m, n))
    if sort:
        a.sum_duplicates()
    weights = np.array(lam[:m])
    for nonneg in (True, False):
        stored = (a.data.copy(), a.indices.copy(), a.indptr.copy())
        used, row_of, push, weight, weight_abs = _limit_weights(a, weights, nonneg)
        assert all(
            (x == y).all() for x, y in zip(stored, (a.data, a.indices, a.indptr), strict=True)
        )
        # What they must equal (on copies: scipy's abs sums duplicates in place).
        magnitude = sp.csr_matrix(a.copy() if nonneg else abs(a.copy()))
        expected_rows = np.repeat(np.arange(m), np.diff(magnitude.indptr))
        assert weight.tobytes() == np.asarray(a.T @ weights).tobytes()
        expected_abs = weight if nonneg else np.asarray(abs(a.copy()).T @ weights)
        assert weight_abs.tobytes() == expected_abs.tobytes()
        assert push.tobytes() == (weights[expected_rows] * magnitude.data).tobytes()
        assert (row_of == expected_rows).all()
        assert (used.indices == magnitude.indices).all()
        assert (used.indptr == magnitude.indptr).all()


def _argmax_reference(
    rows: list[int], cols: list[int], values: list[float], n: int
) -> tuple[list[int], list[float]]:
    """Per column: the first row holding the largest stored value, and that value
    (at least 0); an empty column gives row 0 and 0."""
    owner, top = [0] * n, [0.0] * n
    for j in range(n):
        held = sorted((r, v) for r, c, v in zip(rows, cols, values, strict=True) if c == j)
        if held:
            best = max(v for _, v in held)
            owner[j] = min(r for r, v in held if v == best)
            top[j] = max(best, 0.0)
    return owner, top


@given(
    st.integers(1, 5),
    st.dictionaries(
        st.tuples(st.integers(0, 6), st.integers(0, 4)),
        st.sampled_from([0.0, -0.0, 1.0, 2.0, -1.0, 0.5]) | st.floats(-5, 5),
        max_size=25,
    ),
)
def test_argmax_by_column_is_the_first_row_of_each_columns_largest_entry(
    n: int, entries: dict[tuple[int, int], float]
) -> None:
    from riskopt.optimizer.diff import _argmax_by_column

    kept = {(r, c): v for (r, c), v in entries.items() if c < n}
    rows, cols = [r for r, _ in kept], [c for _, c in kept]
    values = list(kept.values())
    owner, top = _argmax_by_column(
        np.array(rows, dtype=int), np.array(cols, dtype=int), np.array(values, dtype=float), n
    )
    expected_owner, expected_top = _argmax_reference(rows, cols, values, n)
    assert owner.tolist() == expected_owner
    assert top.tolist() == expected_top


@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3)), min_size=1, max_size=10, unique=True),
    st.lists(
        st.lists(st.tuples(st.integers(0, 9), st.floats(0, 5)), max_size=6), min_size=1, max_size=4
    ),
)
def test_a_pair_limits_pushes_are_read_per_ticker_as_the_product_with_m_gives(
    pairs: list[tuple[int, int]], limit_rows: list[list[tuple[int, float]]]
) -> None:
    """Whether a row holds one pair per ticker or several (several sleeves in one row),
    each ticker's largest push is that of ``P·Mᵀ``, and so is its row wherever the push
    is above zero (the only rows read: the product drops pushes of zero)."""
    import scipy.sparse as sp

    from riskopt.optimizer.diff import _column_argmax, _ticker_argmax

    p = len(pairs)
    tickers = sorted({t for _, t in pairs})
    n = len(tickers)
    pair_ticker = np.array([tickers.index(t) for _, t in pairs])
    m = sp.csr_matrix((np.ones(p), (pair_ticker, np.arange(p))), shape=(n, p))
    data = dataclasses.make_dataclass("D", ["pair_ticker", "n", "p", "M"])(pair_ticker, n, p, m)
    entries = [(r, j % p, v) for r, row in enumerate(limit_rows) for j, v in dict(row).items()]
    a = sp.csr_matrix(
        ([v for *_, v in entries], ([r for r, *_ in entries], [j for _, j, _ in entries])),
        shape=(len(limit_rows), p),
    )
    a.sum_duplicates()
    row_of = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    owner, top = _ticker_argmax(a, row_of, a.data.copy(), data)  # type: ignore[arg-type]
    expected_owner, expected_top = _column_argmax(a @ m.T)
    assert top.tobytes() == expected_top.tobytes()
    pushed = top > 0
    assert owner[pushed].tolist() == expected_owner[pushed].tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_names_reason_is_written_as_for_every_name_when_taken_from_its_pair(
    seed: int,
) -> None:
    """Names held by one pair take that pair's reason where the two read alike; every
    name's reason must be what :func:`reasons` writes for it, on books with names in
    several sleeves, names whose pair reads otherwise (another label, other weights),
    OK and other labels."""
    from riskopt.constraints.config import ConstraintSet
    from riskopt.data.synthetic import make_universe
    from riskopt.optimizer.diff import OK, REJECTED, SCALED_DOWN, reasons
    from riskopt.optimizer.inputs import prepare
    from riskopt.optimizer.rebalance import _ticker_reasons

    rng = np.random.default_rng(seed)
    universe = make_universe(60, 3, seed, coverage=0.9, years=0.3)
    data = prepare(universe.book, universe.decisions, ConstraintSet.load("default")).data
    n, pt = data.n, data.pair_ticker
    assert (np.bincount(pt, minlength=n) > 1).any() and (np.bincount(pt, minlength=n) == 1).any()
    causes = (Cause("position.max_weight", "name cap", "name", 2), Cause("x", "other", "group"))
    contributions = rng.standard_normal((n, 2))
    attribution = Attribution(
        causes,
        contributions,
        contributions.sum(axis=1),
        {"position.max_weight": np.full(n, 0.05)},
        {"x": np.array([f"G{k % 3}" for k in range(n)], dtype=object)},
    )
    h_final = data.h_tilde * rng.choice([1.0, 0.5], n)
    w_final = h_final[pt] * np.where(rng.random(len(pt)) < 0.1, 0.9, 1.0)  # some differ
    labels = rng.choice([OK, SCALED_DOWN, REJECTED], n)
    pair_labels = labels[pt].copy()
    pair_labels[rng.random(len(pt)) < 0.1] = OK
    texts = tuple(percent_texts(v) for v in (data.h_tilde, h_final, data.h0))
    pair_texts = tuple(percent_texts(v) for v in (data.w_tilde, w_final, data.w0))
    sentences: dict[int, str] = {}
    pair_reasons = reasons(pair_labels, attribution, pair_texts, data.has_decision, pt, sentences)
    ours = _ticker_reasons(
        data, attribution, labels, texts, h_final, w_final, pair_labels, pair_reasons, sentences
    )
    decided = np.asarray(data.M @ data.has_decision.astype(float)) > 0
    written = reasons(labels, attribution, texts, decided, np.arange(n), {})
    assert ours.tolist() == written


def _sentence_one_by_one(attribution: Attribution, i: int) -> str:
    """A name's explanation written for that name alone: the reference for
    :func:`reasons`, which writes them cause by cause. Where the main cause and the
    largest pushing back each exceed the move, and the causes add up to more than three
    times it, both read as one: held between them."""
    raw = attribution.shares[i]
    shares = np.maximum(raw, 0.0)
    if shares.sum() > 0:
        shares = shares / shares.sum()
    d = int(attribution.dominant()[i])
    order = np.argsort(-shares)
    others = [
        f"{attribution.causes[j].description} ({shares[j]:.0%} of the push)"
        for j in order.tolist()
        if shares[j] >= 0.05 and j != d
    ]
    main = _main_one_by_one(attribution, i, d)
    back = int(np.argmin(raw))
    if np.abs(raw).sum() > 3 and raw[back] < -1 and raw[d] > 1:
        c = attribution.contributions[i]
        pull = _pct(min(abs(c[d]), abs(c[back])))
        main = (
            f"held between {main} and {_main_one_by_one(attribution, i, back)} "
            f"(they pull ±{pull} of NAV against each other)"
        )
    return main + (f" with {', '.join(others)}" if others else "")


def _main_one_by_one(attribution: Attribution, i: int, d: int) -> str:
    """Cause ``d`` of name ``i`` in words, with its group and the value that bound."""
    import math

    cause = attribution.causes[d]
    value = attribution.limit_value.get(cause.name)
    limit = math.nan if value is None else float(value[i])
    shown = _pct(limit) if math.isfinite(limit) else ""
    where = attribution.group.get(cause.name)
    at = f" {where[i]}" if where is not None and where[i] is not None else ""
    if cause.value_label and shown:
        return f"{cause.description}{at} ({cause.value_label} {shown} of NAV)"
    key = cause.note or cause.name
    return f"{cause.description}{at} ({key}" + (f" {shown}" if shown else "") + ")"


def test_causes_pushing_against_each_other_read_as_shares_of_the_push() -> None:
    """A small move left by two limits pushing hard one way and risk aversion the other:
    as shares of the net move the causes would read 6,000% and 5,000%; the reason reads
    the largest two pulling each way as one, held between them, and gives the others
    their share of what pushed the name the way it moved."""
    from riskopt.optimizer.diff import SCALED_DOWN, reasons

    causes = (
        Cause("groups.sector.net", "sector cap", "group", 2),
        Cause("position.max_weight", "name cap", "name", 2),
        Cause("risk_aversion", "risk aversion", "portfolio", note="γ = 2"),
    )
    contributions = np.array([[0.06, 0.05, -0.109]])
    attribution = Attribution(
        causes, contributions, contributions.sum(axis=1), {}, {"groups.sector.net": ["Tech"]}
    )
    np.testing.assert_allclose(attribution.shares[0], [60.0, 50.0, -109.0])
    np.testing.assert_allclose(attribution.pushes[0], [6 / 11, 5 / 11, 0.0])
    (text,) = reasons(
        np.array([SCALED_DOWN]), attribution, (["1.00%"], ["0.90%"], ["0.00%"]), [True], [0]
    )
    assert text == (
        "SCALED_DOWN, held between sector cap Tech (groups.sector.net) and risk aversion "
        "(γ = 2) (they pull ±6.00% of NAV against each other) with name cap (45% of the "
        "push): held 0.00% → proposed 1.00% → final 0.90%"
    )
    # Pulling against each other no harder than the name moved: read one by one.
    mild = np.array([[0.0012, 0.0, -0.0002]])
    calm = Attribution(causes, mild, mild.sum(axis=1), {}, {"groups.sector.net": ["Tech"]})
    (text,) = reasons(np.array([SCALED_DOWN]), calm, (["1.00%"], ["0.90%"], ["0.00%"]), [True], [0])
    assert text.startswith("SCALED_DOWN by sector cap Tech (groups.sector.net):")


@given(st.integers(0, 2**32 - 1), st.integers(1, 40))
def test_reasons_read_as_each_name_written_alone(seed: int, n: int) -> None:
    """:func:`reasons` writes each name's sentence cause by cause; every one must read as
    the name written alone: a limit shown with its label or its key (or not at all where
    it is not finite), a group named where there is one, the other causes of 5% or more."""
    from riskopt.optimizer.diff import CAPPED, OK, REJECTED, SCALED_DOWN, reasons

    rng = np.random.default_rng(seed)
    causes = (
        Cause("trading.max_trade_pct_adv", "trade limit", "name", 1, "max trade"),
        Cause("position.max_weight", "name cap", "name", 2),
        Cause("groups.sector.net", "sector cap", "group", 2),
        Cause("risk_aversion", "risk aversion", "portfolio"),
    )
    contributions = rng.standard_normal((n, len(causes))) * (rng.random((n, 1)) < 0.9)
    limits = rng.choice([0.01, 0.0234567, -0.005, np.nan, np.inf], n)
    sectors = np.array([rng.choice(["Tech", "Energy", None]) for _ in range(n)], dtype=object)
    attribution = Attribution(
        causes,
        contributions,
        contributions.sum(axis=1),
        {"trading.max_trade_pct_adv": limits, "position.max_weight": np.full(n, 0.05)},
        {"groups.sector.net": sectors},
    )
    rows = rng.integers(0, n, 2 * n)  # pairs: a name can have several
    labels = rng.choice([OK, SCALED_DOWN, CAPPED, REJECTED], len(rows))
    texts = tuple(percent_texts(rng.standard_normal(len(rows)) * 0.02) for _ in range(3))
    decided = rng.random(len(rows)) < 0.8
    out = reasons(labels, attribution, texts, decided, rows, {})
    for k, (label, i) in enumerate(zip(labels.tolist(), rows.tolist(), strict=True)):
        move = (
            f"held {texts[2][k]} → proposed {texts[0][k]} → final {texts[1][k]}"
            if decided[k]
            else f"held {texts[2][k]} → final {texts[1][k]} (no decision)"
        )
        if label == OK:
            assert out[k] == f"OK: {move}"
            continue
        lead = label if label != REJECTED else "REJECTED, no trade toward the proposal,"
        said = _sentence_one_by_one(attribution, i)
        joint = (
            " by " if not said.startswith("held between") else " " if label == REJECTED else ", "
        )
        assert out[k] == f"{lead}{joint}{said}: {move}"


def test_each_sleeve_is_explained_by_the_causes_of_its_own_move() -> None:
    """Two sleeves on one name, each cut by its own budget: each sleeve's causes add up to
    its own final − proposed (not the name's), name its own budget, and the reason ends
    with how the name as a whole moved; a sleeve alone on its name reads as before."""
    cs = ConstraintSet.from_dict(
        {
            "name": "budget",
            "strategies": {
                "s1": {"max_gross": 0.02, "tier": 1},
                "s2": {"max_gross": 0.02, "tier": 1},
            },
        }
    )
    dec = decisions(
        [("D1", "s1", "AAA", 0.03), ("D2", "s2", "AAA", 0.02), ("D3", "s2", "BBB", 0.01)]
    )
    result = rebalance(
        hand_book({"AAA": 100.0, "BBB": 50.0}), dec, cs, risk_aversion=0.0, state="NORMAL"
    )
    actions = result.actions.set_index("decision_id")
    for decision, sleeve in (("D1", "s1"), ("D2", "s2")):
        details = json.loads(actions.loc[decision, "details_json"])
        moved = details["final_weight"] - details["proposed_weight"]
        assert moved < -0.001, decision  # both sleeves are cut
        parts = sum(entry["contribution"] for entry in details["attribution"])
        assert parts == pytest.approx(moved, abs=1e-5), decision
        groups = {e.get("group") for e in details["attribution"] if "strategies" in e["constraint"]}
        assert groups == {sleeve}, (decision, groups)
        assert "; the name as a whole: held 0.00% → final" in actions.loc[decision, "reason"]
    assert "as a whole" not in actions.loc["D3", "reason"]


SEVERITY = {"OK": 0, "SCALED_DOWN": 1, "CAPPED": 2, "REJECTED": 3}


@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from(list(SEVERITY))), min_size=1, max_size=30
    ),
    st.lists(st.sampled_from(list(SEVERITY)), min_size=6, max_size=6),
)
def test_a_names_label_is_its_most_severe_sleeves_or_its_own(
    pairs: list[tuple[int, str]], own: list[str]
) -> None:
    """REJECTED > CAPPED > SCALED_DOWN > OK: a name never reads milder than any sleeve of
    it, nor than its own trade; the sleeve named is one that carries that label."""
    from riskopt.optimizer.tables import name_labels

    pairs = sorted(pairs)
    pair_ticker = np.array([t for t, _ in pairs])
    pair_labels = np.array([label for _, label in pairs])
    labels, worst = name_labels(np.array(own), pair_labels, pair_ticker)
    for i in range(6):
        mine = [SEVERITY[label] for t, label in pairs if t == i]
        assert SEVERITY[labels[i]] == max([SEVERITY[own[i]], *mine])
        if mine and max(mine) == SEVERITY[labels[i]]:
            assert pair_ticker[worst[i]] == i and pair_labels[worst[i]] == labels[i]


def test_no_name_reads_milder_than_a_sleeve_on_the_sample_book(sample) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    result = rebalance(book, dec, "default", state="EMERGENCY")
    targets = result.targets.set_index("ticker")
    sleeves = result.sleeve_targets
    worst = sleeves["action_type"].map(SEVERITY).groupby(sleeves["ticker"]).max()
    name = targets["action_type"].map(SEVERITY).reindex(worst.index)
    assert (name >= worst).all()
    # Where every sleeve is milder, the name's own trade leads, and its reason is its own.
    led = targets.loc[(name > worst).reindex(targets.index, fill_value=False)]
    assert not led["risk_reasoning_summary"].str.contains(" as its sleeve ").any()
    by_sleeve = targets["risk_reasoning_summary"].str.contains(" as its sleeve ", regex=False)
    assert by_sleeve.any()  # the sample has names whose sleeve sets their label
    for ticker, text in targets.loc[by_sleeve, "risk_reasoning_summary"].items():
        label, _, rest = text.partition(" as its sleeve ")
        assert label == targets.loc[ticker, "action_type"]
        strategy = rest.split(" is;")[0]
        mine = sleeves[(sleeves["ticker"] == ticker) & (sleeves["strategy_id"] == strategy)]
        assert list(mine["action_type"]) == [label]
