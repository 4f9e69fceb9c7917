"""The project's typed errors. Callers catch them by kind; each lists every problem."""

from __future__ import annotations

from collections.abc import Iterable


class RiskoptError(Exception):
    """Base of every error riskopt raises on purpose."""


class ValidationError(RiskoptError):
    """An input table or value breaks its contract.

    ``problems`` holds one human-readable line per problem, so a caller sees every
    issue of a table at once rather than the first one only.
    """

    def __init__(self, what: str, problems: Iterable[str]) -> None:
        self.what = what
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid {what}: {len(self.problems)} problem(s)\n{lines}")

    def one_line(self) -> str:
        """The error as one line, for a command-line message."""
        return f"invalid {self.what}: " + "; ".join(self.problems)


class BookLoadError(RiskoptError):
    """The portfolio state could not be loaded at all (missing file, unreadable table)."""


class StoreError(RiskoptError):
    """The runtime database cannot be used as asked (its URL never shows a password)."""


class DatabaseMissingError(StoreError):
    """A migration was asked of a database that does not exist; only ``db init`` creates one."""
