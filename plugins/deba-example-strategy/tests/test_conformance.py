from deba.testing import StrategyConformance
from deba_example_strategy import WorstMetricStrategy


class TestWorstMetric(StrategyConformance):
    strategy_class = WorstMetricStrategy
