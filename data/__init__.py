"""Input contracts, loaders, synthetic universes and storage of riskopt.

This package knows pandas and SQLAlchemy and nothing of cvxpy.
"""

from pathlib import Path

from riskopt.data.book import Book
from riskopt.data.errors import RiskoptError, ValidationError
from riskopt.data.risk_model import RiskModelSettings

SAMPLES = Path(__file__).resolve().parent / "samples"
"""The shipped sample book (``book/``) and its decisions (``decisions.csv``)."""

__all__ = ["SAMPLES", "Book", "RiskModelSettings", "RiskoptError", "ValidationError"]
