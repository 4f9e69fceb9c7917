"""riskopt: a vectorized convex risk gate; proposed trades in, limit-compliant targets out.

The public API lives here::

    import riskopt

    book = riskopt.load_book("path/to/book")
    decisions = riskopt.load_decisions("path/to/decisions.csv")
    result = riskopt.rebalance(book, decisions, "default", state="NORMAL")

    # One strategy's target weights, a Series indexed by ticker:
    decisions = riskopt.load_decisions(weights, strategy="momentum")

The engine, the constraint families and the data layer are the subpackages
``riskopt.optimizer``, ``riskopt.constraints`` and ``riskopt.data``.
"""

from riskopt._version import __version__
from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.errors import ConfigError
from riskopt.constraints.states import BlackSwanState
from riskopt.data.book import Book
from riskopt.data.errors import (
    BookLoadError,
    DatabaseMissingError,
    RiskoptError,
    StoreError,
    ValidationError,
)
from riskopt.data.loaders import load_book, load_decisions
from riskopt.optimizer.batch import Job, rebalance_many
from riskopt.optimizer.rebalance import rebalance, rebalance_summary
from riskopt.optimizer.result import BookSummary, RebalanceResult, RunInfo

__all__ = [
    "BlackSwanState",
    "Book",
    "BookLoadError",
    "BookSummary",
    "ConfigError",
    "ConstraintSet",
    "DatabaseMissingError",
    "Job",
    "RebalanceResult",
    "RiskoptError",
    "RunInfo",
    "StoreError",
    "ValidationError",
    "__version__",
    "load_book",
    "load_decisions",
    "rebalance",
    "rebalance_many",
    "rebalance_summary",
]
