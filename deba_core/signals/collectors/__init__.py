"""Metric collectors: the signals DEBA watches."""

from deba.signals.collectors.base import MetricCollector
from deba.signals.collectors.deviation import (
    DeviationCollector,
    GradientNormDeviationCollector,
    LossDeviationCollector,
    detrended_std,
)
from deba.signals.collectors.grad_norm_variation import GradientNormVariationCollector
from deba.signals.collectors.grad_variance import GradientVarianceCollector, noise_ratio_from_estimates
from deba.signals.collectors.loss_variation import LossVariationCollector, detrended_cv
from deba.signals.collectors.windowed import ScalarWindowCollector

__all__ = [
    "DeviationCollector",
    "GradientNormDeviationCollector",
    "LossDeviationCollector",
    "detrended_std",
    "GradientNormVariationCollector",
    "GradientVarianceCollector",
    "LossVariationCollector",
    "MetricCollector",
    "ScalarWindowCollector",
    "detrended_cv",
    "noise_ratio_from_estimates",
]
