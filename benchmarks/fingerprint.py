"""Trajectory fingerprints: does a refactor leave training bit-identical?

Runs a handful of short ``deba.fit`` / ``DebaController`` runs that cover each measurement path of
the step engine (per-sample norms, a split step, a BatchNorm shadow half, micro-batches, the
published rule, a fixed batch, a resume) with a fixed throughput table, so decisions depend on
the observations only, and writes every step's batch size, loss (exact ``repr``), LR factor,
decision reason and the final weights' checksum as JSON.

    python benchmarks/fingerprint.py runs/fp-before.json     # on the old code
    python benchmarks/fingerprint.py runs/fp-after.json      # on the new code
    python benchmarks/fingerprint.py --compare runs/fp-before.json runs/fp-after.json

``--compare`` prints the first difference of each case and exits 1 if any differs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

import deba

TABLE = {b: 400.0 * b ** 0.5 for b in (8, 16, 32, 64, 128, 256, 512, 1024)}


def _data(n: int, shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    w = torch.randn(int(torch.tensor(shape).prod()), 4, generator=g)
    y = (x.flatten(1) @ w).argmax(1)
    return x, y


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def _cnn(bn: bool) -> nn.Module:
    norm = nn.BatchNorm2d(4) if bn else nn.Identity()
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), norm, nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, 4))


def _digest(model: nn.Module) -> str:
    return repr(float(sum(p.detach().double().sum() * (i + 1) for i, p in enumerate(model.parameters()))))


def _steps(records: list[dict]) -> list[list]:
    return [[r["batch_size"], repr(r["loss"]), repr(r.get("lr_factor")), r.get("decision")]
            for r in records if r.get("kind") == "step"]


def _fit_case(model_fn, shape, **kw) -> dict:
    torch.manual_seed(0)
    model = model_fn()
    x, y = _data(1024, shape, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    kw.setdefault("throughput", TABLE)
    res = deba.fit(model, (x, y), optimizer=opt, loss_fn=nn.functional.cross_entropy, progress=False,
                   tensorboard=False, probe_throughput=False, batch_size=16, **kw)
    return {"steps": _steps(res.history), "weights": _digest(model), "samples": res.samples,
            "equivalent": repr(res.equivalent_samples)}


def _resume_case() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        kw = dict(profile="mlp", epochs=3, checkpoint_dir=tmp, checkpoint_every=25, log_dir=tmp + "/log")
        torch.manual_seed(0)
        model = _mlp()
        x, y = _data(1024, (16,), 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        common = dict(optimizer=opt, loss_fn=nn.functional.cross_entropy, progress=False, tensorboard=False,
                      probe_throughput=False, batch_size=16, throughput=TABLE)
        deba.fit(model, (x, y), max_samples=1200, **common, **kw)
        res = deba.fit(model, (x, y), resume=True, **common, **kw)
        return {"steps": _steps(res.history), "weights": _digest(model), "samples": res.samples}


def _controller_case() -> dict:
    torch.manual_seed(0)
    model = _mlp()
    x, y = _data(1024, (16,), 1)
    data = torch.utils.data.TensorDataset(x, y)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sampler = deba.AdaptiveBatchSampler(data, batch_size=16, seed=0)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler)
    ctl = deba.DebaController(model, opt, sampler=sampler, profile="mlp")
    rows = []
    for _ in range(2):
        for xb, yb in loader:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            d = ctl.after_backward(loss, batch_size=len(yb))
            if ctl.step_ok:
                opt.step()
            rows.append([len(yb), repr(float(loss)), repr(d.lr_factor), d.reason])
        ctl.end_epoch()
    return {"steps": rows, "weights": _digest(model)}


CASES = {
    "mlp-goodput-per-sample": lambda: _fit_case(_mlp, (16,), profile="mlp", epochs=4),
    "mlp-goodput-micro": lambda: _fit_case(_mlp, (16,), profile="mlp", epochs=3, max_micro_batch=8),
    "cnn-split": lambda: _fit_case(lambda: _cnn(False), (1, 6, 6), profile="generic", epochs=3),
    "cnn-bn-shadow": lambda: _fit_case(lambda: _cnn(True), (1, 6, 6), profile="resnet18", epochs=3),
    "mlp-stability-paper": lambda: _fit_case(_mlp, (16,), profile="paper", epochs=3, policy="stability"),
    "mlp-fixed": lambda: _fit_case(_mlp, (16,), profile="mlp", epochs=2, fixed_batch=16),
    "mlp-samples-budget": lambda: _fit_case(_mlp, (16,), profile="mlp", epochs=3, budget="samples"),
    "mlp-resume": _resume_case,
    "controller": _controller_case,
}


def compare(a_path: str, b_path: str) -> int:
    a, b = json.loads(Path(a_path).read_text()), json.loads(Path(b_path).read_text())
    bad = 0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print(f"{name}: only in {'second' if name not in a else 'first'}")
            bad += 1
            continue
        if a[name] == b[name]:
            print(f"{name}: identical ({len(a[name]['steps'])} steps)")
            continue
        bad += 1
        sa, sb = a[name]["steps"], b[name]["steps"]
        first = next((i for i, (u, v) in enumerate(zip(sa, sb)) if u != v), min(len(sa), len(sb)))
        print(f"{name}: DIFFERS at step {first + 1} of {len(sa)}/{len(sb)}: "
              f"{sa[first] if first < len(sa) else None} vs {sb[first] if first < len(sb) else None}; "
              f"weights {a[name]['weights']} vs {b[name]['weights']}")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", help="where to write the fingerprints (JSON)")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    ap.add_argument("--cases", nargs="*", choices=sorted(CASES))
    args = ap.parse_args()
    if args.compare:
        return compare(*args.compare)
    if not args.out:
        ap.error("give an output file or --compare")
    torch.set_num_threads(1)
    result = {}
    for name in args.cases or CASES:
        result[name] = CASES[name]()
        print(name, len(result[name]["steps"]), "steps", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
