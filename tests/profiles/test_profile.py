"""ArchitectureProfile validation, built-ins, file round trips."""

from __future__ import annotations

import json

import pytest

import deba
from deba.profiles.formats import dumps_toml
from deba.profiles.loading import parse_profile_text

BASE = dict(
    name="t", family="cnn", min_batch=16, max_batch=256, initial_batch=32, granularity=8,
    growth_factor=1.5, shrink_factor=1.25, increase_above=0.7, decrease_below=0.4, window=6,
)


def make(**changes):
    data = dict(BASE)
    data.update(changes)
    return deba.ArchitectureProfile(**data)


# Every constraint: (changes, field path that must be named, value echoed)
BAD = [
    ({"growth_factor": 1.0}, "growth_factor", "1.0"),
    ({"growth_factor": 0.9}, "growth_factor", "0.9"),
    ({"shrink_factor": 0.8}, "shrink_factor", "0.8"),
    ({"increase_above": 1.5}, "increase_above", "1.5"),
    ({"decrease_below": -0.1}, "decrease_below", "-0.1"),
    ({"decrease_below": 0.8}, "decrease_below", "0.8"),
    ({"min_batch": 0}, "min_batch", "0"),
    ({"min_batch": 512, "initial_batch": 512}, "min_batch", "512"),
    ({"initial_batch": 8}, "initial_batch", "8"),
    ({"initial_batch": 512}, "initial_batch", "512"),
    ({"initial_batch": 36}, "initial_batch", "36"),
    ({"max_batch": 260}, "max_batch", "260"),
    ({"granularity": 0}, "granularity", "0"),
    ({"window": 1}, "window", "1"),
    ({"min_samples": 7}, "min_samples", "7"),
    ({"min_samples": 1}, "min_samples", "1"),
    ({"cooldown": -1}, "cooldown", "-1"),
    ({"warmup": -2}, "warmup", "-2"),
    ({"interval": 0}, "interval", "0"),
    ({"interval": "weekly"}, "interval", "weekly"),
    ({"weights": {"loss_variation": -1.0}}, "weights.loss_variation", "-1.0"),
    ({"weights": {"loss_variation": 0.0}}, "weights", "0.0"),
    ({"weights": {}}, "weights", "{}"),
    ({"tau": {"loss_variation": 0.0}}, "tau.loss_variation", "0.0"),
    ({"lr_scaling": "cubic"}, "lr_scaling", "cubic"),
    ({"family": "lstm"}, "family", "lstm"),
    ({"name": ""}, "name", "''"),
    ({"name": "has space"}, "name", "has space"),
    ({"rules": [{"metric": "loss_variation", "op": "!=", "threshold": 1, "verdict": "grow"}]}, "rules[0].op", "!="),
    ({"rules": [{"metric": "loss_variation", "op": ">", "threshold": 1, "verdict": "explode"}]}, "rules[0].verdict", "explode"),
    ({"rules": [{"metric": "loss_variation", "op": ">", "threshold": float("nan"), "verdict": "grow"}]}, "rules[0].threshold", "nan"),
    ({"calibration": {"intervals": 10, "horizon": 10}}, "calibration.horizon", "10"),
    ({"calibration": {"intervals": 2}}, "calibration.intervals", "2"),
    ({"max_micro_batch": 0}, "max_micro_batch", "0"),
    ({"nonfinite_patience": 0}, "nonfinite_patience", "0"),
    ({"sketch_size": 4}, "sketch_size", "4"),
    ({"min_batch": "16"}, "min_batch", "'16'"),
    ({"min_batch": True}, "min_batch", "True"),
    ({"growth_factor": float("inf")}, "growth_factor", "inf"),
    ({"unknown_knob": 3}, "unknown_knob", "3"),
]


@pytest.mark.parametrize("changes,field,shown", BAD, ids=[b[1] + "=" + b[2] for b in BAD])
def test_every_constraint_gives_a_config_error_naming_field_and_value(changes, field, shown):
    with pytest.raises(deba.DebaConfigError) as info:
        make(**changes)
    err = info.value
    assert isinstance(err, ValueError)
    assert field in err.fields, err.fields
    assert f"`{field}`" in str(err) and shown in str(err)


def test_several_problems_are_all_reported():
    with pytest.raises(deba.DebaConfigError) as info:
        make(growth_factor=0.5, window=1, lr_scaling="x")
    assert {"growth_factor", "window", "lr_scaling"} <= set(info.value.fields)


