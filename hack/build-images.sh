#!/usr/bin/env bash
# Build Kubetune's two images from the Dockerfile's targets, tagged as the chart expects:
#   operator  <values.yaml image.repository>:<Chart.yaml appVersion>   (ghcr.io/kubetune/operator:0.1.0)
#   trainer   <values.yaml config.images.trainer>                       (ghcr.io/kubetune/trainer:0.1.0)
#
#   hack/build-images.sh                                  both targets, the chart's tags
#   hack/build-images.sh --target operator                one target (repeat --target for more)
#   hack/build-images.sh --target operator -t my/op:dev   -t after a --target sets that target's tag
#   hack/build-images.sh --print-tags                     "TARGET TAG" lines, then exit
#   hack/build-images.sh --print-engine                   "docker" or "buildah DRIVER", then exit
#   hack/build-images.sh --dry-run ...                    print what would run; build nothing
#
# Engine: Docker with BuildKit when a Docker engine answers `docker info`; else buildah (no daemon;
# `--isolation chroot`; overlay storage where the kernel allows it, else vfs), installed with apt-get
# together with mmdebstrap when missing. ENGINE=docker|buildah forces one.
#
# Base image: PYTHON_IMAGE (the Dockerfile's default, python:3.11-slim-bookworm) when it can be
# pulled. When it cannot (no access to Docker Hub), a Debian bookworm Python (3.11) is made with
# mmdebstrap, imported as localhost/kubetune/python-base:bookworm and used as PYTHON_IMAGE instead.
#
# Proxies: pip inside the build gets the host's CA bundle and pip configuration (index-url,
# extra-index-url, find-links, trusted-host, ... from pip.conf files and PIP_* variables) as build
# secrets, which never land in a layer; local find-links folders are mounted (buildah). HTTP(S)_PROXY
# and NO_PROXY pass through. The CA bundle is CA_BUNDLE, else pip's `cert`, else REQUESTS_CA_BUNDLE or
# SSL_CERT_FILE, else /etc/ssl/certs/ca-certificates.crt.
#
# Caches under CACHE_DIR (default <repo>/.cache/images): the mmdebstrap tarball (delete it to refresh
# the Debian base) and, with buildah, the Dockerfile's pip cache mounts. buildah keeps its layers in
# /var/lib/containers/storage: a rebuild redoes only what changed (a source change: the wheel, seconds;
# the trainer still hashes its 6 GB of dependencies, about a minute). After building, the script
# removes the images and cache layers of this Dockerfile that the build superseded (untagged, no
# image built on them; found by the Dockerfile's io.kubetune.project label, so nothing else on the
# machine is touched). A fresh machine rebuilds everything from the network.
#
# Env: ENGINE, PYTHON_IMAGE, CA_BUNDLE, STORAGE_DRIVER (buildah: overlay or vfs), DEBIAN_MIRROR
#      (default http://deb.debian.org/debian), CACHE_DIR, PULL_TIMEOUT (seconds; default 120).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${CACHE_DIR:-$ROOT/.cache/images}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PULL_TIMEOUT="${PULL_TIMEOUT:-120}"
DEFAULT_PYTHON_IMAGE="$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$ROOT/Dockerfile")"
LOCAL_BASE=localhost/kubetune/python-base:bookworm
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,passwd
PROJECT_LABEL=io.kubetune.project=kubetune # the Dockerfile's LABEL, also on the imported base

log() { printf '[build-images] %s\n' "$*" >&2; }
die() { printf '[build-images] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tags, from the chart
chart_tag() { # target -> the image the chart runs for it
  local values="$ROOT/charts/kubetune/values.yaml" repository tag
  case "$1" in
    operator)
      repository="$(awk '/^image:/{f=1; next} /^[^ #]/{f=0} f && /^  repository:/{print $2; exit}' "$values")"
      tag="$(awk '/^image:/{f=1; next} /^[^ #]/{f=0} f && /^  tag:/{print $2; exit}' "$values" | tr -d '"')"
      [[ -n "$tag" ]] || tag="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$ROOT/charts/kubetune/Chart.yaml")"
      echo "$repository:$tag" ;;
    trainer)
      awk '/^  images:/{f=1; next} /^  [^ #]/{f=0} f && /^    trainer:/{print $2; exit}' "$values" ;;
    *) die "unknown target $1 (operator or trainer)" ;;
  esac
}

