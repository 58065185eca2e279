"""Package discovery for the kubetune namespace (everything else is in pyproject.toml).

The folders operator/ and trainer/ become kubetune.operator and kubetune.trainer
through package-dir; setuptools cannot find mapped sub-packages by itself, so
they are listed from the __init__.py files on disk.
"""

from pathlib import Path

from setuptools import setup

PACKAGE_ROOTS = {"kubetune": "kubetune", "kubetune.operator": "operator", "kubetune.trainer": "trainer"}


def mapped_packages():
    for package, folder in PACKAGE_ROOTS.items():
        for init in sorted(Path(folder).rglob("__init__.py")):
            yield ".".join([package, *init.parent.relative_to(folder).parts])


setup(packages=list(mapped_packages()))