def test_profiles_are_frozen_and_replace_validates():
    p = make()
    with pytest.raises(Exception):
        p.growth_factor = 3.0  # type: ignore[misc]
    assert p.replace(growth_factor=3.0).growth_factor == 3.0
    with pytest.raises(deba.DebaConfigError):
        p.replace(growth_factor=0.5)


def test_builtins_exist_and_encode_the_published_findings():
    ps = deba.builtin_profiles()
    for name in ("resnet18", "resnet50", "densenet121", "efficientnet_b0", "mobilenetv3", "vit_b16", "generic"):
        assert ps[name].name == name
    light = [ps[n] for n in ("mobilenetv3", "efficientnet_b0", "resnet18")]
    deep = [ps[n] for n in ("resnet50", "densenet121")]
    vit = ps["vit_b16"]
    # lightweight nets grow faster and earlier than deep ones; ViT is the most conservative
    assert min(p.growth_factor for p in light) > max(p.growth_factor for p in deep) > vit.growth_factor
    assert max(p.increase_above for p in light) < min(p.increase_above for p in deep) < vit.increase_above
    assert max(p.cooldown for p in light) < min(p.cooldown for p in deep) <= vit.cooldown
    assert max(p.warmup for p in light) < min(p.warmup for p in deep) <= vit.warmup
    # v2: the same differences as shares of the run, the goodput policy, the LR rule by optimizer
    # (Adam-family, as ViTs train, gets sqrt); the published rule stays reproducible as `paper`.
    assert max(p.shares.warmup for p in light) < min(p.shares.warmup for p in deep) < vit.shares.warmup
    assert max(p.shares.cooldown for p in light) <= min(p.shares.cooldown for p in deep) < vit.shares.cooldown
    for p in ps.values():
        expected = ("stability", "linear") if p.name == "paper" else ("goodput", "auto")
        assert (p.policy, p.lr_scaling) == expected, p.name
        assert (p.shares is None) == (p.name == "paper"), p.name


def test_the_papers_epoch_defaults_are_expressible_exactly():
    p = deba.load_profile("paper")
    assert p.interval == "epoch" and p.window == 15 and p.cooldown >= 5
    assert p.growth_factor == 1.5 and 1 / p.shrink_factor == 0.8
    assert (p.min_batch, p.max_batch) == (16, 2048)
    sched = deba.BatchScheduler(p)
    assert sched.observe(deba.Observation(loss=1.0, batch_size=128)).reason == "collecting until the epoch ends"


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json", ".toml"])
@pytest.mark.parametrize("name", sorted(deba.builtin_profiles()))
def test_to_file_round_trips_through_load_profile(tmp_path, name, suffix):
    p = deba.load_profile(name).replace(max_micro_batch=64)
    path = p.to_file(tmp_path / f"p{suffix}")
    assert deba.load_profile(path) == p
    assert deba.load_profile(str(path)) == p


def test_toml_writer_handles_optional_none_and_rules(tmp_path):
    p = make(min_samples=None, rules=[])
    text = dumps_toml(p.to_dict())
    assert "min_samples" not in text
    assert parse_profile_text(text, "toml") == p


def test_load_profile_errors_are_config_errors(tmp_path):
    with pytest.raises(deba.DebaConfigError, match="available: .*resnet18"):
        deba.load_profile("resnet19")
    with pytest.raises(deba.DebaConfigError, match="not an existing file"):
        deba.load_profile(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(deba.DebaConfigError, match="not valid YAML at line") as info:
        deba.load_profile(bad)
    assert info.value.fields == ["<document>"]
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**BASE, "growth_factor": 0.5}))
    with pytest.raises(deba.DebaConfigError, match="growth_factor") as info:
        deba.load_profile(wrong)
    assert info.value.fields == ["growth_factor"]
    with pytest.raises(deba.DebaConfigError):
        deba.load_profile(tmp_path / "profile.txt")
    with pytest.raises(deba.DebaConfigError):
        deba.load_profile(42)  # type: ignore[arg-type]


def test_json_schema_describes_every_field():
    schema = deba.ArchitectureProfile.model_json_schema()
    for field in ("growth_factor", "interval", "weights", "tau", "rules", "calibration", "lr_scaling"):
        assert field in schema["properties"]
    assert schema["additionalProperties"] is False


def test_lr_factor_rules():
    assert make(lr_scaling="linear").lr_factor(64) == 2.0
    assert make(lr_scaling="sqrt").lr_factor(128) == 2.0
    assert make(lr_scaling="none").lr_factor(128) == 1.0