targets=() tags=() action=build dry_run=0
while (($#)); do
  case "$1" in
    --target) [[ $# -ge 2 ]] || die "--target needs a name"; targets+=("$2"); tags+=("$(chart_tag "$2")"); shift 2 ;;
    -t|--tag) [[ $# -ge 2 && ${#targets[@]} -gt 0 ]] || die "-t TAG follows a --target"; tags[-1]="$2"; shift 2 ;;
    --print-tags) action=print-tags; shift ;;
    --print-engine) action=print-engine; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
if ((${#targets[@]} == 0)); then
  targets=(operator trainer)
  tags=("$(chart_tag operator)" "$(chart_tag trainer)")
fi
for i in "${!targets[@]}"; do
  [[ -n "${tags[i]}" ]] || die "no tag for ${targets[i]} (the chart's values moved?)"
done

if [[ "$action" == print-tags ]]; then
  for i in "${!targets[@]}"; do echo "${targets[i]} ${tags[i]}"; done
  exit 0
fi

# ---------------------------------------------------------------- engine
if [[ -z "${ENGINE:-}" ]]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then ENGINE=docker; else ENGINE=buildah; fi
fi
case "$ENGINE" in
  docker|buildah) ;;
  *) die "ENGINE must be docker or buildah, not $ENGINE" ;;
esac
# buildah's storage: overlay where this kernel mounts it in buildah's storage folder (as root), else vfs.
# vfs needs no kernel support but copies the whole file system for every instruction: the trainer's
# 6 GB then need far more disk (docs/operator-guide.md, Building the images).
storage_driver() {
  local root=/var/lib/containers/storage probe
  if ((EUID == 0)) && mkdir -p "$root" 2>/dev/null && probe="$(mktemp -d "$root/overlay-probe.XXXXXX" 2>/dev/null)"; then
    mkdir -p "$probe"/{lower,upper,work,merged}
    if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
      umount "$probe/merged"
      rm -rf "$probe"
      echo overlay
      return
    fi
    rm -rf "$probe"
  fi
  echo vfs
}
[[ "$ENGINE" == buildah ]] && STORAGE_DRIVER="${STORAGE_DRIVER:-$(storage_driver)}"

if [[ "$action" == print-engine ]]; then
  [[ "$ENGINE" == docker ]] && echo docker || echo "buildah $STORAGE_DRIVER"
  exit 0
fi

run() { # print the command; run it unless --dry-run
  log "+ $*"
  ((dry_run)) || "$@"
}

install_packages() { # apt packages for the commands that are missing
  local missing=() command package
  for pair in "$@"; do
    command="${pair%%:*}" package="${pair#*:}"
    command -v "$command" >/dev/null 2>&1 || missing+=("$package")
  done
  ((${#missing[@]})) || return 0
  if ((dry_run)); then log "+ apt-get install ${missing[*]}"; return 0; fi
  command -v apt-get >/dev/null 2>&1 || die "${missing[*]} missing and there is no apt-get: install them yourself"
  ((EUID == 0)) || die "${missing[*]} missing: install them (apt-get install ${missing[*]}) or run as root"
  log "installing ${missing[*]} from the distribution's packages"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
if [[ "$ENGINE" == buildah ]]; then
  install_packages buildah:buildah
  # Cache mounts (the Dockerfile's pip cache) live under buildah's TMPDIR.
  export TMPDIR="$CACHE_DIR/buildah-tmp"
  mkdir -p "$TMPDIR"
  engine=(buildah --storage-driver "$STORAGE_DRIVER")
else
  export DOCKER_BUILDKIT=1
  engine=(docker)
fi
mkdir -p "$CACHE_DIR"
# One build at a time per machine and user (tests, CI and people in several clones may start builds
# together, and they share the engine's storage; one build's pruning must not race another's).
# A dry run builds nothing: it never waits for a build under way.
if ((!dry_run)); then
  exec 8>"/tmp/kubetune-build-images.$EUID.lock"
  flock 8
fi

have_image() {
  if [[ "$ENGINE" == docker ]]; then docker image inspect "$1" >/dev/null 2>&1
  else "${engine[@]}" inspect --type image "$1" >/dev/null 2>&1; fi
}
image_label() { # image label
  if [[ "$ENGINE" == docker ]]; then docker image inspect --format "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null
  else "${engine[@]}" inspect --type image --format "{{index .OCIv1.Config.Labels \"$2\"}}" "$1" 2>/dev/null; fi
}

# ---------------------------------------------------------------- base image
qualified() { # buildah needs a registry in the name; Docker Hub is what a short name means
  local name="$1" first="${1%%/*}"
  if [[ "$name" != */* ]]; then echo "docker.io/library/$name"
  elif [[ "$first" != *.* && "$first" != *:* && "$first" != localhost ]]; then echo "docker.io/$name"
  else echo "$name"; fi
}

debian_base() { # make (or reuse) the mmdebstrap tarball and import it as $LOCAL_BASE
  local tarball="$CACHE_DIR/python-bookworm.tar" recipe sum
  recipe="mmdebstrap --variant=minbase --include=$BASE_PACKAGES bookworm $DEBIAN_MIRROR"
  if [[ ! -f "$tarball" || "$(cat "$tarball.recipe" 2>/dev/null)" != "$recipe" ]]; then
    install_packages mmdebstrap:mmdebstrap
    log "making a Debian bookworm Python base with mmdebstrap (cached in $tarball)"
    # Documentation, manuals and translations are left out: nothing in the images reads them.
    run mmdebstrap --quiet --format=tar --variant=minbase --include="$BASE_PACKAGES" \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      bookworm "$tarball.tmp" \
      "deb $DEBIAN_MIRROR bookworm main" \
      "deb $DEBIAN_MIRROR bookworm-updates main" \
      "deb ${DEBIAN_MIRROR%/debian}/debian-security bookworm-security main"
    ((dry_run)) || { mv "$tarball.tmp" "$tarball"; echo "$recipe" >"$tarball.recipe"; }
  fi
  if ((dry_run)) && [[ ! -f "$tarball" ]]; then sum=none; else sum="$(sha256sum "$tarball" | cut -c1-64)"; fi
  [[ -n "$sum" ]] || die "cannot read $tarball"
  [[ "$(image_label "$LOCAL_BASE" io.kubetune.base.sha256 || true)" == "$sum" ]] && return 0
  log "importing $tarball as $LOCAL_BASE"
  local env_path=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  if [[ "$ENGINE" == docker ]]; then
    run docker import --change "ENV $env_path" --change "ENV LANG=C.UTF-8" \
      --change "LABEL io.kubetune.base.sha256=$sum" --change "LABEL $PROJECT_LABEL" --change 'CMD ["python3"]' "$tarball" "$LOCAL_BASE"
  elif ((dry_run)); then
    log "+ buildah from scratch; buildah add CONTAINER $tarball /; buildah commit CONTAINER $LOCAL_BASE"
  else
    local container
    container="$("${engine[@]}" from scratch)"
    "${engine[@]}" add "$container" "$tarball" / >/dev/null
    "${engine[@]}" config --env "$env_path" --env LANG=C.UTF-8 --label "io.kubetune.base.sha256=$sum" --label "$PROJECT_LABEL" --cmd python3 "$container"
    "${engine[@]}" commit --rm --quiet "$container" "$LOCAL_BASE" >/dev/null
  fi
}

pull() {
  if [[ "$ENGINE" == docker ]]; then timeout "$PULL_TIMEOUT" docker pull --quiet "$1"
  else timeout "$PULL_TIMEOUT" "${engine[@]}" pull --quiet "$1"; fi >/dev/null 2>&1
}

python_base() { # echo the PYTHON_IMAGE to build from
  local image="${PYTHON_IMAGE:-$DEFAULT_PYTHON_IMAGE}"
  if [[ "$ENGINE" == buildah ]]; then image="$(qualified "$image")"; fi
  if have_image "$image"; then echo "$image"; return 0; fi
  if ((dry_run)); then
    log "dry run: not pulling $image, showing the fallback"
  else
    log "pulling $image"
    if pull "$image"; then echo "$image"; return 0; fi
  fi
  log "cannot pull $image: building from a Debian base made here instead"
  debian_base >&2
  echo "$LOCAL_BASE"
}

# ---------------------------------------------------------------- the host's CA bundle and pip configuration
# Writes the build's pip.conf to $1; prints "ca PATH" (the CA bundle to pass) and "mount DIR" (local
# find-links/index folders) lines. Only settings that say where packages come from pass through.
pip_settings() {
  python3 - "$1" "$ENGINE" <<'EOF'
import configparser, os, sys
from pathlib import Path

out, engine = Path(sys.argv[1]), sys.argv[2]
KEYS = {"index-url", "extra-index-url", "find-links", "trusted-host", "no-index", "proxy",
        "default-timeout", "timeout", "retries", "prefer-binary", "only-binary", "pre"}
SECTIONS = ("global", "install", "wheel")

# pip's own order: global files, user files, PIP_CONFIG_FILE, then PIP_* variables.
env_file = os.environ.get("PIP_CONFIG_FILE")
files = [] if env_file == os.devnull else [
    *(Path(d) / "pip" / "pip.conf" for d in os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":")),
    Path("/etc/pip.conf"), Path.home() / ".pip" / "pip.conf",
    Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "pip" / "pip.conf",
    *([Path(env_file)] if env_file else []),
]
settings = {section: {} for section in SECTIONS}
cert = None
for file in files:
    parser = configparser.RawConfigParser()
    try:
        parser.read(file)
    except (OSError, configparser.Error) as error:
        print(f"[build-images] ignoring {file}: {error}", file=sys.stderr)
        continue
    for section in parser.sections():
        for key, value in parser.items(section):
            key = key.replace("_", "-")
            if key == "cert" and section == "global":
                cert = value
            elif key in KEYS and section in SECTIONS:
                settings[section][key] = value
for name, value in os.environ.items():
    key = name[4:].lower().replace("_", "-") if name.startswith("PIP_") and value else None
    if key == "cert":
        cert = value
    elif key in KEYS:
        settings["global"][key] = value

mounts = []
def local(location: str) -> str | None:
    path = location[len("file://"):] if location.startswith("file://") else location
    return path if path.startswith("/") else None
for section in SECTIONS:
    for key in ("find-links", "index-url", "extra-index-url"):
        if key not in settings[section]:
            continue
        kept = []
        for location in settings[section][key].split():
            path = local(location)
            if path is None:
                kept.append(location)
            elif engine == "buildah" and Path(path).is_dir():
                kept.append(location)
                mounts.append(path)
            else:
                print(f"[build-images] {key} {location} cannot reach the build ({engine}): left out", file=sys.stderr)
        settings[section][key] = "\n    ".join(kept)
        if not kept:
            del settings[section][key]

ca = os.environ.get("CA_BUNDLE") or cert or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
if not ca and Path("/etc/ssl/certs/ca-certificates.crt").is_file():
    ca = "/etc/ssl/certs/ca-certificates.crt"
if ca:
    if not Path(ca).is_file():
        sys.exit(f"[build-images] ERROR: the CA bundle {ca} does not exist (set CA_BUNDLE=)")
    settings["global"]["cert"] = "/run/secrets/ca.crt"  # the Dockerfile's secret mount
    print(f"ca {ca}")
for path in dict.fromkeys(mounts):
    print(f"mount {path}")

lines = []
for section in SECTIONS:
    if settings[section]:
        lines += [f"[{section}]", *(f"{k} = {v}" for k, v in sorted(settings[section].items())), ""]
out.write_text("\n".join(lines))
EOF
}

PIP_CONF="$WORK/pip.conf"
secrets=(--secret "id=pip.conf,src=$PIP_CONF")
mounts=()
while read -r kind value; do
  case "$kind" in
    ca) secrets+=(--secret "id=ca.crt,src=$value"); log "CA bundle for pip in the build: $value" ;;
    mount) mounts+=(-v "$value:$value:ro") ;;
  esac
done < <(umask 077; pip_settings "$PIP_CONF")
[[ -f "$PIP_CONF" ]] || die "could not write the build's pip configuration"
if ((dry_run)); then
  log "pip.conf for the build:"; sed 's/^/    /' "$PIP_CONF" >&2
elif [[ -s "$PIP_CONF" ]]; then
  log "pip configuration for the build: $(grep -v '^\[' "$PIP_CONF" | sed 's/ = .*//' | tr -d ' ' | sort -u | paste -sd, -)"
fi

# ---------------------------------------------------------------- build
base="$(python_base)"
proxies=()
if [[ "$ENGINE" == docker ]]; then # buildah passes the proxy variables by itself
  for var in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    [[ -n "${!var:-}" ]] && proxies+=(--build-arg "$var")
  done
fi

# Images and cache layers of this Dockerfile that no tag and no other image needs any more: earlier
# builds' images and the layers only they used. Removing one can leave its parent dangling: repeat.
prune_superseded() {
  local ids
  if [[ "$ENGINE" == docker ]]; then
    run docker image prune --force --filter "label=$PROJECT_LABEL" >/dev/null
    return 0
  fi
  for _ in $(seq 20); do
    ids="$("${engine[@]}" images --all --noheading --quiet --no-trunc --filter dangling=true --filter "label=$PROJECT_LABEL")"
    [[ -n "$ids" ]] || return 0
    # shellcheck disable=SC2086 # one ID per word
    run "${engine[@]}" rmi $ids >/dev/null || return 0
  done
}

# The trainer's dependency layer is 6 GB; installing and committing it needs about 2.5 times that.
free_gb() { df --output=avail -B1G "$1" 2>/dev/null | tail -1 | tr -d ' '; }
warn_if_short_of_disk() { # target
  local need=3 root avail
  [[ "$1" == trainer ]] && need=16
  if [[ "$ENGINE" == buildah ]]; then root="$("${engine[@]}" info --format '{{.store.GraphRoot}}' 2>/dev/null || true)"; fi
  root="${root:-${TMPDIR:-/tmp}}"
  avail="$(free_gb "$root")"
  [[ "$avail" =~ ^[0-9]+$ ]] || return 0
  if ((avail < need)); then
    log "WARNING: $avail GB free under $root; building $1 from scratch needs about $need GB" \
      "(a cached dependency layer needs far less). Free space there if the build runs out."
  fi
}

human() { awk -v b="$1" 'BEGIN { split("B kB MB GB TB", u); i = 1; while (b >= 1000 && i < 5) { b /= 1000; i++ } printf "%.1f %s", b, u[i] }'; }
image_size() {
  if [[ "$ENGINE" == docker ]]; then docker image inspect --format '{{.Size}}' "$1"
  else "${engine[@]}" images --format '{{.Size}}' --noheading "$1" | head -1; fi
}

for i in "${!targets[@]}"; do
  target="${targets[i]}" tag="${tags[i]}"
  log "building $target as $tag from $base with $ENGINE"
  started=$SECONDS
  ((dry_run)) || warn_if_short_of_disk "$target"
  if [[ "$ENGINE" == docker ]]; then
    run docker build --target "$target" -t "$tag" --build-arg "PYTHON_IMAGE=$base" \
      "${secrets[@]}" "${proxies[@]}" "$ROOT"
  else
    # --force-rm: a failed build (out of disk, say) leaves no working container holding its layers.
    run "${engine[@]}" build --isolation chroot --layers --force-rm --target "$target" -t "$tag" --build-arg "PYTHON_IMAGE=$base" \
      "${secrets[@]}" "${mounts[@]}" "$ROOT"
  fi
  ((dry_run)) && continue
  size="$(image_size "$tag")"
  [[ "$size" =~ ^[0-9]+$ ]] && size="$(human "$size")"
  log "built $tag ($size) in $((SECONDS - started)) s"
done
((dry_run)) || prune_superseded
