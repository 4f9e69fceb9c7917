"""Input contracts, loaders, synthetic universes and storage of riskopt.

This package knows pandas and SQLAlchemy and nothing of cvxpy.
"""

from data.book import Book
from data.errors import RiskoptError, ValidationError

__all__ = ["Book", "RiskoptError", "ValidationError"]
