"""Explaining a name: its causes add up to the gate's move from the proposal, from memory,
from an output folder and from a stored run; the chart has one bar per cause; a name or
run that is not there is a typed error, and one line with exit status 2 from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.container import BarContainer
from typer.testing import CliRunner

from riskopt.data.book import Book
from riskopt.data.errors import RiskoptError
from riskopt.optimizer.cli import _write_outputs, app
from riskopt.optimizer.diff import NUMERICAL
from riskopt.optimizer.explain import (
    ATTRIBUTION,
    LOTS,
    NOISE,
    NOT_STORED,
    UNATTRIBUTED,
    RunNotFoundError,
    UnknownTickerError,
    attribution_long,
    explain,
    opposed_pairs,
    read_folder,
    read_stored,
)
from riskopt.optimizer.rebalance import rebalance
from riskopt.optimizer.result import RebalanceResult
from riskopt.optimizer.store import store_result
from tests.helpers import decisions, hand_book

runner = CliRunner()
TOL = 1e-9
"""How closely (weight) the causes must add up to final − proposed."""


@pytest.fixture(scope="module")
def demo_run(sample: tuple[Book, pd.DataFrame]) -> RebalanceResult:
    """The sample book as ``riskopt demo`` runs it: the default set, NORMAL, γ debated."""
    book, decisions = sample
    return rebalance(book, decisions, "default", state="NORMAL")


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``riskopt demo --out`` writes (outputs and the SQLite store)."""
    out = tmp_path_factory.mktemp("explain") / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _name(result: RebalanceResult, label: str) -> str:
    """The first name with ``label`` that the gate moved off its proposal."""
    t = result.targets
    moved = (t["target_weight"] - t["proposed_weight"]).abs() > 1e-6
    return str(t.loc[(t["action_type"] == label) & moved, "ticker"].iloc[0])


@pytest.mark.parametrize("label", ["CAPPED", "SCALED_DOWN", "REJECTED"])
def test_causes_add_up_to_the_move(demo_run: RebalanceResult, label: str) -> None:
    ticker = _name(demo_run, label)
    e = demo_run.explain(ticker)
    row = demo_run.targets.loc[ticker]
    assert e.label == label
    assert (e.held, e.proposed, e.final) == (
        row["current_weight"],
        row["proposed_weight"],
        row["target_weight"],
    )
    frame = e.frame.set_index("cause")
    assert abs(frame["contribution"].sum() - (e.final - e.proposed)) <= TOL
    assert abs(frame["share"].sum() - 1.0) <= TOL / abs(e.move)
    assert UNATTRIBUTED not in frame.index  # the attribution explains all of it
    # Each limit's part is the attribution's own number, not recomputed.
    attribution = demo_run.attribution.loc[ticker]
    limits = frame.index.difference([NUMERICAL, LOTS])
    assert np.array_equal(frame.loc[limits, "contribution"], attribution[limits])
    assert (attribution.drop(limits).abs() < NOISE).all()  # the rest is solver tolerance
    if LOTS in frame.index:
        assert frame.loc[LOTS, "contribution"] == row["target_weight"] - row["solved_weight"]
    if NUMERICAL in frame.index:
        assert frame.loc[NUMERICAL, "description"] == "solver tolerance"
        assert f"{NUMERICAL} (solver tolerance)" in e.text


def test_each_binding_cause_reads_its_multiplier_and_bound(demo_run: RebalanceResult) -> None:
    t = demo_run.targets
    capped = t.index[(t["action_type"] == "CAPPED") & (t["target_weight"] != t["proposed_weight"])]
    # The first whose causes do not pull against each other: each has its own line.
    e = next(
        x
        for x in map(demo_run.explain, capped)
        if not opposed_pairs(x.frame["contribution"].to_numpy(), x.move)
    )
    ticker = e.ticker
    binding = demo_run.binding
    for row in e.frame.itertuples(index=False):
        rows = binding[binding["constraint"] == row.cause]
        if row.binding:
            assert row.multiplier in set(rows["dual"])
            assert f"binding, multiplier {row.multiplier:.4g}" in e.text
        else:
            mine = rows["label"].astype(str).isin([ticker, str(row.group)])
            assert not mine.any() or row.cause in (NUMERICAL, LOTS)
    top = e.frame.iloc[0]
    assert np.isfinite(top["limit"]) and top["binding"]
    assert f"{top['cause']} ({top['description']}" in e.text
    assert f"{abs(top['contribution']):.2%} of the {abs(e.move):.2%}" in e.text


