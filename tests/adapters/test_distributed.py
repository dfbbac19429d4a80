"""DEBA under torch.distributed (gloo, CPU): torchrun --nproc-per-node 2.

Tolerance: a 2-rank step reduces per-rank gradients in a different order than one process sums
them, so losses agree with a single-process run to float rounding (checked at rel 1e-4); the
batch-size trajectory and the sample order are checked for equality.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from deba.training.history import read_history
from helpers import FASHION_DIR

HERE = Path(__file__).resolve().parents[1]
WORKER = HERE / "ddp_worker.py"
pytestmark = pytest.mark.timeout(600)


def launch(run_dir: Path, nproc: int, *extra: str, tag: str = "run") -> None:
    env = {**os.environ, "DEBA_FASHION_MNIST": str(FASHION_DIR), "OMP_NUM_THREADS": "1"}
    if nproc == 1:
        cmd = [sys.executable, str(WORKER), str(run_dir), "--tag", tag, *extra]
    else:
        # --standalone: a local rendezvous on a free port (no clash between consecutive launches)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               str(WORKER), str(run_dir), "--tag", tag, *extra]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def steps(run_dir: Path, rank: int = 0):
    name = "history.jsonl" if rank == 0 else f"history-rank{rank}.jsonl"
    return [r for r in read_history(run_dir / "log" / name) if r["kind"] == "step"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 2-rank run and a single-process run of the same global batches and seed."""
    two, one = tmp_path_factory.mktemp("two"), tmp_path_factory.mktemp("one")
    launch(two, 2)
    launch(one, 1)
    return two, one


@pytest.mark.slow
def test_ranks_agree_and_every_sample_is_seen_once_per_epoch(reference):
    two, _ = reference
    s0, s1 = steps(two, 0), steps(two, 1)
    assert len(s0) == len(s1) > 10
    for a, b in zip(s0, s1):
        assert (a["batch_size"], a["next_batch_size"], a["action"], a["reason"], a["score"]) == \
               (b["batch_size"], b["next_batch_size"], b["action"], b["reason"], b["score"])
    assert len({r["batch_size"] for r in s0}) > 2, "the batch size changed during the run"
    # every sample exactly once per epoch, across both ranks
    per_epoch: dict[int, Counter] = {}
    for r in range(2):
        lines = (two / f"order-run-rank{r}.txt").read_text().splitlines()
        # micro-batches of one step follow each other; map lines to steps by local batch sizes
        local = [rec["local_batch_size"] for rec in steps(two, r)]
        ids = [int(i) for line in lines for i in line.split()]
        pos = 0
        for rec, size in zip(steps(two, r), local):
            per_epoch.setdefault(rec["epoch"], Counter()).update(ids[pos : pos + size])
            pos += size
    for epoch, counts in per_epoch.items():
        assert sorted(counts) == list(range(400)) and set(counts.values()) == {1}, epoch


@pytest.mark.slow
def test_goodput_under_ddp_ranks_agree_and_measure_the_noise(tmp_path):
    """The v2 default under DDP (fixed table): the ranks are the noise estimator's small estimates,
    rank 0 decides, and every rank records the same decisions and noise scale."""
    launch(tmp_path, 2, "--policy", "goodput", tag="gp")
    s0, s1 = steps(tmp_path, 0), steps(tmp_path, 1)
    assert len(s0) == len(s1) > 10
    for a, b in zip(s0, s1):
        assert (a["batch_size"], a["next_batch_size"], a["action"], a["reason"], a["noise_scale"], a["lr_factor"]) == \
               (b["batch_size"], b["next_batch_size"], b["action"], b["reason"], b["noise_scale"], b["lr_factor"])
    assert any(r["noise_scale"] is not None for r in s0), "the ranks' estimates give a noise scale"
    assert any(r["action"] == "grow" for r in s0), "goodput grew"


@pytest.mark.slow
def test_two_ranks_follow_the_single_process_trajectory(reference):
    two, one = reference
    a, b = steps(two), steps(one)
    assert [r["batch_size"] for r in a] == [r["batch_size"] for r in b]
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("first,second", [(2, 1), (1, 2)])
def test_resume_on_a_different_world_size(reference, tmp_path, first, second):
    two, _ = reference
    full = steps(two)
    total = sum(r["batch_size"] for r in full)
    launch(tmp_path, first, "--max-samples", str(total // 2), tag="first")
    cut = steps(tmp_path)
    assert 0 < len(cut) < len(full)
    launch(tmp_path, second, "--resume", tag="second")
    resumed = steps(tmp_path)
    assert [r["batch_size"] for r in resumed] == [r["batch_size"] for r in full], "same global batches"
    assert [r["next_batch_size"] for r in resumed] == [r["next_batch_size"] for r in full], "same scheduler decisions"
    assert [r["loss"] for r in resumed] == pytest.approx([r["loss"] for r in full], rel=1e-4)
    # same sample order: the union of every step's shards equals the uninterrupted run's global batch
    ref_sets = step_sets_from_micro(two, "run", 2, full)
    got = step_sets_from_micro(tmp_path, "first", first, cut) + \
        step_sets_from_micro(tmp_path, "second", second, resumed[len(cut):])
    assert got == ref_sets


def step_sets_from_micro(run_dir: Path, tag: str, nproc: int, hist: list[dict]) -> list[frozenset]:
    """Global sample set of each step, rebuilt from each rank's per-forward id log and local sizes."""
    per_rank_ids = {}
    for r in range(nproc):
        per_rank_ids[r] = [int(i) for line in (run_dir / f"order-{tag}-rank{r}.txt").read_text().splitlines()
                           for i in line.split()]
    # local sizes per step per rank: strided shards of the global batch
    out, pos = [], {r: 0 for r in range(nproc)}
    for rec in hist:
        g = rec["batch_size"]
        batch = set()
        for r in range(nproc):
            size = len(range(r, g, nproc))
            batch |= set(per_rank_ids[r][pos[r] : pos[r] + size])
            pos[r] += size
        out.append(frozenset(batch))
    return out


@pytest.mark.slow
def test_hf_trainer_on_two_processes(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(HERE / "hf_ddp_worker.py"), str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "accelerate processes 2" in r.stdout
    h0 = [x for x in read_history(tmp_path / "deba_history.jsonl")]
    h1 = [x for x in read_history(tmp_path / "deba_history-rank1.jsonl")]
    assert len(h0) == len(h1) > 5
    assert [(a["batch_size"], a["next_batch_size"], a["score"]) for a in h0] == \
           [(b["batch_size"], b["next_batch_size"], b["score"]) for b in h1], "ranks never disagree"
    assert len({a["batch_size"] for a in h0}) > 1
    assert all(a["local_batch_size"] + b["local_batch_size"] == a["batch_size"] for a, b in zip(h0, h1))
    fetched = Counter()
    for rank in (0, 1):
        fetched.update(int(line) for line in (tmp_path / f"fetched-rank{rank}.txt").read_text().split())
    n = max(fetched) + 1
    assert sum(fetched.values()) == 3 * n and set(fetched.values()) == {3}, "every sample once per epoch (3 epochs)"
