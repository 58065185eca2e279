# Two commands do all set-up on a fresh machine:
#   make quickstart   fine-tune a tiny model locally and register it in MLflow
#   make test         install everything and run the default test suite
VENV := .venv
BIN := $(VENV)/bin
# The repo root holds a folder named operator/: never let Python put the working
# directory on sys.path, or it would shadow the standard library's operator module.
export PYTHONSAFEPATH := 1
PYTEST := $(BIN)/python -m pytest

.PHONY: setup cluster-bins cluster-up cluster-down quickstart test test-slow test-faults test-security test-unit test-transformers-floor crd clean images test-images kueue-bins test-kueue

setup:
	hack/setup-python.sh

cluster-bins:
	hack/cluster-bins.sh

cluster-up: cluster-bins
	hack/cluster-up.sh

cluster-down:
	hack/cluster-down.sh

quickstart: setup
	$(BIN)/kubetune run examples/quickstart.yaml --local

test: setup cluster-bins
	$(BIN)/pip check
	hack/transformers-floor.sh
	$(PYTEST) -m "not slow"

# The trainer's stack-dependent tests with transformers at the lowest supported release (part of `make test`).
test-transformers-floor: setup
	hack/transformers-floor.sh

test-slow: setup cluster-bins
	$(PYTEST) -m slow

# The fault matrix alone (it also runs in `make test`).
test-faults: setup cluster-bins
	$(PYTEST) -m "faults and not slow"

# The multi-tenant safety tests alone (they also run in `make test`).
test-security: setup cluster-bins
	$(PYTEST) -m "security and not slow"

# Kubetune on Kueue (tests/kueue/, marked kueue and slow, so not in `make test`): Kueue built from Go modules
# (hack/kueue-bins.sh, about 5 minutes the first time) runs against the test control plane.
kueue-bins:
	hack/kueue-bins.sh

test-kueue: setup cluster-bins kueue-bins
	$(PYTEST) -m kueue tests/kueue

test-unit: setup
	$(PYTEST) tests/unit

# Both images, tagged as the chart expects (Docker where an engine runs, else buildah; see hack/build-images.sh).
images:
	hack/build-images.sh

# The image tests alone (part of `make test`): build both images with buildah, run the chart's operator
# Deployment and the training Job's command in them; the build script's own checks.
test-images: setup cluster-bins
	$(PYTEST) tests/images

crd: setup
	$(BIN)/kubetune crd --write

clean: cluster-down
	rm -rf .cluster/run .cluster/logs .kubetune
