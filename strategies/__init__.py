"""Built-in scoring strategies, registered under the ``deba.strategies`` entry point."""

from .equal_weight import EqualWeightStrategy
from .learned import LearnedStrategy
from .noise_scale import NoiseScaleStrategy
from .norm_test import NormTestStrategy
from .rule_based import RuleBasedStrategy

__all__ = ["EqualWeightStrategy", "LearnedStrategy", "NoiseScaleStrategy", "NormTestStrategy", "RuleBasedStrategy"]
