"""Errors of constraint sets."""

from __future__ import annotations

from collections.abc import Iterable

from riskopt.data.errors import RiskoptError


class ConfigError(RiskoptError):
    """A constraint set is invalid or impossible; ``problems`` names every TOML key at fault."""

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"invalid constraint set {source}: {len(self.problems)} problem(s)\n{lines}"
        )

    def one_line(self) -> str:
        return f"invalid constraint set {self.source}: " + "; ".join(self.problems)
