"""Kubetune's SDK is a drop-in for Databricks' `databricks.model_training.foundation_model`.

Databricks' package (the release pinned in databricks-genai.constraints) is installed into its own venv under
.cache/ (its dependencies clash with ours) and described by tests/helpers/sdk_surface.py run with that venv's
python; the same function describes `kubetune.foundation_model`. Every function, argument (name, kind, order,
default), run field (in order), property, method, status, status order, terminal event type and path reading
Databricks has must be ours too; Kubetune may add more after them.

Creating the venv from PyPI took 88 s on a fresh machine (no pip cache; about 5 s once it exists), so
the module is marked slow: `make test-slow`, or alone
`.venv/bin/python -m pytest tests/unit/test_sdk_databricks_surface.py`. Without PyPI it is skipped, saying so.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

from helpers import sdk_surface
from helpers.cluster import REPO_ROOT

pytestmark = pytest.mark.slow

CONSTRAINTS = Path(__file__).with_name("databricks-genai.constraints")
VENV = REPO_ROOT / ".cache" / "databricks-genai-venv"
# Databricks' plumbing, not user API: its server's wire format and config internals.
NOT_USER_API = {"from_mapi_response", "to_create_api_input", "validate_dict", "empty"}


def pinned_requirement() -> str:
    return next(line.strip() for line in CONSTRAINTS.read_text().splitlines() if line.strip() and not line.startswith("#"))


@pytest.fixture(scope="module")
def databricks_python() -> Path:
    """The python of a venv holding the pinned databricks-genai (created from PyPI when missing or stale)."""
    python = VENV / "bin" / "python"
    stamp = VENV / "installed.txt"
    wanted = pinned_requirement()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wanted],
        capture_output=True, text=True, timeout=900,
    )
    if install.returncode != 0:
        unreachable = any(s in install.stderr for s in ("Could not find a version", "NewConnectionError",
                                                         "Failed to establish", "Temporary failure in name resolution"))
        if unreachable:
            pytest.skip(f"PyPI is unreachable, so {wanted} cannot be installed to compare with: {install.stderr[-300:]}")
        pytest.fail(f"installing {wanted} failed:\n{install.stderr[-2000:]}")
    stamp.write_text(wanted)
    return python


@pytest.fixture(scope="module")
def theirs(databricks_python) -> dict:
    dumped = subprocess.run(
        [str(databricks_python), sdk_surface.__file__, "databricks"],
        capture_output=True, text=True, timeout=300, cwd="/", env={**os.environ, "PYTHONPATH": ""},
    )
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    return json.loads(dumped.stdout)


@pytest.fixture(scope="module")
def ours() -> dict:
    return sdk_surface.surface("kubetune")


def test_every_function_takes_databricks_arguments(theirs, ours):
    for name, parameters in theirs["functions"].items():
        assert name in ours["functions"], f"fm.{name} is missing"
        mine = ours["functions"][name]
        # Same names, kinds and defaults, in the same order; ours may add keyword-only ones after them.
        assert mine[: len(parameters)] == parameters, f"fm.{name}"
        assert all(kind == "KEYWORD_ONLY" for _, kind, _ in mine[len(parameters):]), f"fm.{name}: additions must be keyword-only"


def test_every_class_has_databricks_fields_properties_and_methods(theirs, ours):
    for cls, reference in theirs["classes"].items():
        mine = ours["classes"][cls]
        fields = [f for f in reference["fields"] if not f.startswith("_")]
        assert mine["fields"][: len(fields)] == fields, f"{cls}: fields (in Databricks' order)"
        missing = set(reference["properties"]) - set(mine["properties"])
        assert not missing, f"{cls}: properties {sorted(missing)} are missing (or are not properties)"
        for method, parameters in reference["methods"].items():
            if method in NOT_USER_API:
                continue
            assert method in mine["methods"], f"{cls}.{method} is missing (or is not a method)"
            if cls != "ObjectList":  # list's own methods take the same arguments, positional-only
                assert mine["methods"][method][: len(parameters)] == parameters, f"{cls}.{method}"


def test_statuses_events_and_paths_read_the_same(theirs, ours):
    assert ours["statuses"] == theirs["statuses"]
    assert ours["status_order"] == theirs["status_order"]
    assert ours["terminal_events"] == theirs["terminal_events"]
    assert ours["path_forms"] == theirs["path_forms"]


def test_the_pin_is_not_in_the_main_environment():
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("databricks-genai")
