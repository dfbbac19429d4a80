"""Architecture profiles: the schema, its validation, file formats, built-ins and detection.

Imports only ``deba.errors`` and ``deba.registry`` from the rest of DEBA.
"""

from deba.profiles.detection import Detection, build_model, detect, profile_for
from deba.profiles.loading import builtin_profiles, load_profile, parse_profile_text, resolve_profile
from deba.profiles.schema import ArchitectureProfile, CalibrationSettings, Rule
from deba.profiles.traits import ArchitectureTraits, measure_traits

__all__ = [
    "ArchitectureProfile",
    "ArchitectureTraits",
    "CalibrationSettings",
    "Detection",
    "Rule",
    "build_model",
    "builtin_profiles",
    "detect",
    "load_profile",
    "measure_traits",
    "parse_profile_text",
    "profile_for",
    "resolve_profile",
]
