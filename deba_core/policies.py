"""Batch policies: what decides the batch once the stability score is known (``deba.policies``).

A *policy* (:class:`BatchPolicy`) turns the stability score and the measured signals
(:class:`PolicySignals`) into a :class:`Move`: the batch it asks for, grow/shrink/hold, and why.
A *strategy* (:mod:`deba.strategies`) only scores stability in [0, 1]; the policy decides the batch.
This module re-exports the contract and every built-in policy; they are defined in ``deba.control``.

Example:
    >>> import deba
    >>> from deba.policies import PolicySignals, StabilityPolicy
    >>> StabilityPolicy(deba.load_profile("generic")).propose(32, 0.99, PolicySignals(initial_batch=32)).action
    'grow'
"""

from deba.control.baselines import SeesawPolicy, UngatedGoodputPolicy
from deba.control.goodput import GoodputPolicy
from deba.control.policy import BatchPolicy, Move, PolicySignals, StabilityPolicy, next_batch_size

__all__ = ["BatchPolicy", "GoodputPolicy", "Move", "PolicySignals", "SeesawPolicy", "StabilityPolicy",
           "UngatedGoodputPolicy", "next_batch_size"]
