"""`make bench` rewrites its tables in benchmarks/README.md but keeps the hand-written part."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


def test_a_rewrite_keeps_the_hand_written_part() -> None:
    run = _run_module()
    old = f"# Old tables\n\n| 1 |\n\n{run.HAND_WRITTEN}\n\n## Notes\nkept\n"
    new = run.with_hand_written("# New tables\n\n| 2 |\n", old)
    assert new == f"# New tables\n\n| 2 |\n\n{run.HAND_WRITTEN}\n\n## Notes\nkept\n"
    assert run.with_hand_written("# New\n", "# no marker\n") == "# New\n"


def test_the_shipped_readme_marks_its_hand_written_part() -> None:
    run = _run_module()
    text = (ROOT / "benchmarks" / "README.md").read_text()
    assert text.count(run.HAND_WRITTEN) == 1
    assert "## The program's constants" in text[text.index(run.HAND_WRITTEN) :]