def test_sleeves_are_the_names_pairs(demo_run: RebalanceResult) -> None:
    sleeves = demo_run.sleeve_targets
    ticker = str(sleeves["ticker"].value_counts().index[0])  # the most sleeves on one name
    e = demo_run.explain(ticker)
    assert len(e.sleeves) == (sleeves["ticker"] == ticker).sum() > 1
    assert e.sleeves["target_weight"].sum() == pytest.approx(e.final, abs=1e-12)
    for s in e.sleeves.itertuples(index=False):
        assert f"sleeve {s.strategy_id}: held" in e.text


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_name_adds_up(demo_run: RebalanceResult, data: st.DataObject) -> None:
    ticker = data.draw(st.sampled_from(sorted(demo_run.targets["ticker"].astype(str))))
    e = demo_run.explain(ticker)
    if not np.isfinite(e.final):  # carried unchanged: no price, nothing to attribute
        return
    assert abs(e.frame["contribution"].sum() - e.move) <= TOL
    assert UNATTRIBUTED not in set(e.frame["cause"])


def test_unknown_ticker_is_a_typed_error_with_close_names(demo_run: RebalanceResult) -> None:
    ticker = _name(demo_run, "CAPPED")
    with pytest.raises(UnknownTickerError) as err:
        demo_run.explain(ticker[:-1] + "Z")
    assert isinstance(err.value, RiskoptError)
    assert repr(ticker[:-1] + "Z") in str(err.value) and ticker in str(err.value)


def test_chart_has_one_bar_per_cause(demo_run: RebalanceResult) -> None:
    t = demo_run.targets
    rejected = t.index[
        (t["action_type"] == "REJECTED") & (t["target_weight"] != t["proposed_weight"])
    ]
    # The first whose causes do not pull against each other (those share a bar).
    e = next(
        x
        for x in map(demo_run.explain, rejected)
        if not opposed_pairs(x.frame["contribution"].to_numpy(), x.move)
    )
    fig = e.plot()
    ax = fig.axes[0]
    totals, causes = (c for c in ax.containers if isinstance(c, BarContainer))
    assert len(causes) == len(e.frame) and len(totals) == 3
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["held", "proposed", *e.frame["cause"], "final"]
    heights = [bar.get_height() for bar in causes]
    assert np.allclose(heights, e.frame["contribution"], rtol=0, atol=1e-15)
    assert "%" in ax.yaxis.get_major_formatter()(0.01, 0)


def test_import_chooses_no_backend() -> None:
    code = (
        "import sys, riskopt.optimizer.explain, riskopt.optimizer.result; "
        "print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_explains_a_name_from_an_output_folder(
    demo_folder: Path, demo_run: RebalanceResult
) -> None:
    ticker = _name(demo_run, "SCALED_DOWN")
    chart = demo_folder / "name.png"
    result = runner.invoke(app, ["explain", str(demo_folder), ticker, "--chart", str(chart)])
    assert result.exit_code == 0, result.output
    run_id = json.loads((demo_folder / "run.json").read_text())["run_id"]
    assert result.output.startswith(f"{ticker} in run {run_id} ")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The folder holds all the in-memory explanation reads, to the last digits.
    folder = explain(read_folder(demo_folder), ticker)
    memory = demo_run.explain(ticker)
    assert list(folder.frame["cause"]) == list(memory.frame["cause"])
    assert np.allclose(folder.frame["contribution"], memory.frame["contribution"], atol=1e-12)
    assert abs(folder.frame["contribution"].sum() - folder.move) <= TOL
    assert folder.frame["binding"].tolist() == memory.frame["binding"].tolist()


