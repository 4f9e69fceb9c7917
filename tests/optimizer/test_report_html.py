"""The run report page: self-contained, its figures the run's own, and drawn by a browser.

The browser test opens the sample book's page in headless Chromium through Selenium and
Debian's chromedriver: the driver hands back the page's console log (``goog:loggingPrefs``)
and each chart's rendered box, which a ``--dump-dom`` run of Chromium cannot give. It is
skipped, saying why, only where Chromium or its driver is missing and ``CI`` is unset;
under ``CI`` a missing browser fails the test (``.ci/run`` installs both).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskopt.data.book import Book
from riskopt.optimizer.batch import Job, rebalance_many
from riskopt.optimizer.rebalance import rebalance
from riskopt.optimizer.report_html import (
    ReportData,
    factor_exposures,
    folder_name,
    group_exposures,
    portfolio_exposures,
    render,
    stored_report,
    write_batch_reports,
    write_report,
)
from riskopt.optimizer.result import RebalanceResult
from riskopt.optimizer.store import store_result

CHARTS = ("portfolio", "sector", "country", "factor", "labels", "debate")
"""The charts of a run whose book is at hand and whose γ the debate set."""


@pytest.fixture(scope="module")
def demo(sample: tuple[Book, pd.DataFrame]) -> tuple[Book, RebalanceResult]:
    """The sample book under NORMAL with the debate setting γ, as ``riskopt demo`` runs it."""
    book, decisions = sample
    return book, rebalance(book, decisions, "default", state="NORMAL", run_id="report-demo")


@pytest.fixture(scope="module")
def page(demo: tuple[Book, RebalanceResult]) -> str:
    book, result = demo
    return render(ReportData.of(result, book))


def _cell(page: str, cell_id: str) -> str:
    """The text of the element with ``id`` (unescaped)."""
    found = re.search(rf'id="{re.escape(cell_id)}">([^<]*)<', page)
    assert found is not None, f"no element with id {cell_id}"
    return html.unescape(found.group(1))


def test_page_names_no_external_resource(page: str) -> None:
    """Nothing on the page points off the page: no URL at all, no script, no link."""
    assert re.findall(r"https?://", page) == []
    assert re.findall(r"<(script|link|img|iframe|object|embed)\b", page, flags=re.I) == []
    assert re.findall(r"""(src|href)\s*=\s*["'](?!#)""", page, flags=re.I) == []
    assert "url(" not in page.replace("url(#", "")


def test_svg_ids_are_unique(page: str) -> None:
    """Six charts share one document: an id repeated would draw one chart's glyphs or
    clip paths in another."""
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    for ref in set(re.findall(r'href="#([^"]+)"|url\(#([^)]+)\)', page)):
        assert next(r for r in ref if r) in ids


def test_figures_are_the_runs(page: str, demo: tuple[Book, RebalanceResult]) -> None:
    """Header and exposures read back as the run's own figures, as the summary formats them."""
    _, result = demo
    run = result.run
    assert _cell(page, "run-id") == run.run_id
    assert _cell(page, "run-status") == run.status
    for key in ("gross", "net", "long", "short", "volatility"):
        assert _cell(page, f"exposure-{key}-before") == f"{run.exposures_before[key]:.2%}"
        assert _cell(page, f"exposure-{key}-after") == f"{run.exposures_after[key]:.2%}"
    proposed = result.targets["proposed_weight"]
    assert _cell(page, "exposure-gross-proposed") == f"{proposed.abs().sum():.2%}"
    assert _cell(page, "exposure-net-proposed") == f"{proposed.sum():.2%}"
    counts = result.label_counts()
    for label, n in counts.items():
        assert _cell(page, f"labels-{label}") == str(n)
    assert f"γ = {run.gamma:.3g}" in page
    for turn in run.debate:  # every argument of the debate is on the page
        assert html.escape(turn["rationale"]) in page


def test_overrides_and_breaches_are_listed(page: str, demo: tuple[Book, RebalanceResult]) -> None:
    """The largest override leads its table, and every breach is on the page under its tier."""
    _, result = demo
    top = result.largest_overrides(1).iloc[0]
    table = page[page.index("<h2>Largest overrides</h2>") :]
    assert re.search(rf"<td>{re.escape(str(top['decision_id']))}</td>", table).start() < len(table)
    first_row = table[table.index("<tbody>") :]
    assert first_row.index(str(top["decision_id"])) < first_row.index("</tr>")
    assert result.run.breaches, "the sample run leaves breaches to report"
    for tier in {b["tier"] for b in result.run.breaches}:
        assert f"<h3>tier {tier}:" in page
    for b in result.run.breaches:
        assert f"{b['breach']:.4%}" in page


