"""Fixtures for the image tests (marker `images`): the real images, built once per session by hack/build-images.sh.

operator_image  (session) images.containers.Image of the operator target, tagged as the chart expects
trainer_image   (session) the same for the trainer target
build_log_dir   (session) where each build's log goes: $BUILD_LOG_DIR, else a session temporary folder

The tests always build with buildah (ENGINE=buildah), the builder of machines without a Docker engine,
which hack/build-images.sh installs when missing; where it cannot (no apt-get, or not root) the tests
are skipped with that reason. kubeconfig, kube_api, crd_installed and mlflow_uri come from tests/conftest.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from images.containers import BUILD_SCRIPT, Image, chart_tags, source_digests

BUILD_TIMEOUT_S = 60 * 60  # a cold trainer build with vfs storage on two busy cores takes a good part of it


def _why_no_buildah() -> str | None:
    """None when buildah is here or hack/build-images.sh can install it; else why not."""
    if shutil.which("buildah"):
        return None
    if not shutil.which("apt-get"):
        return "buildah is missing and there is no apt-get to install it: install buildah"
    if os.geteuid() != 0:
        return "buildah is missing and installing it needs root: apt-get install buildah mmdebstrap"
    return None


def build(target: str, log_dir: Path) -> Image:
    why_not = _why_no_buildah()
    if why_not:
        pytest.skip(why_not)
    log = log_dir / f"build-{target}.log"
    source = source_digests()
    started = time.monotonic()
    with open(log, "w") as out:
        result = subprocess.run([str(BUILD_SCRIPT), "--target", target], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "ENGINE": "buildah"}, timeout=BUILD_TIMEOUT_S)
    text = log.read_text(errors="replace")
    if result.returncode != 0:
        pytest.fail(f"hack/build-images.sh --target {target} failed (log: {log}):\n{text[-8000:]}", pytrace=False)
    built = re.findall(r"^\[build-images\] built (\S+) ", text, re.M)
    assert built == [chart_tags()[target]], text[-3000:]
    # The tree as the build started and as it ended: a module edited meanwhile may be either in the image.
    return Image(built[0], build_seconds=time.monotonic() - started, source=(source, source_digests()))


@pytest.fixture(scope="session")
def build_log_dir(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("BUILD_LOG_DIR") or tmp_path_factory.mktemp("image-builds"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def operator_image(build_log_dir) -> Image:
    return build("operator", build_log_dir)


@pytest.fixture(scope="session")
def trainer_image(build_log_dir) -> Image:
    return build("trainer", build_log_dir)
