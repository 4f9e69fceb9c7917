from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from data.book import Book
from data.loaders import load_book, load_decisions

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"


@pytest.fixture(scope="session")
def sample() -> tuple[Book, pd.DataFrame]:
    """The shipped sample book and its decisions."""
    return load_book(SAMPLES / "book"), load_decisions(SAMPLES / "decisions.csv")