def test_without_the_book_the_breakdowns_say_why(demo: tuple[Book, RebalanceResult]) -> None:
    _, result = demo
    page = render(ReportData.of(result))
    assert 'id="chart-sector"' not in page and 'id="chart-factor"' not in page
    assert "No sector breakdown: the run's book is not at hand." in page
    assert _cell(page, "exposure-gross-after") == f"{result.run.exposures_after['gross']:.2%}"


def test_stored_run_reads_back_alike(demo: tuple[Book, RebalanceResult], tmp_path: Path) -> None:
    """A run stored and read back gives the same exposures and label counts on its page."""
    _, result = demo
    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    store_result(result, url)
    stored = stored_report(url, result.run.run_id)
    page = render(stored)
    for key in ("gross", "net", "volatility"):
        assert _cell(page, f"exposure-{key}-after") == f"{result.run.exposures_after[key]:.2%}"
    table = portfolio_exposures(stored)
    assert table.at["gross", "proposed"] == pytest.approx(
        result.targets["proposed_weight"].abs().sum()
    )
    for label, n in result.label_counts().items():
        assert _cell(page, f"labels-{label}") == str(n)
    assert "The multipliers are not stored with a run" in page
    assert stored.book is None and "No sector breakdown" in page


def test_stored_run_with_its_book_breaks_down_alike(
    demo: tuple[Book, RebalanceResult], sample: tuple[Book, pd.DataFrame], tmp_path: Path
) -> None:
    """With the book of the run's date in the database, a stored run's sector, country and
    factor exposures (before from held shares, price and NAV) are the in-memory run's."""
    from riskopt.data.database import seed_book

    book, result = demo
    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    seed_book(url, book, sample[1], pipeline_run_id="demo")
    store_result(result, url)
    stored = stored_report(url, result.run.run_id)
    fresh = ReportData.of(result, book)
    assert stored.book is not None
    for column in ("sector", "country"):
        pd.testing.assert_frame_equal(
            group_exposures(stored, column), group_exposures(fresh, column), atol=1e-9
        )
    pd.testing.assert_frame_equal(factor_exposures(stored), factor_exposures(fresh), atol=1e-9)
    assert portfolio_exposures(stored).at["volatility", "proposed"] == pytest.approx(
        portfolio_exposures(fresh).at["volatility", "proposed"]
    )
    # Another book's run on the same date (here: one holding differs) borrows nothing.
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "update target_positions set current_position = current_position + 1 "
                "where ticker = :t"
            ),
            {"t": str(result.targets["ticker"].iloc[0])},
        )
    engine.dispose()
    other = stored_report(url, result.run.run_id)
    assert other.book is None and group_exposures(other, "sector") is None


def test_batch_index_links_each_book(sample: tuple[Book, pd.DataFrame], tmp_path: Path) -> None:
    book, decisions = sample
    jobs = [Job(book, decisions, "default", state="NORMAL", run_id=f"acct/{i}") for i in range(2)]
    batch = rebalance_many(jobs, "serial")
    index = write_batch_reports(batch.results, [book, book], tmp_path, workers=2)  # a pool
    text = index.read_text()
    for run in (r.run for r in batch):
        page = tmp_path / folder_name(run.run_id) / "report.html"
        assert page.is_file()
        assert f'href="{folder_name(run.run_id)}/report.html"' in text
        assert (
            f"gross {run.exposures_before['gross']:.2%} → {run.exposures_after['gross']:.2%}"
            in text
        )
    assert folder_name("acct/0") == "acct_0" and folder_name("../x") == "_x"


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(max_size=60))
def test_any_text_is_escaped_and_any_run_id_stays_in_its_folder(run_id: str, error: str) -> None:
    """Whatever a run id or an error says, the index shows it as text (no tag, no URL of
    its own making) and the run's folder is one plain name inside the batch's folder."""
    import datetime as dt

    from riskopt.optimizer.report_html import render_index
    from riskopt.optimizer.result import RunInfo

    name = folder_name(run_id)
    assert re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", name)
    run = RunInfo(
        run_id=run_id,
        as_of=dt.date(2026, 11, 20),
        created_at=dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
        status="DEGRADED",
        constraint_set="-",
        solver=None,
        solver_chain=[],
        gamma=0.0,
        error=error or None,
    )
    page = render_index([run], {0: f"{name}/report.html"})
    assert len(re.findall(r"<a\b", page)) == 1 and "<script" not in page.lower()
    assert f">{html.escape(run_id, quote=True)}</a>" in page
    if error:
        assert html.escape(error, quote=True) in page


