"""Metric collectors: the signals DEBA watches."""

from .base import MetricCollector
from .grad_norm_variation import GradientNormVariationCollector
from .grad_variance import GradientVarianceCollector, noise_ratio_from_estimates
from .loss_variation import LossVariationCollector, detrended_cv
from .windowed import ScalarWindowCollector

__all__ = [
    "GradientNormVariationCollector",
    "GradientVarianceCollector",
    "LossVariationCollector",
    "MetricCollector",
    "ScalarWindowCollector",
    "detrended_cv",
    "noise_ratio_from_estimates",
]
