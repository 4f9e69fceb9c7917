"""The riskopt engine: the convex risk gate, its diff, storage hook and CLI."""

from riskopt.optimizer.rebalance import rebalance, rebalance_summary
from riskopt.optimizer.result import BookSummary, RebalanceResult, RunInfo

__all__ = ["BookSummary", "RebalanceResult", "RunInfo", "rebalance", "rebalance_summary"]
