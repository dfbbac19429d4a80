"""Checkpoint folders: the pointer never names a folder that is being replaced."""

from __future__ import annotations

import torch

from deba.training.checkpoint import STATE_FORMAT, STATE_VERSION, latest_checkpoint, load_checkpoint, save_checkpoint


def _state(n: int) -> dict:
    return {"format": STATE_FORMAT, "version": STATE_VERSION, "n": n}


def test_a_second_save_at_the_same_step_never_removes_the_folder_latest_points_at(tmp_path, monkeypatch):
    weights = {"model": {"w": torch.zeros(2)}}
    first = save_checkpoint(tmp_path, 7, weights, _state(1))
    removed = []
    import deba.training.checkpoint as ckpt

    real_rmtree = ckpt.shutil.rmtree

    def watch(path, *a, **k):
        # while the second save runs, the pointer must still name a complete folder
        pointed = latest_checkpoint(tmp_path)
        assert pointed != path, "removed the folder latest.json points at"
        removed.append(path)
        return real_rmtree(path, *a, **k)

    monkeypatch.setattr(ckpt.shutil, "rmtree", watch)
    second = save_checkpoint(tmp_path, 7, {"model": {"w": torch.ones(2)}}, _state(2))
    assert second != first and latest_checkpoint(tmp_path) == second
    w, state = load_checkpoint(second)
    assert state["n"] == 2 and float(w["model"]["w"].sum()) == 2.0
    for step in (8, 9):
        save_checkpoint(tmp_path, step, weights, _state(step))
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000008", "step-00000009"], "keeps the newest two"
    assert latest_checkpoint(tmp_path).name == "step-00000009"
