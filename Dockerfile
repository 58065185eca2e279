# syntax=docker/dockerfile:1.7
# Kubetune's two images, from one file:
#   docker build --target operator -t ghcr.io/kubetune/operator:0.1.0 .   # no torch
#   docker build --target trainer  -t ghcr.io/kubetune/trainer:0.1.0 .    # CUDA PyTorch from PyPI
# Layers run from least to most often changed: OS and user; the pinned
# dependencies (resolved from pyproject.toml and constraints.txt alone, so a
# source change never reinstalls torch); then Kubetune itself, as a wheel.
# Each image is built FROM its dependency stage rather than copying it: the
# trainer's 6 GB dependency layer is then stored once, shared by the image and
# the build cache (a copy stored it twice and ran a CI machine out of disk).
# Nothing is compiled: every dependency is a wheel, so no build tools are
# installed in any stage.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- shared base
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONSAFEPATH=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/kubetune \
    PATH=/opt/kubetune/bin:$PATH
# Marks every image and build-cache layer of this file: hack/build-images.sh
# prunes the ones a rebuild superseded, and nothing else on the machine.
LABEL io.kubetune.project=kubetune
# uid/gid 1000 match the chart's and the operator's runAsUser/runAsGroup.
RUN groupadd --gid 1000 kubetune \
    && useradd --uid 1000 --gid 1000 --no-log-init --create-home --shell /usr/sbin/nologin kubetune \
    && python -m venv /opt/kubetune \
    && find /opt/kubetune -depth -type d \( -name __pycache__ -o -name tests \) -exec rm -rf {} +
WORKDIR /src

# ---------------------------------------------------------------- Kubetune as a wheel
# Built, then installed under /install as it lies in the virtualenv; the targets
# copy that tree. A COPY is keyed on its content by every builder (buildah's
# layer cache does not see a changed RUN --mount=type=bind source).
FROM base AS wheel
COPY pyproject.toml setup.py constraints.txt README.md ./
COPY kubetune ./kubetune
COPY operator ./operator
COPY trainer ./trainer
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=ca.crt \
    PIP_CONSTRAINT=/src/constraints.txt pip wheel --no-deps --wheel-dir /dist . \
    && pip install --no-deps --no-compile --root /install /dist/*.whl

# ---------------------------------------------------------------- dependencies only
# An empty project with the real metadata: pip resolves the extra's pinned
# dependencies; the empty kubetune itself is removed again. Only the files that
# decide the dependencies are copied (an empty README stands in for the real
# one), so an edit of the docs or the tests' settings never reinstalls torch. No bytecode and no
# packages' own test suites: smaller images (docs/operator-guide.md, Images).
FROM base AS operator-deps
COPY pyproject.toml setup.py constraints.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=ca.crt \
    touch README.md \
    && PIP_NO_COMPILE=1 pip install --constraint constraints.txt ".[operator]" \
    && pip uninstall --yes kubetune \
    && find /opt/kubetune -depth -type d \( -name __pycache__ -o -name tests \) -exec rm -rf {} + \
    && rm -rf /src/* /src/.[!.]*

FROM base AS trainer-deps
COPY pyproject.toml setup.py constraints.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=ca.crt \
    touch README.md \
    && PIP_NO_COMPILE=1 pip install --constraint constraints.txt ".[trainer]" \
    && pip uninstall --yes kubetune \
    && find /opt/kubetune -depth -type d \( -name __pycache__ -o -name tests \) -exec rm -rf {} + \
    && rm -rf /src/* /src/.[!.]*

# ---------------------------------------------------------------- operator
# (The few kB of metadata the dependency stage resolved from stay in its COPY
# layer, hidden: that stage removes them and what pip built from them.)
FROM operator-deps AS operator
COPY --from=wheel /install/opt/kubetune /opt/kubetune
USER 1000:1000
WORKDIR /tmp
EXPOSE 8080
# The same command the chart's Deployment runs (it adds --namespace flags).
ENTRYPOINT ["kubetune"]
CMD ["operator", "--config", "/etc/kubetune/config.yaml", "--liveness", "http://0.0.0.0:8080/healthz"]

# ---------------------------------------------------------------- trainer
FROM trainer-deps AS trainer
COPY --from=wheel /install/opt/kubetune /opt/kubetune
USER 1000:1000
WORKDIR /tmp
# The operator's training Job starts `torchrun ... -m kubetune.trainer --config FILE`
# and sets its own command; run without one, the image prints the trainer's usage.
ENTRYPOINT ["python", "-m", "kubetune.trainer"]
CMD ["--help"]
