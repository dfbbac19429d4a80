"""The architecture study: plan, a tiny end-to-end run, resume, analysis, presets' dry runs."""

from __future__ import annotations

import json

import pytest

import deba
from deba.app.cli import main
from deba.app.study import METHODS, PRESETS, ArchSpec, Preset, analyse, markdown_table, plan, run_study, summary
from helpers import FASHION_DIR

TINY = Preset("tiny", (ArchSpec("resnet18", "small-cnn", 192, 96, 2, max_micro_batch=64),), seeds=1, interval=2)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tiny_study_runs_resumes_and_analyses(tmp_path):
    logs = []
    records = run_study(TINY, tmp_path, data_dir=str(FASHION_DIR), log=logs.append)
    assert {r["method"] for r in records} == set(METHODS)
    assert any(line.startswith("[throughput]") for line in logs)
    for r in records:
        assert r["curve"] and r["steps"] > 0 and 0 <= r["final_accuracy"] <= 1
        assert all(d["step"] <= r["steps"] and set(d["metrics"]) for d in r["decisions"])
    assert any(r["decisions"] for r in records), "no cell recorded a decision interval's metrics"
    fixed_large = next(r for r in records if r["method"] == "fixed-large")
    assert fixed_large["batch_sizes"][-1] == 4 * deba.load_profile("resnet18").initial_batch
    assert fixed_large["lr"] == pytest.approx(4 * 0.05)
    # a rerun resumes: nothing is trained again
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").glob("*/*.json")}
    again = []
    run_study(TINY, tmp_path, data_dir=str(FASHION_DIR), log=again.append)
    assert not any(line.startswith("[") and "seed" in line for line in again)
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").glob("*/*.json")}
    analysis = summary(tmp_path, TINY, "test")
    rows = analysis["architectures"]["resnet18"]["methods"]
    assert rows["fixed-small"]["reached_target"] == 1 and rows["fixed-small"]["wall_speedup"][0] == pytest.approx(1.0)
    assert analysis["architectures"]["resnet18"]["throughput_bound"] >= 1.0
    assert (tmp_path / "results.json").exists() and (tmp_path / "speedups.png").exists()
    assert "| resnet18" in (tmp_path / "results.md").read_text()
    # an experiment with other DEBA values is refused in a folder of finished cells (never mixed in)
    with pytest.raises(deba.DebaConfigError, match="deba_overrides.*differ from those of the finished cell") as err:
        run_study(TINY, tmp_path, data_dir=str(FASHION_DIR), deba_overrides={"lr_scaling": "sqrt"}, log=again.append)
    assert "own --out folder" in str(err.value)


def test_analysis_math_on_synthetic_cells(tmp_path):
    def cell(method, seed, times, accs, steps):
        curve = [{"epoch": i + 1, "train_time": t, "samples": 100 * (i + 1), "steps": s, "accuracy": a}
                 for i, (t, a, s) in enumerate(zip(times, accs, steps))]
        return {"arch": "resnet18", "method": method, "seed": seed, "final_accuracy": accs[-1], "curve": curve,
                "batch_sizes": [32], "deba_time": 0.1, "train_time": times[-1]}

    (tmp_path / "cells" / "resnet18").mkdir(parents=True)
    for c in (cell("fixed-small", 0, [10, 20, 30], [0.5, 0.8, 0.9], [10, 20, 30]),
              cell("deba", 0, [5, 10, 15], [0.7, 0.9, 0.91], [4, 8, 12])):
        (tmp_path / "cells" / "resnet18" / f"{c['method']}-seed0.json").write_text(json.dumps(c))
    a = analyse(tmp_path, target_fraction=1.0)["architectures"]["resnet18"]
    assert a["target_accuracy_pct"] == pytest.approx(90.0)
    deba_row = a["methods"]["deba"]
    assert deba_row["time_to_target_s"][0] == 10 and deba_row["wall_speedup"][0] == pytest.approx(3.0)
    assert deba_row["step_speedup"][0] == pytest.approx(30 / 8)
    assert "3.00x" in markdown_table({"architectures": {"resnet18": a}})


