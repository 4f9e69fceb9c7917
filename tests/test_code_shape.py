"""The package reads in small pieces: no function longer than 60 lines, its docstring aside.

Cyclomatic complexity (at most 15) is ruff's C901, configured in pyproject.toml and run
by ``make lint``; length has no ruff rule, so it is checked here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ("riskopt", "optimizer", "constraints", "data")
MAX_LINES = 60


def _docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        if isinstance(first.value.value, str):
            return (first.end_lineno or first.lineno) - first.lineno + 1
    return 0


def _long_functions(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - start + 1 - _docstring_lines(node)
                if length > MAX_LINES:
                    found.append(f"{path.name}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_in_the_package_is_longer_than_60_lines() -> None:
    paths = [p for folder in PACKAGE for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(paths) > 40
    assert _long_functions(paths) == []


def test_the_length_check_counts_code_not_the_docstring(tmp_path: Path) -> None:
    doc = '    """Doc,\n    on two lines."""\n'
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES - 1))
    (tmp_path / "fits.py").write_text(f"def fits():\n{doc}{body}")
    (tmp_path / "long.py").write_text(f"@staticmethod\ndef long():\n{doc}{body}    return 1\n")
    found = _long_functions([tmp_path / "fits.py", tmp_path / "long.py"])
    assert found == ["long.py:2 long (62 lines)"]
