"""History: a bounded tail in memory, the whole run on disk, the same file behaviour for every adapter."""

from __future__ import annotations

import torch

import deba
from deba.training.history import HistoryWriter, read_history


def test_memory_keeps_a_bounded_tail_and_the_file_keeps_everything(tmp_path):
    w = HistoryWriter(tmp_path, tensorboard=False, keep=5)
    w.start()
    for i in range(50):
        w.write({"kind": "step", "step": i})
    assert len(w.records) == 5 and [r["step"] for r in w.records] == list(range(45, 50))
    assert w.count == 50 and [r["step"] for r in w.all_records()] == list(range(50))
    w.truncate_to(20)
    assert w.count == 20 and [r["step"] for r in w.records] == list(range(15, 20))
    w.close()
    assert len(read_history(tmp_path / "history.jsonl")) == 20


def test_a_new_run_starts_the_file_afresh_and_a_resumed_one_continues(tmp_path):
    for start in (None, None):
        w = HistoryWriter(tmp_path, tensorboard=False)
        w.start(start)
        for i in range(3):
            w.write({"kind": "step", "step": i})
        w.close()
    assert len(read_history(tmp_path / "history.jsonl")) == 3, "a second fresh run does not append to the first"
    w = HistoryWriter(tmp_path, tensorboard=False)
    w.start(resumed_records=2)
    w.write({"kind": "step", "step": 99})
    w.close()
    assert [r["step"] for r in read_history(tmp_path / "history.jsonl")] == [0, 1, 99]


def test_fit_returns_a_bounded_tail_and_reads_the_full_history_from_its_file(tmp_path):
    x, y = torch.randn(240, 4), torch.randint(0, 2, (240,))

    def run(log_dir):
        model = torch.nn.Linear(4, 2)
        return deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                        loss_fn=torch.nn.functional.cross_entropy, profile="mlp", epochs=2, progress=False,
                        log_dir=log_dir, tensorboard=False, history_in_memory=4)

    res = run(tmp_path / "log")
    assert len(res.tail) == 4
    assert len(res.step_records()) == res.steps > 4, "the full history comes from history.jsonl"
    again = run(tmp_path / "log")
    assert len(again.history) == len(res.history), "a new fit run in the same log_dir starts the file afresh"
    memory_only = run(None)
    assert len(memory_only.history) == 4, "without a log_dir only the tail exists"


def test_fit_leaves_the_global_rng_alone_when_asked():
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    model = torch.nn.Linear(4, 2)
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=torch.nn.functional.cross_entropy,
             profile="mlp", epochs=1, progress=False, reseed=False, seed=7)
    assert torch.rand(1) == expected, "reseed=False: fit drew nothing from the global RNG"
