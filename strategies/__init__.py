"""Built-in scoring strategies, registered under the ``deba.strategies`` entry point."""

from .equal_weight import EqualWeightStrategy
from .learned import LearnedStrategy
from .rule_based import RuleBasedStrategy

__all__ = ["EqualWeightStrategy", "LearnedStrategy", "RuleBasedStrategy"]
