"""What the built images carry: no bytecode, package test suites, caches, wheels, sources or build tools; sizes in budget.

The budgets are the measured sizes (docs/operator-guide.md, Images) plus a margin: torch in the operator
image, or a second copy of the dependencies in either, fails them.
"""

from __future__ import annotations

import json

import pytest

from images.containers import INSTALLED_DIGESTS

pytestmark = [pytest.mark.images]

GB = 1000**3
SIZE_BUDGET = {"operator": 0.45 * GB, "trainer": 7.5 * GB}

# Prints every leftover; empty output means a clean image.
LEFTOVERS = r"""
find /opt/kubetune -name __pycache__ -o -type d -name tests -path '*/site-packages/*'
find /root/.cache /src /dist -mindepth 1 2>/dev/null
find /opt -name '*.pyc'
find /opt /src /dist /tmp /root -name '*.whl' 2>/dev/null
find /opt/kubetune/lib/python3.11/site-packages -maxdepth 1 \( -name tests -o -name charts -o -name examples \)
for tool in gcc cc make; do command -v "$tool"; done
true
"""


@pytest.fixture(params=["operator", "trainer"])
def image(request):
    return request.getfixturevalue(f"{request.param}_image"), request.param


def test_image_carries_no_caches_bytecode_tests_or_build_tools(image):
    built, _ = image
    result = built.run(["sh", "-c", LEFTOVERS], user="0:0", timeout=600)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == "", f"left in {built.tag}:\n{result.stdout[:4000]}"


def test_image_size_is_within_budget(image):
    built, target = image
    assert built.size < SIZE_BUDGET[target], f"{built.tag}: {built.size / GB:.2f} GB"


def test_image_holds_the_kubetune_of_the_working_tree(image):
    """A layer cache that missed a source change would leave the last build's Kubetune in the image."""
    built, _ = image
    result = built.run(["python", "-c", INSTALLED_DIGESTS])
    assert result.returncode == 0, result.stdout
    installed = json.loads(result.stdout.splitlines()[-1])
    before, after = built.source
    assert before and installed
    stale = sorted(p for p in before.keys() | after.keys() | installed.keys() if installed.get(p) not in (before.get(p), after.get(p)))
    assert stale == [], f"{built.tag} holds other Kubetune modules than the working tree had during the build: {stale[:20]}"


def test_a_build_leaves_nothing_superseded_behind(operator_image, trainer_image):
    """Builds from many clones and CI runs share the machine's storage: after a build, no image or cache layer of
    this Dockerfile is left that no tag and no other image needs (hack/build-images.sh, prune_superseded)."""
    import subprocess

    from images.containers import buildah_command

    listing = subprocess.run(
        [*buildah_command(), "images", "--all", "--quiet", "--filter", "dangling=true", "--filter", "label=io.kubetune.project=kubetune"],
        capture_output=True, text=True, timeout=120,
    )
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split() == []
    assert operator_image.size and trainer_image.size  # both tags are still there
