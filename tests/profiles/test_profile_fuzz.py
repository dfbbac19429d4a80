"""Malformed profile documents yield only DebaConfigError with a field path - never another exception."""

from __future__ import annotations

import json

import yaml
from hypothesis import given
from hypothesis import strategies as st

import deba
from deba.profiles.formats import dumps_toml
from deba.profiles.loading import parse_profile_text

VALID = deba.load_profile("generic").to_dict()

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c, max_size=4)), max_leaves=12)


def check(text: str, fmt: str) -> None:
    try:
        parse_profile_text(text, fmt)
    except deba.DebaConfigError as exc:
        assert exc.problems and all(p.field for p in exc.problems)


@given(st.text(max_size=300), st.sampled_from(["yaml", "json", "toml"]))
def test_arbitrary_text(text, fmt):
    check(text, fmt)


@given(st.dictionaries(st.sampled_from(sorted(VALID) + ["extra", "Name"]), values, max_size=8))
def test_mutated_documents(changes):
    doc = {**VALID, **changes}
    check(yaml.safe_dump(doc), "yaml")
    check(json.dumps(doc), "json")
    try:
        text = dumps_toml(doc)
    except (deba.DebaConfigError, TypeError, ValueError):
        return  # not every mutation is representable as TOML
    check(text, "toml")


@given(st.text(max_size=200), st.integers(0, 400))
def test_corrupted_valid_files(garbage, at):
    for fmt, text in (("yaml", yaml.safe_dump(VALID)), ("json", json.dumps(VALID)), ("toml", dumps_toml(VALID))):
        cut = at % (len(text) + 1)
        check(text[:cut] + garbage + text[cut:], fmt)


@given(st.dictionaries(st.sampled_from(sorted(VALID)), values, min_size=1, max_size=3))
def test_errors_name_a_real_field(changes):
    doc = {**VALID, **changes}
    try:
        deba.ArchitectureProfile.model_validate(doc)
    except deba.DebaConfigError as exc:
        for p in exc.problems:
            assert p.field.split(".")[0].split("[")[0] in set(VALID) | {"<root>"}
