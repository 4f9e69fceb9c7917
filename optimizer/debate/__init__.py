"""The risk debate: Risky, Safe and Neutral analysts argue, the Risk Judge sets γ and γ_i."""

from optimizer.debate.analysts import DEFAULT_ANALYSTS, Analyst, Persona, Proposal
from optimizer.debate.debate import DebateResult, run_debate
from optimizer.debate.features import Features, compute_features
from optimizer.debate.llm import LanguageModelAnalyst
from optimizer.debate.routing import fresh_state, next_speaker

__all__ = [
    "DEFAULT_ANALYSTS",
    "Analyst",
    "DebateResult",
    "Features",
    "LanguageModelAnalyst",
    "Persona",
    "Proposal",
    "compute_features",
    "fresh_state",
    "next_speaker",
    "run_debate",
]
