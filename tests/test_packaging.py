"""Packaging: the wheel built from a clean copy of the tree holds `deba` (every package folder, the
profile data) and nothing generic at top level, and it works when installed on its own; the core
never imports HF."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: source folder -> import package it becomes in the wheel (mirrors setup.py's ROOTS)
FOLDERS = {"deba_core": "deba", "strategies": "deba/strategies", "adapters": "deba/adapters"}

#: entries of the test environment's site-packages the fresh venv must not see: deba's editable
#: install (its .pth, finder and dist-info) and the example plugin's editable install.
_HIDDEN_PREFIXES = ("__editable__.deba-", "__editable___deba_", "deba-", "deba.",
                    "__editable__.deba_example_strategy", "deba_example_strategy")


def _hidden(name: str) -> bool:
    return name == "deba" or name.startswith(_HIDDEN_PREFIXES)


def _clean_copy(dest: Path) -> Path:
    """Copy the git-tracked plus untracked-not-ignored files (what a fresh clone plus work in progress
    holds; never build/, *.egg-info or .venv) into ``dest``."""
    try:
        listing = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                                 check=True, capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # pragma: no cover - not a git checkout (an sdist)
        skip = {".git", ".venv", "build", "dist", "runs", "__pycache__", ".pytest_cache", ".hypothesis"}
        listing = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()
                   and not (set(p.relative_to(ROOT).parts) & skip) and ".egg-info" not in str(p)]
    for rel in filter(None, listing):
        src = ROOT / rel
        if not src.is_file():  # tracked but deleted in the working tree
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    return dest


def _expected_files(tree: Path) -> tuple[set[str], set[str]]:
    """(package ``__init__.py`` paths, all other module/data paths) the wheel must hold, from the folders."""
    packages, files = set(), set()
    for folder, target in FOLDERS.items():
        for init in (tree / folder).rglob("__init__.py"):
            pkg = init.parent
            rel = pkg.relative_to(tree / folder)
            # a folder is a package only if every folder from the root down to it has an __init__.py
            if any(not (tree / folder / Path(*rel.parts[:i]) / "__init__.py").is_file()
                   for i in range(len(rel.parts))):
                continue
            dest = PurePosixPath(target, *rel.parts)
            packages.add(str(dest / "__init__.py"))
            files.update(str(dest / py.name) for py in pkg.glob("*.py"))
    yamls = sorted((tree / "deba_core" / "profiles" / "data").glob("*.yaml"))
    assert yamls, "no profile data in deba_core/profiles/data/"
    files.update(f"deba/profiles/data/{y.name}" for y in yamls)
    return packages, files


def _build_wheel(tree: Path, dist: Path) -> Path:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(dist), "."],
        cwd=tree, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    (wheel,) = dist.glob("deba-*.whl")
    return wheel


def _fresh_venv(venv: Path) -> tuple[Path, Path]:
    """A venv without pip whose only view of the test environment's dependencies is a directory of
    symlinks to its site-packages minus deba's and the example plugin's editable installs."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   capture_output=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True, env=_clean_env(venv)).stdout.strip())
    deps = venv.parent / "deps"
    deps.mkdir()
    source = Path(sysconfig.get_paths()["purelib"])
    for entry in source.iterdir():
        if not _hidden(entry.name):
            (deps / entry.name).symlink_to(entry)
    (site / "test-env-deps.pth").write_text(f"{deps}\n")
    return py, site


def _clean_env(venv: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT") if k in os.environ}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), os.environ.get("PATH", os.defpath)])
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONNOUSERSITE="1")
    return env


def _install_console_scripts(wheel: zipfile.ZipFile, names: list[str], venv: Path, py: Path) -> list[str]:
    """Write the launchers pip would write for the wheel's ``console_scripts``; returns their names."""
    eps = configparser.ConfigParser(delimiters=("=",))
    eps.optionxform = str  # keep the names' case
    eps.read_string(wheel.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode())
    scripts = []
    for name, target in eps["console_scripts"].items() if eps.has_section("console_scripts") else ():
        module, _, attr = target.strip().partition(":")
        launcher = venv / "bin" / name
        launcher.write_text(f"#!{py}\nimport sys\nfrom {module} import {attr.split('.')[0]}\n"
                            f"sys.exit({attr.strip()}())\n")
        launcher.chmod(0o755)
        scripts.append(name)
    return scripts


@pytest.mark.slow
def test_wheel_from_clean_tree_installs_and_runs_in_a_fresh_venv(tmp_path):
    tree = _clean_copy(tmp_path / "src")
    assert not (tree / "build").exists() and not list(tree.glob("*.egg-info"))
    wheel_path = _build_wheel(tree, tmp_path / "dist")

    # -- the file list against the package folders --------------------------------------------
    wheel = zipfile.ZipFile(wheel_path)
    names = wheel.namelist()
    top = {n.split("/")[0] for n in names}
    dist_infos = {t for t in top if t.endswith(".dist-info")}
    assert len(dist_infos) == 1 and top - dist_infos == {"deba"}, f"top-level entries: {sorted(top)}"
    packages, files = _expected_files(tree)
    missing = sorted((packages | files) - set(names))
    assert not missing, f"wheel {wheel_path.name} lacks: {missing}"
    assert "deba/py.typed" in names

    # -- a fresh venv that sees the dependencies but not the source tree ----------------------
    venv = tmp_path / "venv"
    py, site = _fresh_venv(venv)
    wheel.extractall(site)
    scripts = _install_console_scripts(wheel, names, venv, py)
    assert scripts == ["deba"], scripts

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _clean_env(venv)

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), cwd=work, env=env, capture_output=True, text=True, timeout=120)

    probe = run(str(py), "-c", "import sys, deba; print(deba.__file__); "
                "print(any(type(f).__module__.startswith('__editable__') for f in sys.meta_path)); "
                "print('\\n'.join(sys.path))")
    assert probe.returncode == 0, probe.stderr
    deba_file, editable, *path = probe.stdout.splitlines()
    assert Path(deba_file).resolve().is_relative_to(site.resolve()), deba_file
    assert not Path(deba_file).resolve().is_relative_to(ROOT), deba_file
    assert editable == "False", "the editable finder leaked into the fresh venv"
    leaked = [p for p in path if p and Path(p).resolve().is_relative_to(ROOT)]
    assert not leaked, f"the fresh venv's sys.path reaches the source tree: {leaked}"

    deba = str(venv / "bin" / "deba")
    for argv in (["run", "--help"], ["bench", "--help"], ["plugins"]):
        proc = run(deba, *argv)
        assert proc.returncode == 0, f"deba {' '.join(argv)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert proc.stdout.strip(), f"deba {' '.join(argv)} printed nothing"

    eps = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
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
