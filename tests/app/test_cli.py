"""The ``deba`` command line: profile, plugins, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

import deba
from deba.app.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "deba", *args], capture_output=True, text=True)


def test_profile_prints_traits_and_profile_as_yaml(capsys):
    assert main(["profile", "resnet18"]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert out["detection"]["profile"] == "resnet18" and out["detection"]["match"] == "exact"
    assert out["traits"]["n_residual_add"] == 8
    assert deba.ArchitectureProfile.model_validate(out["profile"]).name == "resnet18"


def test_profile_schema_and_profile_names(capsys):
    assert main(["profile", "--schema"]) == 0
    assert "growth_factor" in json.loads(capsys.readouterr().out)["properties"]
    assert main(["profile", "paper"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["profile"]["interval"] == "epoch"


def test_unknown_model_is_a_clear_error_without_traceback():
    r = run("profile", "resnet81")
    assert r.returncode == 2
    assert "resnet81" in r.stderr and "Did you mean" in r.stderr and "Traceback" not in r.stderr


def test_plugins_lists_every_group():
    r = run("plugins", "--format", "json")
    rows = json.loads(r.stdout)
    groups = {row["group"] for row in rows}
    assert {"deba.strategies", "deba.collectors", "deba.profiles"} <= groups
    assert all(row["status"] == "ok" for row in rows), rows
    assert any(row["name"] == "equal-weight" and row["distribution"] == "deba" for row in rows)


# Bad option values: one line on stderr, exit 2, nothing written --------------------------------

BAD_VALUES = [
    ("run", ["--train-subset", "0"], "--train-subset", "0"),
    ("run", ["--test-subset", "-5"], "--test-subset", "-5"),
    ("run", ["--lr", "-1"], "--lr", "-1"),
    ("run", ["--lr", "nan"], "--lr", "nan"),
    ("run", ["--lr", "inf"], "--lr", "inf"),
    ("run", ["--epochs", "0"], "--epochs", "0"),
    ("run", ["--epochs", "abc"], "--epochs", "abc"),
    ("run", ["--channels", "0"], "--channels", "0"),
    ("run", ["--size", "4"], "--size", "4"),
    ("run", ["--model", "small-cnn", "--size", "48"], "--size", "48"),  # small-cnn takes 32x32 only
    ("run", ["--batch", "0"], "--batch", "0"),
    ("run", ["--seeds", "0"], "--seeds", "0"),
    ("run", ["--seed", "-1"], "--seed", "-1"),
    ("run", ["--max-micro-batch", "0"], "--max-micro-batch", "0"),
    ("run", ["--strategy", "no-such-strategy"], "--strategy", "no-such-strategy"),
    ("run", ["--compare", "dynamic:3"], "--compare", "dynamic:3"),
    ("run", ["--compare", "static:0"], "--compare", "static:0"),
    ("run", ["--device", "tpu-x"], "--device", "tpu-x"),
    ("run", ["--device", "cuda:99"], "--device", "cuda:99"),
    ("run", ["--optimizer", "rmsprop"], "--optimizer", "rmsprop"),
    ("run", ["--dataset", "imagenet"], "--dataset", "imagenet"),
    ("calibrate", ["--train-subset", "0"], "--train-subset", "0"),
    ("calibrate", ["--lr", "-1"], "--lr", "-1"),
    ("calibrate", ["--epochs", "0"], "--epochs", "0"),
    ("calibrate", ["--grow-quantile", "2"], "--grow-quantile", "2"),
    ("calibrate", ["--grow-quantile", "nan"], "--grow-quantile", "nan"),
    ("calibrate", ["--shrink-quantile", "-0.1"], "--shrink-quantile", "-0.1"),
    ("calibrate", ["--grow-quantile", "0.1", "--shrink-quantile", "0.5"], "--grow-quantile", "0.1"),
    ("calibrate", ["--output", "profile.txt"], "--output", "profile.txt"),
    ("calibrate", ["--strategy", "no-such-strategy"], "--strategy", "no-such-strategy"),
    ("calibrate", ["--name", "bad name"], "--name", "bad name"),
    ("bench", ["--seeds", "0"], "--seeds", "0"),
    ("bench", ["--seeds", "-2"], "--seeds", "-2"),
    ("bench", ["--device", "tpu-x"], "--device", "tpu-x"),
    ("bench", ["--preset", "huge"], "--preset", "huge"),
    ("bench", ["--tasks", "resnet19"], "tasks", "resnet19"),
    ("bench", ["--preset", "cpu", "--methods", "fixed-best"], "fixed-best", "sweep"),
    ("bench", ["--deba-set", "growth_factr=2"], "growth_factr", "2"),
    ("bench", ["--deba-set", "warmup"], "--deba-set", "warmup"),
]


@pytest.mark.parametrize("cmd,args,option,value", BAD_VALUES, ids=[f"{c}{' '.join(a)}" for c, a, _, _ in BAD_VALUES])
def test_bad_values_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, cmd, args, option, value):
    out = tmp_path / "out"
    assert main([cmd, *args, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"deba {cmd}: error: ") and option in lines[0] and value in lines[0], lines[0]
    assert "Traceback" not in captured.err
    assert not out.exists(), "a refused run must not create its folder"
    assert not (tmp_path / "runs").exists()


def test_checks_happen_before_data_is_loaded(tmp_path, capsys, monkeypatch):
    import deba.app.commands.common as common

    def no_loading(args):
        raise AssertionError("data was loaded before the options were checked")

    monkeypatch.setattr(common, "load_dataset", no_loading)
    assert main(["run", "--train-subset", "0", "--out", str(tmp_path / "o")]) == 2
    assert main(["calibrate", "--lr", "nan", "--out", str(tmp_path / "o")]) == 2
    assert "--lr" in capsys.readouterr().err


def test_help_and_version_return_0(capsys):
    assert main(["--version"]) == 0
    assert main(["run", "--help"]) == 0
    assert "--train-subset" in capsys.readouterr().out
