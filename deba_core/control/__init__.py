"""Deciding the batch size: scoring, policies, the scheduler and its decisions.

Imports ``deba.errors``, ``deba.registry``, ``deba.profiles`` and ``deba.signals`` at most.
"""

from deba.control.decision import Decision
from deba.control.goodput import GoodputPolicy
from deba.control.policy import BatchPolicy, PolicySignals, StabilityPolicy
from deba.control.scheduler import BatchScheduler, next_batch_size
from deba.control.scoring import ScoringStrategy

__all__ = ["BatchPolicy", "BatchScheduler", "Decision", "GoodputPolicy", "PolicySignals", "ScoringStrategy",
           "StabilityPolicy", "next_batch_size"]
