"""How a step's micro-batches run and what small gradient estimates they yield (the noise
measurement paths of the step engine), and which steps measure."""

from deba.training.measurement.base import Measured, Measurement, MicroBatchRunner
from deba.training.measurement.estimates import MicroNorm, SampleTally, SmallEstimates
from deba.training.measurement.interval import MeasurementInterval
from deba.training.measurement.per_sample import PerSampleStep, read_manual
from deba.training.measurement.plain import PlainStep
from deba.training.measurement.ranks import AcrossRanks
from deba.training.measurement.shadow_half import ShadowHalf, pair_with_full
from deba.training.measurement.split import SplitStep

__all__ = [
    "AcrossRanks", "Measured", "Measurement", "MeasurementInterval", "MicroBatchRunner", "MicroNorm",
    "PerSampleStep", "PlainStep", "SampleTally", "ShadowHalf", "SmallEstimates", "SplitStep", "pair_with_full",
    "read_manual",
]