def test_presets_are_sized_and_dry_runs_check_the_setup(capsys):
    assert len(plan(PRESETS["quick"])) == 2 * len(METHODS)
    assert {a.profile for a in PRESETS["cpu"].archs} == {"resnet18", "resnet50", "densenet121", "efficientnet_b0",
                                                         "mobilenetv3", "vit_b16"}
    assert PRESETS["paper"].seeds == 5 and PRESETS["paper"].download and PRESETS["paper"].dataset == "cifar10"
    assert main(["bench", "--preset", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "180 runs on cifar10" in out and "download=True" in out
    assert main(["bench", "--preset", "cpu", "--dry-run", "--data-dir", str(FASHION_DIR)]) == 0
    assert "108 runs" in capsys.readouterr().out
    with pytest.raises(deba.DebaConfigError):
        plan(PRESETS["quick"], ("deba", "sgd-magic"))


def test_methods_get_the_right_profile_strategy_batch_and_lr():
    from deba.app.study import _profile_for

    quick = PRESETS["quick"]
    arch = quick.archs[0]  # resnet18, 1600 samples
    prof, strategy, fixed, lr = _profile_for(quick, arch, "deba")
    assert (prof.name, strategy, fixed, lr) == ("resnet18", "equal-weight", None, 1.0)
    assert prof.interval == round(1600 / 32 / 4), "quarter of an epoch at the initial batch"
    assert _profile_for(quick, arch, "deba-uniform")[0].name == "generic"
    assert _profile_for(quick, arch, "noise-scale")[1] == "noise-scale"
    assert _profile_for(quick, arch, "fixed-large")[2:] == (128, 4.0)
    assert _profile_for(PRESETS["paper"], PRESETS["paper"].archs[0], "deba")[0].interval == "epoch"


def test_experiments_pick_architectures_and_change_only_debas_profile(capsys):
    from deba.app.commands.bench import parse_deba_set
    from deba.app.study import _profile_for

    cpu = PRESETS["cpu"]
    cells = plan(cpu, ("fixed-small", "deba"), archs=("mobilenetv3", "resnet18"))
    assert [a.profile for a, _, _ in cells[::6]] == ["resnet18", "mobilenetv3"], "preset order kept"
    assert len(cells) == 2 * 2 * cpu.seeds
    with pytest.raises(deba.DebaConfigError, match="archs.*must be among.*resnet19"):
        plan(cpu, archs=("resnet19",))

    overrides = parse_deba_set(["lr_scaling=sqrt", "warmup=8", "increase_above=0.7"])
    assert overrides == {"lr_scaling": "sqrt", "warmup": 8, "increase_above": 0.7}
    arch = cpu.archs[0]
    prof = _profile_for(cpu, arch, "deba", overrides)[0]
    assert (prof.lr_scaling, prof.warmup, prof.increase_above) == ("sqrt", 8, 0.7)
    for method in ("fixed-small", "deba-uniform", "noise-scale"):
        assert _profile_for(cpu, arch, method, overrides)[0].lr_scaling != "sqrt", method
    for bad, field in ((["warmup"], "--deba-set"), (["=3"], "--deba-set")):
        with pytest.raises(deba.DebaConfigError, match=field):
            parse_deba_set(bad)
    with pytest.raises(deba.DebaConfigError, match="lr_scaling"):
        _profile_for(cpu, arch, "deba", {"lr_scaling": "cubic"})

    assert main(["bench", "--preset", "cpu", "--dry-run", "--data-dir", str(FASHION_DIR), "--archs", "resnet18",
                 "--methods", "fixed-small", "deba", "--deba-set", "lr_scaling=sqrt"]) == 0
    out = capsys.readouterr().out
    assert "1 architectures x 2 methods x 3 seeds = 6 runs" in out and "mobilenetv3" not in out
    assert main(["bench", "--preset", "cpu", "--dry-run", "--data-dir", str(FASHION_DIR),
                 "--deba-set", "growth_factr=2"]) == 2
    assert "growth_factr" in capsys.readouterr().err
