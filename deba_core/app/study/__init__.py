"""The study (docs/benchmarks.md): DEBA v2 against a tuned fixed batch and published schedules.

``spec`` (tasks, presets, methods), ``methods`` (each method's ``deba.fit`` configuration),
``throughput`` (the timed table), ``cells`` (one run), ``runner`` (the resumable study),
``analysis`` / ``ceiling`` (targets, costs to target, intervals, the physical limit), ``truth``
(branched critical-batch runs), ``report`` and ``plots`` (results.json, results.md, figures).
"""

from deba.app.study.analysis import (bootstrap_mean, choose_best, cost_to_target, modelled_time, plateau_target,
                                     run_modelled_time)
from deba.app.study.ceiling import goodput_ceiling, throughput_bound
from deba.app.study.methods import MethodConfig, method_config, published_rule
from deba.app.study.report import analyse, markdown, summary
from deba.app.study.runner import load_task_data, plan, run_study
from deba.app.study.spec import METHODS, PRESETS, SWEEP, Preset, Task, sweep_name
from deba.app.study.truth import critical_batch, noise_truth

__all__ = ["METHODS", "PRESETS", "SWEEP", "MethodConfig", "Preset", "Task", "analyse", "bootstrap_mean", "choose_best",
           "cost_to_target", "critical_batch", "goodput_ceiling", "load_task_data", "markdown", "method_config",
           "modelled_time", "noise_truth", "plan", "plateau_target", "published_rule", "run_modelled_time", "run_study",
           "summary", "sweep_name", "throughput_bound"]
