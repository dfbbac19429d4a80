"""Metric collectors: the signals a strategy scores (``deba.collectors``).

A collector (:class:`MetricCollector`) turns one :class:`deba.Observation` per decision interval
into one number under its ``name``; a strategy (:mod:`deba.strategies`) scores those numbers.
This module re-exports the contract, the two base classes that do the windowing
(:class:`ScalarWindowCollector`, :class:`DeviationCollector`) and every built-in collector: the v2
defaults (``loss_deviation``, ``grad_norm_deviation``) and the v1 signals (``grad_variance``,
``grad_norm_variation``, ``loss_variation``). They are defined in ``deba.signals.collectors``.

Example:
    >>> import deba.collectors
    >>> sorted(c.name for c in (deba.collectors.LossDeviationCollector, deba.collectors.GradientVarianceCollector))
    ['grad_variance', 'loss_deviation']
"""

from deba.signals.collectors import (
    DeviationCollector,
    GradientNormDeviationCollector,
    GradientNormVariationCollector,
    GradientVarianceCollector,
    LossDeviationCollector,
    LossVariationCollector,
    MetricCollector,
    ScalarWindowCollector,
)

__all__ = ["DeviationCollector", "GradientNormDeviationCollector", "GradientNormVariationCollector",
           "GradientVarianceCollector", "LossDeviationCollector", "LossVariationCollector", "MetricCollector",
           "ScalarWindowCollector"]