# --- in a browser ----------------------------------------------------------------------


def _artifacts() -> Path:
    folder = Path(os.environ.get("RISKOPT_TEST_ARTIFACTS", "out/test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def _browser() -> tuple[str, str]:
    """Chromium and its driver, or a skip saying why (a failure under ``CI``)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [
        name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path
    ]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if missing:
        reason = f"{' and '.join(missing)} not found (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the browser test")
        pytest.skip(reason)
    assert chromium is not None and driver is not None
    return chromium, driver


def test_page_draws_in_a_browser(
    demo: tuple[Book, RebalanceResult], capsys: pytest.CaptureFixture[str]
) -> None:
    """Headless Chromium opens the page from a file: no console error, every chart drawn
    with a size, and a screenshot kept as the test's artifact."""
    chromium, driver_path = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    book, result = demo
    folder = _artifacts()
    path = write_report(ReportData.of(result, book), folder / "report.html")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        browser.get(path.as_uri())
        sizes = browser.execute_script(
            "return Array.from(document.querySelectorAll('figure.chart')).map(f => {"
            " const r = f.querySelector('svg').getBoundingClientRect();"
            " return [f.id, r.width, r.height]; });"
        )
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1200, min(int(height) + 40, 16000))
        shot = folder / "report.png"
        assert browser.save_screenshot(str(shot))
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        browser.quit()
    with capsys.disabled():  # shown on every run, not only on a failure
        print(f"\nreport page and its screenshot: {path}, {shot}")
    assert errors == [], json.dumps(errors, indent=1)
    assert [s[0] for s in sizes] == [f"chart-{c}" for c in CHARTS]
    for chart_id, width, height in sizes:
        assert width > 100 and height > 100, f"{chart_id} drawn {width}×{height}"
    assert shot.stat().st_size > 10_000


def test_cli_writes_the_page_and_reads_a_stored_run_back(tmp_path: Path) -> None:
    """``rebalance --out`` writes report.html beside its tables; ``report --run`` draws the
    stored run; ``--since`` with ``--run`` and an unknown run are one line and exit 2."""
    from typer.testing import CliRunner

    from riskopt.optimizer.cli import app

    runner = CliRunner()
    made = runner.invoke(app, ["synth", "--out", str(tmp_path), "--n", "30", "--k", "3"])
    assert made.exit_code == 0, made.output
    store = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    args = ["rebalance", "--book", str(tmp_path / "book"), "--decisions"]
    args += [str(tmp_path / "decisions.csv"), "--out", str(tmp_path / "out"), "--store", store]
    ran = runner.invoke(app, [*args, "--state", "NORMAL", "--run-id", "r1"])
    assert ran.exit_code == 0, ran.output
    page = (tmp_path / "out" / "report.html").read_text()
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert _cell(page, "exposure-gross-after") == f"{run['exposures_after']['gross']:.2%}"
    assert 'id="chart-sector"' in page  # the book was read again for the breakdowns
    html_path = tmp_path / "stored" / "r1.html"
    drawn = runner.invoke(app, ["report", "--db", store, "--run", "r1", "--html", str(html_path)])
    assert drawn.exit_code == 0, drawn.output
    assert (
        _cell(html_path.read_text(), "exposure-net-after") == f"{run['exposures_after']['net']:.2%}"
    )
    for bad, message in (
        (["--run", "r1", "--since", "2026-01-01"], "applies to the history report"),
        (["--run", "nope"], "no run 'nope'"),
    ):
        refused = runner.invoke(app, ["report", "--db", store, *bad])
        assert refused.exit_code == 2 and message in refused.output
        assert "Traceback" not in refused.output
