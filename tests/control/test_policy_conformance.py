"""Every built-in policy passes the conformance suite plugin authors use (deba.testing)."""

from __future__ import annotations

import deba
from deba.control.baselines import SeesawPolicy, UngatedGoodputPolicy, cosine_halvings
from deba.control.goodput import GoodputPolicy
from deba.control.policy import PolicySignals, StabilityPolicy
from deba.testing import PolicyConformance


class TestStability(PolicyConformance):
    policy_class = StabilityPolicy


class TestGoodput(PolicyConformance):
    policy_class = GoodputPolicy
    profile_name = "mlp"


class TestSeesaw(PolicyConformance):
    policy_class = SeesawPolicy


class TestSeesawOnAHeldSchedule(PolicyConformance):
    policy_class = SeesawPolicy
    options = {"schedule": lambda t: max(0.01, 1.0 - t / 0.75)}  # a linear decay to a held floor


class TestUngatedGoodput(PolicyConformance):
    policy_class = UngatedGoodputPolicy
    profile_name = "resnet18"


def test_seesaw_doubles_where_the_cosine_halves_and_never_shrinks():
    p = SeesawPolicy(deba.load_profile("mlp"))
    sizes, batch = [], 32
    for t in [i / 100 for i in range(101)]:
        batch = p.propose(batch, 0.0, PolicySignals(initial_batch=32, progress=t)).batch_size
        sizes.append(batch)
    assert sizes[49] == 32 and sizes[50] == 64, "the first halving of the cosine is at half the run"
    assert sizes == sorted(sizes) and sizes[-1] == 2048
    assert cosine_halvings(2 / 3 + 1e-9) == 2
    assert p.propose(32, 1.0, PolicySignals(initial_batch=32)).action == "hold", "no budget, no schedule"


def test_ungated_goodput_grows_where_the_gated_one_holds():
    from deba.control.throughput import ThroughputModel

    prof = deba.load_profile("mlp")
    s = PolicySignals(initial_batch=32, noise_scale=500.0, noise_scale_low=400.0,
                      throughput=ThroughputModel({32: 1000.0, 48: 1400.0, 64: 1800.0}))
    assert GoodputPolicy(prof).propose(32, 0.1, s).action != "grow"
    assert UngatedGoodputPolicy(prof).propose(32, 0.1, s).batch_size == 64
    assert deba.BatchScheduler("mlp", policy="goodput-ungated").policy.name == "goodput-ungated"
