"""Package discovery for the ``deba`` distribution (everything else is in pyproject.toml).

The import package ``deba`` is built from three folders: ``deba_core/`` (the library),
``strategies/`` (``deba.strategies``) and ``adapters/`` (``deba.adapters``). Subpackages are
*discovered* under each, so a new folder with an ``__init__.py`` is always in the wheel.
"""

from setuptools import find_packages, setup

ROOTS = {"deba": "deba_core", "deba.strategies": "strategies", "deba.adapters": "adapters"}


def discover() -> list[str]:
    packages = []
    for name, folder in ROOTS.items():
        packages.append(name)
        packages.extend(f"{name}.{sub}" for sub in find_packages(folder))
    return packages


setup(packages=discover(), package_dir=dict(ROOTS))
