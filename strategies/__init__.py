"""Scoring strategies (``deba.strategies``): what scores stability, in [0, 1] (1 = stable).

A *strategy* (:class:`ScoringStrategy`) folds the collectors' metrics into one stability score; it
never picks a batch size (a *policy*, :mod:`deba.policies`, does). This package holds the contract
and the built-ins, each registered under the ``deba.strategies`` entry point.
"""

from deba.control.scoring import ScoringStrategy
from deba.strategies.equal_weight import EqualWeightStrategy
from deba.strategies.learned import LearnedStrategy
from deba.strategies.noise_scale import NoiseScaleStrategy
from deba.strategies.norm_test import NormTestStrategy
from deba.strategies.rule_based import RuleBasedStrategy

__all__ = ["EqualWeightStrategy", "LearnedStrategy", "NoiseScaleStrategy", "NormTestStrategy", "RuleBasedStrategy",
           "ScoringStrategy"]
