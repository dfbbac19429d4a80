"""The built wheel holds `deba` and nothing generic at top level; the core never imports HF."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_only_the_deba_package(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    wheel = next(tmp_path.glob("deba-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"deba", next(t for t in top if t.endswith(".dist-info"))}, top
    for needed in ("deba/__init__.py", "deba/strategies/equal_weight.py", "deba/adapters/__init__.py",
                   "deba/collectors/grad_variance.py", "deba/profiles/resnet18.yaml", "deba/profiles/paper.yaml"):
        assert needed in names, needed
    eps = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[deba.strategies]" in eps and "equal-weight = deba.strategies.equal_weight:EqualWeightStrategy" in eps


def test_import_deba_does_not_import_hf_or_timm():
    code = ("import sys, deba, deba.strategies, deba.adapters; "
            "bad = [m for m in ('transformers', 'accelerate', 'timm') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_subpackages_map_onto_their_folders():
    import deba.adapters
    import deba.strategies

    assert Path(deba.strategies.__file__).parent.name == "strategies"
    assert Path(deba.adapters.__file__).parent.name == "adapters"