def _check_stored(url: str, run_id: str, memory: RebalanceResult, ticker: str) -> str:
    """The CLI's explanation of a stored run: the causes it lists are the attribution's
    (those of at least 1%), and what it leaves out is one ``not stored`` row."""
    result = runner.invoke(app, ["explain", run_id, ticker, "--db", url])
    assert result.exit_code == 0, result.output
    stored = explain(read_stored(url, run_id, ticker), ticker).frame.set_index("cause")
    listed = stored.index.drop(NOT_STORED)
    # Each action lists its own sleeve's causes: the name's are their sums.
    actions = memory.actions[memory.actions["ticker"] == ticker]
    sums: dict[str, float] = {}
    for raw in actions["details_json"].dropna():
        for entry in json.loads(raw)["attribution"]:
            sums[entry["constraint"]] = sums.get(entry["constraint"], 0.0) + entry["contribution"]
    assert len(listed) and set(listed) == set(sums)
    assert np.allclose(stored.loc[listed, "contribution"], [sums[c] for c in listed])
    move = (
        memory.targets.loc[ticker, "target_weight"] - memory.targets.loc[ticker, "proposed_weight"]
    )
    assert abs(stored["contribution"].sum() - move) <= TOL
    assert f"{NOT_STORED} (causes under 1% of the move each" in result.output
    return result.output


def test_cli_explains_a_stored_run(demo_folder: Path, demo_run: RebalanceResult) -> None:
    run_id = json.loads((demo_folder / "run.json").read_text())["run_id"]
    url = f"sqlite:///{demo_folder / 'riskopt.sqlite'}"
    out = _check_stored(url, run_id, demo_run, _name(demo_run, "CAPPED"))
    assert f"in run {run_id} " in out


def test_stored_run_on_each_backend(demo_run: RebalanceResult, database_url: str) -> None:
    store_result(demo_run, database_url)
    ticker = _name(demo_run, "REJECTED")
    out = _check_stored(database_url, demo_run.run.run_id, demo_run, ticker)
    held = demo_run.targets.loc[ticker, "current_weight"]
    assert f"name: held {held:.2%} →" in out


