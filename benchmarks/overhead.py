"""Per-step cost of DEBA (probe + collectors + strategy + decision) against a plain training step.

ResNet-18 (torchvision, random weights, 10 classes), batch 128, 32x32 input, SGD, CPU. Plain steps
and DEBA steps are interleaved in one run so machine noise hits both alike; DEBA's own work is
also timed directly inside each DEBA step. Prints both figures.

    python benchmarks/overhead.py [--steps 20] [--batch 128] [--interval 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

import deba


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--interval", type=int, default=1, help="decision interval in steps (1 = decide every step)")
    ap.add_argument("--strategy", default="equal-weight")
    args = ap.parse_args()

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    profile = deba.load_profile("resnet18").replace(interval=args.interval, warmup=0, cooldown=0, min_batch=8,
                                                     initial_batch=args.batch - args.batch % 8, max_batch=4096)
    sched = deba.BatchScheduler(profile, strategy=args.strategy)
    probe = deba.GradientProbe(model, sketch_size=profile.sketch_size)

    def step(with_deba: bool) -> tuple[float, float]:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        t1 = time.perf_counter()
        if with_deba:
            sched.observe(probe.observe(loss.item(), args.batch))
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        return t3 - t0, t2 - t1

    for _ in range(3):  # warm-up: allocator, kernels
        step(True)
        step(False)
    plain, with_deba, deba_only = [], [], []
    for _ in range(args.steps):
        plain.append(step(False)[0])
        total, own = step(True)
        with_deba.append(total)
        deba_only.append(own)

    p, w, d = statistics.median(plain), statistics.median(with_deba), statistics.median(deba_only)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, ResNet-18 batch {args.batch} 32x32, "
          f"{args.steps} interleaved steps each, decision interval {args.interval}")
    print(f"plain step (median)            {p * 1000:9.2f} ms")
    print(f"DEBA step (median)             {w * 1000:9.2f} ms")
    print(f"DEBA's own work (median)       {d * 1000:9.3f} ms  (probe + collectors + strategy + decision)")
    print(f"overhead, DEBA's own / plain   {100 * d / p:9.3f} %   (target <= 1%)")
    print(f"overhead, end to end           {100 * (w - p) / p:9.3f} %   (noisy: includes machine jitter)")


if __name__ == "__main__":
    main()
