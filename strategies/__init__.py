"""Built-in scoring strategies, registered under the ``deba.strategies`` entry point."""

from deba.strategies.equal_weight import EqualWeightStrategy
from deba.strategies.learned import LearnedStrategy
from deba.strategies.noise_scale import NoiseScaleStrategy
from deba.strategies.norm_test import NormTestStrategy
from deba.strategies.rule_based import RuleBasedStrategy

__all__ = ["EqualWeightStrategy", "LearnedStrategy", "NoiseScaleStrategy", "NormTestStrategy", "RuleBasedStrategy"]
