"""The ``deba`` command line: profile, plugins, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

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
