"""What the study trains: tasks, presets and methods (docs/benchmarks.md, "Protocol").

A *task* is a dataset, a model and a training budget sized so the fixed starting batch reaches a
plateau on this machine; a *preset* is a set of tasks, seeds and methods. Every method trains with
the task's one LR schedule (``schedule.py``: a cosine annealed to 1 % by 75 % of the budget, then
held, where the runs are to plateau; a plain cosine for the short ``cpu`` and ``quick`` runs),
counted in samples of the budget's clock (so "grow without raising the LR" never stands in for a
missing decay), through ``deba.fit``, on the same step engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deba.app.study.schedule import check_schedule
from deba.errors import DebaConfigError

__all__ = ["METHODS", "PRESETS", "Preset", "SWEEP", "Task", "sweep_name"]

#: The study's methods, in run order within a seed (the baseline first, so targets exist early).
METHODS = ("fixed-small", "fixed-best", "seesaw", "goodput-ungated", "deba-paper", "deba", "deba-uniform")
#: The fixed-batch sweep behind ``fixed-best``: (batch multiple of B0, LR rule).
SWEEP = tuple((k, rule) for k in (2, 4, 8) for rule in ("linear", "sqrt"))


def sweep_name(k: int, rule: str) -> str:
    """The cell name of one sweep configuration (``1x`` is ``fixed-small``)."""
    return "fixed-small" if k == 1 else f"sweep-{k}x-{rule}"


@dataclass(frozen=True)
class Task:
    """One task of the study.

    Attributes:
        name: the task's name in results (``fashion-mlp``).
        dataset, model: what ``deba.app.data.load_dataset`` and ``deba.app.models.make_model`` build.
        size, channels: input shape (images are resized / repeated over channels).
        train_subset, test_subset: sample counts (``None``: the whole split).
        epochs: the budget, in epochs of the training set (counted in starting-batch-equivalent
            samples by the methods that measure the noise, in samples by the others).
        batch: the starting batch ``B0`` (the fixed-small baseline's batch; the LR belongs to it).
        lr, optimizer: SGD with momentum 0.9 and weight decay 5e-4, or AdamW (weight decay 0.05).
        evals: evaluations per run, at equal shares of the budget.
        max_micro_batch: memory cap per forward/backward (``None``: none).
        schedule: the LR schedule of every method (``held`` or ``cosine``, see ``schedule.py``).
    """

    name: str
    dataset: str
    model: str
    size: int
    channels: int
    train_subset: int | None
    test_subset: int | None
    epochs: float
    batch: int
    lr: float = 0.05
    optimizer: str = "sgd"
    evals: int = 20
    max_micro_batch: int | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    schedule: str = "held"

    def __post_init__(self) -> None:
        check_schedule(self.schedule)


@dataclass(frozen=True)
class Preset:
    """A study size: tasks, seeds, methods and data.

    Attributes:
        sweep: run the fixed-batch sweep (``fixed-best``); without it ``fixed-best`` is not planned.
        truth: the task whose noise scale is checked against branched critical-batch runs (or ``None``).
        download: CIFAR through torchvision's downloader (the ``paper`` preset).
    """

    name: str
    tasks: tuple[Task, ...]
    seeds: int
    methods: tuple[str, ...] = METHODS
    sweep: bool = True
    truth: str | None = None
    download: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        for m in self.methods:
            if m not in METHODS:
                raise DebaConfigError.single("methods", m, f"must be among {', '.join(METHODS)}")


_CPU_NOTE = ("the six architectures on Fashion-MNIST subsets (32x32, 3 channels), 3 seeds, the fixed starting "
             "batch against DEBA, its architecture ablation and the published rule: the per-architecture table")

PRESETS: dict[str, Preset] = {
    "small": Preset(
        "small",
        (
            # Samples/s grow ~2-3x from batch 32 to 512 here: the trade-off is real.
            Task("fashion-mlp", "fashion-mnist", "small-mlp", 28, 1, None, None, epochs=20, batch=32),
            # ResNet-18's layout at width 8 (0.18M parameters, CIFAR stem) on a subset: the middle
            # case, samples/s grow 1.2-1.3x from batch 32 to 256-512 (the study's tables on two
            # machines of this kind). Full-width ResNet-18 runs ~75 samples/s at batch 32 here,
            # too slow for 41 runs. 16 epochs: at 8 the held tail plateaus starved (seed 1: 86.1 %
            # against the full cosine's 87.8 %); at 16 it plateaus at 88.0 %.
            Task("fashion-resnet", "fashion-mnist", "small-resnet", 32, 1, 5000, None, epochs=16, batch=32, lr=0.05,
                 model_kwargs={"width": 8}),
            # The no-harm case: this CNN runs *slower* per sample at larger batches on a CPU.
            Task("fashion-cnn", "fashion-mnist", "small-cnn", 32, 1, 12000, None, epochs=8, batch=32),
        ),
        seeds=5,
        truth="fashion-mlp",
        note="Three Fashion-MNIST tasks trained to a plateau, full 10,000-image test set, 5 seeds, every method.",
    ),
    "quick": Preset(
        "quick",
        (Task("fashion-mlp", "fashion-mnist", "small-mlp", 28, 1, 6000, 2000, epochs=3, batch=32, evals=6,
              schedule="cosine"),),
        seeds=1,
        note="One small task, one seed, every method: a smoke-scale study (a few minutes).",
    ),
    "cpu": Preset(
        "cpu",
        # Short runs by design (4 epochs of a subset, far from a plateau on this machine): a full
        # cosine, which gets the most out of a short budget; the held tail would leave them starved.
        (
            Task("resnet18", "fashion-mnist", "resnet18", 32, 3, 2400, 1000, epochs=4, batch=32, evals=8,
                 max_micro_batch=256, schedule="cosine"),
            Task("resnet50", "fashion-mnist", "resnet50", 32, 3, 900, 500, epochs=4, batch=32, evals=8,
                 max_micro_batch=256, schedule="cosine"),
            Task("densenet121", "fashion-mnist", "densenet121", 32, 3, 800, 500, epochs=4, batch=32, evals=8,
                 max_micro_batch=256, schedule="cosine"),
            Task("efficientnet_b0", "fashion-mnist", "efficientnet_b0", 32, 3, 1000, 500, epochs=4, batch=32,
                 lr=2e-3, optimizer="adamw", evals=8, max_micro_batch=256, schedule="cosine"),
            Task("mobilenetv3", "fashion-mnist", "mobilenetv3_large_100", 32, 3, 1200, 500, epochs=4, batch=32,
                 lr=2e-3, optimizer="adamw", evals=8, max_micro_batch=256, schedule="cosine"),
            Task("vit_b16", "fashion-mnist", "vit_tiny_patch16_224", 32, 3, 1200, 500, epochs=4, batch=32, lr=1e-3,
                 optimizer="adamw", evals=8, max_micro_batch=256, model_kwargs={"img_size": 32, "patch_size": 4},
                 schedule="cosine"),
        ),
        seeds=3,
        methods=("fixed-small", "deba", "deba-uniform", "deba-paper"),
        sweep=False,
        note=_CPU_NOTE,
    ),
    "paper": Preset(
        "paper",
        tuple(
            Task(name, "cifar10", model, 32, 3, None, None, epochs=100, batch=128, lr=lr, optimizer=opt, evals=25,
                 max_micro_batch=512, model_kwargs=kw)
            for name, model, lr, opt, kw in (
                ("resnet18", "resnet18", 0.1, "sgd", {}),
                ("resnet50", "resnet50", 0.1, "sgd", {}),
                ("densenet121", "densenet121", 0.1, "sgd", {}),
                ("efficientnet_b0", "efficientnet_b0", 2e-3, "adamw", {}),
                ("mobilenetv3", "mobilenetv3_large_100", 2e-3, "adamw", {}),
                ("vit_b16", "vit_base_patch16_224", 5e-4, "adamw", {"img_size": 32, "patch_size": 4}),
            )
        ),
        seeds=5,
        download=True,
        note="The paper's setting: full CIFAR-10 (torchvision download), full-size models, 5 seeds; for a GPU.",
    ),
}
