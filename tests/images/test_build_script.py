"""hack/build-images.sh without building (--print-tags, --dry-run): tags the chart's, proxies and CA passed as secrets.

These run in seconds and need neither buildah nor Docker; the `images` tests build for real.
"""

from __future__ import annotations

import os
import re
import subprocess

import yaml

from helpers.cluster import REPO_ROOT
from images.containers import BUILD_SCRIPT, build_script

CHART = REPO_ROOT / "charts" / "kubetune"


def dry_run(tmp_path, *args: str, **env: str) -> str:
    """The script's log of a --dry-run, with a home and cache of its own and no pip settings but what `env` adds."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    ours = ("PIP_", "CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "XDG_CONFIG")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    clean |= {"HOME": str(home), "XDG_CONFIG_DIRS": str(tmp_path / "xdg"), "PIP_CONFIG_FILE": str(tmp_path / "none.conf"),
              "CACHE_DIR": str(tmp_path / "cache"), **env}
    result = subprocess.run([str(BUILD_SCRIPT), "--dry-run", *args], capture_output=True, text=True, timeout=60, env=clean)
    assert result.returncode == 0, result.stderr
    return result.stderr


def build_pip_conf(log: str) -> str:
    """The pip.conf the dry run shows for the build."""
    block = re.search(r"pip\.conf for the build:\n((?:    .*\n|\n)*)", log)
    assert block, log
    return "\n".join(line[4:] for line in block.group(1).splitlines())


def build_commands(log: str) -> list[str]:
    return re.findall(r"^\[build-images\] \+ (\S+(?: --storage-driver \S+)? build .*)$", log, re.M)


def test_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(BUILD_SCRIPT)], check=True)


def test_default_tags_are_the_ones_the_chart_runs():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    operator = f"{values['image']['repository']}:{values['image']['tag'] or app_version}"
    result = build_script("--print-tags")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"operator {operator}", f"trainer {values['config']['images']['trainer']}"]


def test_a_tag_follows_its_target():
    result = build_script("--target", "trainer", "-t", "kubetune/trainer:e2e", "--target", "operator", "--print-tags")
    assert result.stdout.splitlines() == ["trainer kubetune/trainer:e2e", f"operator {build_script('--print-tags').stdout.split()[1]}"]
    assert build_script("-t", "x:y", "--print-tags").returncode != 0  # a tag needs a target before it
    assert build_script("--target", "sdk", "--print-tags").returncode != 0


def test_host_pip_settings_and_ca_reach_the_build_as_secrets(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    ca = tmp_path / "corporate-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    config = tmp_path / "home" / ".config" / "pip"
    config.mkdir(parents=True)
    (config / "pip.conf").write_text(
        "[global]\nindex-url = https://pypi.corp.example/simple\ncache-dir = /home/me/.pipcache\ncert = /ignored.pem\n"
        "[install]\nextra-index-url = https://extra.corp.example/simple\n"
    )
    log = dry_run(tmp_path, "--target", "operator", ENGINE="buildah", PIP_TRUSTED_HOST="pypi.corp.example",
                  PIP_FIND_LINKS=f"{wheels} https://links.corp.example/ {tmp_path / 'missing'}", PIP_CERT=str(ca))

    conf = build_pip_conf(log)
    assert "index-url = https://pypi.corp.example/simple" in conf
    assert "trusted-host = pypi.corp.example" in conf
    assert "[install]\nextra-index-url = https://extra.corp.example/simple" in conf
    assert f"find-links = {wheels}\n    https://links.corp.example/" in conf
    assert "cert = /run/secrets/ca.crt" in conf  # where the Dockerfile mounts the secret ca.crt
    assert "cache-dir" not in conf and "missing" not in conf
    [command] = build_commands(log)
    assert re.match(r"buildah --storage-driver (overlay|vfs) build --isolation chroot --layers --force-rm --target operator ", command)
    assert f"--secret id=ca.crt,src={ca} " in command and "--secret id=pip.conf,src=" in command
    assert f"-v {wheels}:{wheels}:ro" in command  # the local find-links folder, mounted read-only


def test_docker_gets_the_same_secrets_and_no_host_folders(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    log = dry_run(tmp_path, ENGINE="docker", PIP_CONFIG_FILE="/dev/null", PIP_FIND_LINKS=str(wheels), CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt",
                  HTTPS_PROXY="http://proxy.corp.example:3128")
    operator, trainer = build_commands(log)
    for command, target in ((operator, "operator"), (trainer, "trainer")):
        assert command.startswith(f"docker build --target {target} -t ")
        assert "--secret id=ca.crt,src=/etc/ssl/certs/ca-certificates.crt" in command
        assert "--build-arg HTTPS_PROXY" in command and " -v " not in command
    assert "find-links" not in build_pip_conf(log)


def test_without_the_base_image_a_debian_python_is_made_here(tmp_path):
    log = dry_run(tmp_path, "--target", "trainer", ENGINE="buildah", PYTHON_IMAGE="registry.invalid/python:absent")
    assert "mmdebstrap --quiet --format=tar --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates,passwd" in log
    [command] = build_commands(log)
    assert "--build-arg PYTHON_IMAGE=localhost/kubetune/python-base:bookworm " in command


def test_the_dockerfile_mounts_both_secrets_wherever_pip_downloads():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    downloads = [line for line in dockerfile.splitlines() if line.startswith("RUN ") and "--mount=type=cache" in line]
    assert len(downloads) == 3, downloads  # the wheel and both dependency layers
    for line in downloads:
        assert "--mount=type=secret,id=pip.conf,target=/etc/pip.conf" in line and "--mount=type=secret,id=ca.crt " in line
