"""The riskopt engine: the convex risk gate, its diff, storage hook and CLI."""

from optimizer.rebalance import rebalance
from optimizer.result import RebalanceResult, RunInfo

__all__ = ["RebalanceResult", "RunInfo", "rebalance"]
