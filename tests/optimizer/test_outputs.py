"""What the command line writes and prints: tables as CSV (floats to 12 significant
digits) or Parquet (read back as the frames written), logging at the level asked for
(Dask's loggers and worker processes included), and nothing but the results under
``--quiet``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from riskopt.data import SAMPLES
from riskopt.data.loaders import load_book, load_decisions
from riskopt.optimizer.cli import _write_outputs, app
from riskopt.optimizer.cli_support import write_csv
from riskopt.optimizer.rebalance import rebalance
from riskopt.optimizer.result import RebalanceResult

runner = CliRunner()
TABLES = ("targets", "sleeve_targets", "actions", "binding")
# A number written with more than 12 significant digits (the noise of float arithmetic).
LONG_NUMBER = re.compile(r"(?<![\w.])-?(?:0\.0*)?[1-9]\d*\.?\d*(?:e[-+]?\d+)?")


@pytest.fixture(scope="module")
def sample_result() -> RebalanceResult:
    """The shipped sample book through the gate, as ``riskopt demo`` runs it."""
    book = load_book(SAMPLES / "book")
    return rebalance(book, load_decisions(SAMPLES / "decisions.csv"), "default", state="NORMAL")


def _digits(token: str) -> int:
    """Significant digits of a number as written."""
    mantissa = token.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa)


def test_parquet_tables_read_back_as_the_frames_written(
    sample_result: RebalanceResult, tmp_path: Path
) -> None:
    written = _write_outputs(sample_result, tmp_path, store=None, table_format="parquet")
    expected = [f"{name}.parquet" for name in (*TABLES, "attribution")]
    assert written == [*expected, "run.json", "report.html"]
    assert not list(tmp_path.glob("*.csv"))
    for name in TABLES:
        frame = getattr(sample_result, name).reset_index(drop=True)
        back = pd.read_parquet(tmp_path / f"{name}.parquet")
        pd.testing.assert_frame_equal(back, frame)  # values and dtypes, text untouched
    actions = pd.read_parquet(tmp_path / "actions.parquet")
    assert isinstance(actions["timestamp"].dtype, pd.DatetimeTZDtype)
    assert actions["final_weight"].dtype == np.float64


def test_csv_weights_read_back_within_1e_10_and_carry_no_float_noise(
    sample_result: RebalanceResult, tmp_path: Path
) -> None:
    _write_outputs(sample_result, tmp_path, store=None)
    for name in TABLES:
        frame = getattr(sample_result, name).reset_index(drop=True)
        back = pd.read_csv(tmp_path / f"{name}.csv")
        floats = frame.select_dtypes("float").columns
        assert len(floats) > 0
        for column in floats:
            a, b = frame[column].to_numpy(), back[column].to_numpy(dtype=float)
            assert np.array_equal(np.isnan(a), np.isnan(b)), (name, column)
            both = ~np.isnan(a)
            assert np.all(np.abs(a[both] - b[both]) <= 1e-10 * np.maximum(1, np.abs(a[both])))
    # Every number in the weight tables has at most 12 significant digits; the sample
    # book's raw weights carry up to 17 (-0.0008896452000000001).
    for name in ("targets", "sleeve_targets", "binding"):
        text = (tmp_path / f"{name}.csv").read_text()
        longest = max(_digits(t) for t in LONG_NUMBER.findall(text))
        assert longest <= 12, name
    assert any(_digits(repr(w)) > 12 for w in sample_result.targets["current_weight"])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.floats(min_value=-50, max_value=50, allow_nan=False, allow_subnormal=False),
        min_size=1,
        max_size=30,
    )
)
def test_any_weight_below_50_reads_back_within_1e_10(weights: list[float]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "w.csv"
        write_csv(pd.DataFrame({"w": weights}), path)
        back = pd.read_csv(path)["w"].to_numpy(dtype=float)
    assert np.max(np.abs(back - np.array(weights))) <= 1e-10


def test_format_option_on_demo_and_batch(tmp_path: Path) -> None:
    demo = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--format", "parquet"])
    assert demo.exit_code == 0, demo.output
    assert "(targets.parquet, sleeve_targets.parquet, actions.parquet, binding.parquet" in (
        demo.stdout
    )
    jobs = tmp_path / "jobs"
    made = runner.invoke(app, ["synth", "--out", str(jobs), "--n", "20", "--books", "2"])
    assert made.exit_code == 0, made.output
    out = tmp_path / "batch"
    args = ["batch", str(jobs), "--serial", "--out", str(out), "--format", "PARQUET"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    tables = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "index.html")
    assert tables == ["actions.parquet", "summary.parquet", "targets.parquet"]
    summary = pd.read_parquet(out / "summary.parquet")
    assert list(summary["status"]) == ["OPTIMAL"] * 2
    assert summary["gross_after"].dtype == np.float64
    assert len(pd.read_parquet(out / "targets.parquet")) == summary["names"].sum()
    bad = runner.invoke(app, ["batch", str(jobs), "--serial", "--format", "xlsx"])
    assert bad.exit_code == 2 and "format: must be csv or parquet" in bad.output


def test_log_level_debug_shows_riskopts_debug_lines(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    runner.invoke(app, ["synth", "--out", str(jobs), "--n", "20", "--books", "2"])
    args = ["batch", str(jobs), "--serial", "--out", str(tmp_path / "out"), "--state", "NORMAL"]
    debug = runner.invoke(app, ["--log-level", "DEBUG", *args])
    assert debug.exit_code == 0, debug.output
    assert "DEBUG riskopt: book account0001: OPTIMAL (2 of 2)" in debug.stderr
    assert "INFO riskopt: 2 books in" in debug.stderr
    plain = runner.invoke(app, args)
    assert plain.exit_code == 0, plain.output
    assert "riskopt:" not in plain.stderr  # WARNING by default: no debug or info line
    bad = runner.invoke(app, ["--log-level", "LOUD", *args])
    assert bad.exit_code == 2
    assert bad.stderr.strip().splitlines() == [
        "riskopt: error: --log-level: must be one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"
    ]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line in a process of its own: Dask's workers write to its real stderr."""
    command = [sys.executable, "-m", "riskopt.optimizer.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_a_dask_batch_logs_at_the_level_asked_and_quiet_prints_only_the_results(
    tmp_path: Path,
) -> None:
    jobs = tmp_path / "jobs"
    runner.invoke(app, ["synth", "--out", str(jobs), "--n", "20", "--books", "2"])
    batch = ["batch", str(jobs), "--dask", "--workers", "1"]
    # Default level (WARNING): Dask's scheduler, nanny and workers log no INFO line, and
    # a riskopt warning from a worker process is one formatted line.
    plain = _cli(*batch, "--out", str(tmp_path / "plain"))
    assert plain.returncode == 0, plain.stderr
    assert "INFO" not in plain.stderr and "distributed." not in plain.stderr, plain.stderr
    warnings = [line for line in plain.stderr.splitlines() if "black-swan" in line]
    assert warnings and all(
        "WARNING riskopt: no black-swan state given" in line for line in warnings
    )
    # --quiet: no progress bar, no log line; stdout holds the result lines alone.
    quiet = _cli("--quiet", *batch, "--out", str(tmp_path / "quiet"))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    lines = quiet.stdout.splitlines()
    assert len(lines) == 3, quiet.stdout
    assert lines[0].startswith("2 books in ") and lines[0].endswith("OPTIMAL 2")
    assert lines[1] == "state: ELEVATED (no state given: the set's default) for 2 books"
    assert lines[2].startswith("outputs written to ")


def test_details_json_holds_what_is_the_names_own(sample_result: RebalanceResult) -> None:
    """Book-level figures (γ, state, exposures) are in the run record once, not in every
    action's details; what reads the details back still finds its keys."""
    details = [json.loads(text) for text in sample_result.actions["details_json"]]
    keys = set().union(*details)
    assert not keys & {"gamma", "state", "exposures_before", "exposures_after"}
    assert {"attribution", "confidence", "current_weight", "final_weight"} <= keys
    assert {"proposed_weight", "reason"} <= keys
    assert any(d["attribution"] for d in details)  # the per-name causes are kept
    record = sample_result.run.to_dict()
    assert record["exposures_after"]["gross"] > 0 and record["state"] == "NORMAL"
    assert sample_result.scaled_by_risk_aversion() >= 0  # reads attribution back