def test_bad_run_or_ticker_is_one_line(
    demo_folder: Path, demo_run: RebalanceResult, tmp_path: Path
) -> None:
    ticker = _name(demo_run, "CAPPED")
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("run.json", "targets.csv"):
        (partial / name).write_bytes((demo_folder / name).read_bytes())
    url = f"sqlite:///{demo_folder / 'riskopt.sqlite'}"
    cases = {
        "unknown ticker": ([str(demo_folder), "NOPE1"], "unknown ticker 'NOPE1'"),
        "close ticker": ([str(demo_folder), ticker.lower()], ticker),
        "no folder": ([str(tmp_path / "none"), ticker], "no run output folder"),
        "partial folder": ([str(partial), ticker], "no sleeve_targets.csv"),
        "unknown run": (["nope", ticker, "--db", url], "no run 'nope' is stored"),
        "no database": (["x", ticker, "--db", f"sqlite:///{tmp_path / 'no.sqlite'}"], "exist"),
    }
    for case, (args, words) in cases.items():
        result = runner.invoke(app, ["explain", *args])
        assert result.exit_code == 2, (case, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("riskopt: error: "), case
        assert words in lines[0], (case, lines[0])
        assert "Traceback" not in result.output


def test_the_output_folder_keeps_the_attribution_small(
    demo_folder: Path, demo_run: RebalanceResult
) -> None:
    rows = pd.read_csv(demo_folder / f"{ATTRIBUTION}.csv")
    assert len(rows) < 0.5 * (demo_run.attribution.to_numpy() != 0).sum()
    targets = demo_run.targets
    lots = targets["target_weight"] - targets["solved_weight"]
    kept = attribution_long(demo_run.attribution, lots)
    sums = kept.groupby("ticker")["contribution"].sum()
    # With the lots rows, each name's rows add up to its final − proposed weight.
    moved = (targets["target_weight"] - targets["proposed_weight"]).loc[sums.index]
    assert np.allclose(sums, moved, rtol=0, atol=1e-12)
    assert (kept["cause"] == "lots").sum() > 0
    # The file holds those rows, each to the 12 significant digits a CSV number keeps.
    assert list(rows["ticker"]) == list(kept["ticker"])
    np.testing.assert_allclose(rows["contribution"], kept["contribution"], rtol=1e-11)


def test_a_missing_attribution_file_names_it(demo_folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in demo_folder.glob("*.csv"):
        if path.name != f"{ATTRIBUTION}.csv":
            (copy / path.name).write_bytes(path.read_bytes())
    (copy / "run.json").write_bytes((demo_folder / "run.json").read_bytes())
    with pytest.raises(RunNotFoundError, match=f"{ATTRIBUTION}.csv"):
        read_folder(copy)


def test_a_fallback_run_names_the_fallback_as_the_cause() -> None:
    book = hand_book(
        {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0},
        {("s1", "AAA"): 0.09, ("s1", "BBB"): -0.02},
        adv_shares=20_000,
    )
    dec = decisions(
        [("D1", "s1", "AAA", 0.12), ("D2", "s1", "BBB", 0.0), ("D3", "s1", "CCC", 0.03)]
    )
    result = rebalance(book, dec, "default", state="NORMAL", solvers=["OSQP"], risk_aversion=0.0)
    assert result.status == "FALLBACK"
    e = result.explain("CCC")
    assert list(e.frame["cause"]) == ["fallback.derisk_only"]
    assert e.frame["contribution"].iloc[0] == pytest.approx(-0.03, abs=1e-12)
    assert "de-risk-only fallback (no solver succeeded)) took 3.00% of the 3.00% cut" in e.text


def test_a_name_the_gate_passed_still_reads_its_causes_in_words(
    demo_run: RebalanceResult,
) -> None:
    t = demo_run.targets
    moved = (t["target_weight"] - t["proposed_weight"]).abs() > 0
    e = demo_run.explain(str(t.loc[(t["action_type"] == "OK") & moved, "ticker"].iloc[0]))
    assert e.label == "OK" and abs(e.frame["contribution"].sum() - e.move) <= TOL
    limits = e.frame[~e.frame["cause"].isin([NUMERICAL, LOTS, "risk_aversion"])]
    assert len(limits) and (limits["description"] != limits["cause"]).all()


def test_a_decision_rejected_before_the_solve_is_named_with_its_reason(tmp_path: Path) -> None:
    """A bad row takes no part in the solve; explaining its name says so and why, in memory,
    from an output folder and from a stored run, and a name the book lacks is explained by
    its rejection instead of being an unknown ticker."""
    book = hand_book({"AAA": 100.0, "BBB": 50.0}, {("s1", "AAA"): 0.02})
    dec = decisions(
        [
            ("D1", "s1", "AAA", 0.03),
            ("D2", "s2", "AAA", 0.9),  # absurd size
            ("D3", "s1", "ZZZ", 0.01),  # not in the market data
        ]
    )
    result = rebalance(book, dec, "default", state="NORMAL", risk_aversion=0.0)
    text = result.explain("AAA").text
    assert "decision D2 (s2, proposed 90.00%) was rejected before the solve: absurd size" in text
    assert "it took no part in the run" in text and "sleeve s1:" in text
    unknown = result.explain("ZZZ")
    assert unknown.label == "REJECTED" and unknown.frame.empty
    assert "decision D3 (s1, proposed 1.00%) was rejected before the solve: unknown ticker" in (
        unknown.text
    )
    assert "name: held" not in unknown.text
    with pytest.raises(UnknownTickerError):
        result.explain("YYY")
    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    store_result(result, url)
    stored = explain(read_stored(url, result.run.run_id, "AAA"), "AAA")
    assert "decision D2 (s2) was rejected before the solve: absurd size" in stored.text
    assert list(stored.sleeves["strategy_id"]) == ["s1"]
    out = tmp_path / "out"
    _write_outputs(result, out, store=None)
    shown = runner.invoke(app, ["explain", str(out), "ZZZ"])
    assert shown.exit_code == 0, shown.output
    assert "decision D3 (s1, proposed 1.00%) was rejected before the solve" in shown.output


def test_causes_pulling_against_each_other_read_as_one_line(demo_run: RebalanceResult) -> None:
    """Two binding limits that pull a name thousands of times its move each way (a trade
    limit holding it up, a liquidity cap pulling it down) read as one line, held between
    them, with their net part of the move; the frame keeps both, exact."""
    t = demo_run.targets
    found = []
    for ticker in t.index[(t["target_weight"] - t["proposed_weight"]).abs() > 1e-6]:
        e = demo_run.explain(ticker)
        c = e.frame["contribution"].to_numpy()
        if np.abs(c).max() > 100 * abs(e.move):
            found.append(e)
    assert found  # the sample book has such names (MAT00084: ±1,851 in weight units)
    for e in found:
        frame = e.frame
        assert abs(frame["contribution"].sum() - e.move) <= TOL  # still exact
        pairs = opposed_pairs(frame["contribution"].to_numpy(), e.move)
        assert pairs
        for a, b in pairs:
            ca, cb = frame["contribution"].iloc[a], frame["contribution"].iloc[b]
            assert ca * e.move > 0 > cb * e.move and min(abs(ca), abs(cb)) > abs(e.move)
            a_name, b_name = frame["cause"].iloc[a], frame["cause"].iloc[b]
            line = next(x for x in e.text.splitlines() if f"held between {a_name} " in x)
            assert f" and {b_name} " in line and f"(they pull ±{min(abs(ca), abs(cb)):.2%}" in line
            assert f"net {'took' if (ca + cb) * e.move > 0 else 'pushed back'} " in line
            assert f"{abs(ca + cb):.2%}" in line
            # Neither cause has a line of its own with its enormous share.
            for name in (a_name, b_name):
                assert not any(x.strip().startswith(f"{name} ") for x in e.text.splitlines())


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-1e4, 1e4, allow_subnormal=False), min_size=0, max_size=8),
    st.floats(-1.0, 1.0, allow_subnormal=False),
)
def test_opposed_pairs_net_only_causes_larger_than_the_move(
    contributions: list[float], move: float
) -> None:
    """Each pair is one cause pushing the way the name moved and one pushing back, each
    larger than the move; no cause is in two pairs; and netting stops only once the
    causes (pairs netted) are within three times the move, or no such pair is left."""
    c = np.array(contributions)
    pairs = opposed_pairs(c, move)
    used = [k for pair in pairs for k in pair]
    assert len(used) == len(set(used))
    way = np.sign(move) if move != 0 else (np.sign(c[np.argmax(np.abs(c))]) if c.size else 1.0)
    for a, b in pairs:
        assert c[a] * way > 0 > c[b] * way
        assert min(abs(c[a]), abs(c[b])) > abs(move)
    sizes = np.abs(c)
    for a, b in pairs:
        sizes[a], sizes[b] = abs(c[a] + c[b]), 0.0
    free = np.ones(len(c), dtype=bool)
    free[used] = False
    with_, against = sizes[free & (c * way > 0)], sizes[free & (c * way < 0)]
    more = len(with_) and len(against) and min(with_.max(), against.max()) > max(abs(move), NOISE)
    assert sizes.sum() <= 3 * abs(move) or not more


def test_the_chart_nets_causes_pulling_against_each_other(demo_run: RebalanceResult) -> None:
    """MAT00084's trade limit and liquidity cap pull ±1,851 each way: one bar, their net,
    so that the chart's scale is the move's, and the bars still end at the final weight."""
    e = demo_run.explain("MAT00084")
    ax = e.plot().axes[0]
    _totals, causes = (c for c in ax.containers if isinstance(c, BarContainer))
    labels = [t.get_text() for t in ax.get_xticklabels()][2:-1]
    assert len(causes) == len(labels) < len(e.frame)
    assert any(" ↔ " in label for label in labels)
    heights = np.array([bar.get_height() for bar in causes])
    assert np.abs(heights).max() < 0.1  # not ±18.5
    assert e.proposed + heights.sum() == pytest.approx(e.final, abs=TOL)
