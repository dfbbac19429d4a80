"""Per-step cost of DEBA (probe + collectors + strategy + decision) against a plain training step.

ResNet-18 (torchvision, random weights, 10 classes), batch 128, 32x32 input, SGD, CPU. Plain steps
and DEBA steps are interleaved in one run so machine noise hits both alike; DEBA's own work is
also timed directly inside each DEBA step. Prints both figures.

    python benchmarks/overhead.py [--steps 20] [--batch 128] [--interval 1]
    python benchmarks/overhead.py --policy goodput   # the v2 path: the step engine with noise measurement

With ``--policy goodput`` the DEBA side runs through the step engine (probe, noise measurement
reads, scheduler with the noise and throughput estimators) and the cost of measurement steps is
*modelled*, not measured end to end (machine noise is larger than 1 %): a measurement splits a step
in two, costing ``T(B)/T(B/2) - 1`` of a step every ``k`` steps, with ``T`` timed here at ``B`` and
``B/2`` and ``k`` the scheduler's own rule.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

import deba
from deba.control.throughput import ThroughputModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--interval", type=int, default=None,
                    help="decision interval in steps (default: 1 for the v1 path, the profile's 10 for goodput)")
    ap.add_argument("--strategy", default="equal-weight")
    ap.add_argument("--policy", default="stability", choices=("stability", "goodput"))
    args = ap.parse_args()
    if args.policy == "goodput":
        return engine_overhead(args)
    args.interval = args.interval or 1

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    profile = deba.load_profile("resnet18").replace(interval=args.interval, warmup=0, cooldown=0, min_batch=8,
                                                     initial_batch=args.batch - args.batch % 8, max_batch=4096)
    sched = deba.BatchScheduler(profile, strategy=args.strategy)
    probe = deba.signals.GradientProbe(model, sketch_size=profile.sketch_size)

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


def engine_overhead(args: argparse.Namespace) -> None:
    """DEBA's own time per step on the v2 path plus the modelled cost of measurement steps."""
    from deba.training.step import StepEngine, loss_of

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    b = args.batch - args.batch % 8
    x, y = torch.randn(b, 3, 32, 32), torch.randint(0, 10, (b,))

    def plain(n: int) -> float:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x[:n]), y[:n]).backward()
        opt.step()
        return time.perf_counter() - t0

    for _ in range(3):
        plain(b), plain(b // 2)
    t_full = statistics.median(plain(b) for _ in range(args.steps))
    t_half = statistics.median(plain(b // 2) for _ in range(args.steps))
    table = {b // 2: (b // 2) / t_half, b: b / t_full}
    # Measured throughput, as in training (a fixed table would keep every read: rule 6 with a table).
    measured = ThroughputModel(skip_after_resize=0)
    for n, t in ((b // 2, t_half), (b, t_full)):
        for _ in range(3):
            measured.record(n, t)
    measured.record = lambda *_: None  # keep these figures: the benchmark's own steps are not the ones modelled
    profile = deba.load_profile("resnet18")
    profile = profile.replace(interval=args.interval or profile.interval, warmup=0, cooldown=0, min_batch=8,
                              initial_batch=b, max_batch=4096, policy="goodput")
    sched = deba.BatchScheduler(profile, strategy=args.strategy, throughput=measured)
    engine = StepEngine(model, sched, deba.signals.GradientProbe(model, sketch_size=profile.sketch_size),
                        forward_loss=loss_of(model, torch.nn.functional.cross_entropy), optimizer=opt)
    def engine_step() -> float:
        before = engine.deba_seconds
        engine.run((x, y))
        opt.step()
        engine.after_optimizer_step()
        return engine.deba_seconds - before

    # Measurement steps, forced a few times to time DEBA's own reads of the two halves.
    normal_rule = engine._measure_now
    engine._measure_now = lambda: True
    measure_own = statistics.median(engine_step() for _ in range(4))
    engine._measure_now = lambda: False
    for _ in range(3):  # warm-up
        engine_step()
    # The mean, not the median: the full gradient-norm read happens on some steps only.
    d = statistics.fmean(engine_step() for _ in range(args.steps))
    engine._measure_now = normal_rule
    sched._k_cache = None
    k = sched.measurement_interval(measure_own)
    split = max(table[b] / table[b // 2] - 1.0, 0.0)
    split_cost = (split + measure_own / t_full) / k
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, ResNet-18 batch {b} 32x32, "
          f"{args.steps} steps, policy goodput, decision interval {profile.interval} steps, "
          f"full-norm read every {engine._norm_stride()} steps")
    print(f"plain step (median)               {t_full * 1000:9.2f} ms   (batch {b // 2}: {t_half * 1000:.2f} ms)")
    print(f"DEBA's own work (mean per step)   {d * 1000:9.3f} ms = {100 * d / t_full:.3f} % of a step")
    print(f"a measurement step: split T(B)/T(B/2) - 1 = {split:.3f} of a step, DEBA's reads of the halves "
          f"{measure_own * 1000:.2f} ms = {measure_own / t_full:.3f}")
    print(f"measurement every k = {k} steps -> modelled {100 * split_cost:.3f} % of step time")
    print(f"total (own + modelled split)      {100 * (d / t_full + split_cost):9.3f} %   (target <= 1%)")


if __name__ == "__main__":
    main()
