"""Run the built images the way a cluster runs them, with buildah (no Docker engine needed).

    chart_tags() -> {"operator": TAG, "trainer": TAG}   the tags hack/build-images.sh gives, the chart's
    source_digests()   sha256 of the working tree's Kubetune modules; INSTALLED_DIGESTS, a Python probe
                       printing the same for the Kubetune installed in an image
    Image(tag)   .config (the OCI config: User, Entrypoint, Cmd, Env), .size (bytes), and
                 .run(command, ...) / .start(command, ...): the command in a fresh container of the image
                 (`buildah run --isolation chroot`), as the given user, on the host's network, with host
                 folders mounted (Mount) and environment variables set; like a pod's command, it replaces
                 the image's entrypoint. .start leaves it running (RunningContainer.stop ends it).
    writable_folder(path)   a folder uid 1000 owns (an emptyDir, or a volume with fsGroup 1000)
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from helpers.cluster import REPO_ROOT

BUILD_SCRIPT = REPO_ROOT / "hack" / "build-images.sh"


def build_script(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BUILD_SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "ENGINE": "buildah", **(env or {})},
    )


def chart_tags() -> dict[str, str]:
    result = build_script("--print-tags")
    assert result.returncode == 0, result.stderr
    return dict(line.split() for line in result.stdout.splitlines())


def buildah_command() -> list[str]:
    result = build_script("--print-engine")
    assert result.returncode == 0, result.stderr
    engine, driver = result.stdout.split()
    assert engine == "buildah", result.stdout
    return ["buildah", "--storage-driver", driver]


PACKAGE_ROOTS = {"kubetune": "kubetune", "kubetune/operator": "operator", "kubetune/trainer": "trainer"}  # setup.py's


def source_digests() -> dict[str, str]:
    """sha256 of every module of the working tree's Kubetune, by its path in site-packages."""
    digests = {}
    for package, folder in PACKAGE_ROOTS.items():
        for init in (REPO_ROOT / folder).rglob("__init__.py"):
            for module in init.parent.glob("*.py"):
                digests[f"{package}/{module.relative_to(REPO_ROOT / folder)}"] = hashlib.sha256(module.read_bytes()).hexdigest()
    return digests


INSTALLED_DIGESTS = (
    "import hashlib, json, pathlib, kubetune; site = pathlib.Path(kubetune.__file__).parent.parent; "
    "print(json.dumps({str(p.relative_to(site)): hashlib.sha256(p.read_bytes()).hexdigest() "
    "for p in (site / 'kubetune').rglob('*.py')}))"
)


@dataclass
class Mount:
    host: Path
    container: str
    read_only: bool = False

    def flag(self) -> str:
        return f"{self.host}:{self.container}" + (":ro" if self.read_only else "")


class Image:
    """A built image in buildah's storage (the driver hack/build-images.sh chose)."""

    def __init__(self, tag: str, build_seconds: float | None = None,
                 source: tuple[dict[str, str], dict[str, str]] = ({}, {})):
        self.tag = tag
        self.build_seconds = build_seconds
        self.source = source  # source_digests() as the build started and as it ended
        self.buildah = buildah_command()

    def inspect(self) -> dict:
        result = subprocess.run([*self.buildah, "inspect", "--type", "image", self.tag],
                                capture_output=True, text=True, timeout=120, check=True)
        return json.loads(result.stdout)

    @property
    def config(self) -> dict:
        return self.inspect()["OCIv1"]["config"]

    @property
    def size(self) -> float:
        """Bytes of the image's file systems, uncompressed, as `buildah images` shows them (3 digits: "357 MB")."""
        result = subprocess.run([*self.buildah, "images", "--json", self.tag],
                                capture_output=True, text=True, timeout=120, check=True)
        [image] = json.loads(result.stdout)
        number, unit = image["size"].split()
        return float(number) * 1000 ** ["B", "kB", "MB", "GB", "TB"].index(unit)

    def resolve(self, path: str) -> str:
        """`path` with the image's symbolic links resolved, as a runtime resolves a mount target (Debian's
        /var/run is a link to /run); buildah's chroot isolation silently skips a target behind a link."""
        result = self.run(["realpath", "-m", path], user="0:0", timeout=120)
        assert result.returncode == 0, result.stdout
        return result.stdout.strip().splitlines()[-1]

    def _container(self, hosts: dict[str, str]) -> str:
        name = f"kubetune-test-{uuid.uuid4().hex[:8]}"
        add_hosts = [f"--add-host={host}:{ip}" for host, ip in hosts.items()]
        subprocess.run([*self.buildah, "from", "--quiet", "--pull=never", "--name", name, *add_hosts, self.tag],
                       capture_output=True, text=True, timeout=600, check=True)
        return name

    def _run_command(self, container: str, command: list[str], user: str | None, mounts: list[Mount],
                     env: dict[str, str], workdir: str | None) -> list[str]:
        return [
            *self.buildah, "run", "--isolation", "chroot", *(["--user", user] if user else []),
            *(f"--volume={m.flag()}" for m in mounts),
            *(f"--env={k}={v}" for k, v in env.items()),
            *([f"--workingdir={workdir}"] if workdir else []),
            container, "--", *command,
        ]

    def run(self, command: list[str], *, user: str | None = "1000:1000", mounts: list[Mount] = (),
            env: dict[str, str] | None = None, hosts: dict[str, str] | None = None, workdir: str | None = None,
            timeout: float = 300, log: Path | None = None) -> subprocess.CompletedProcess:
        """Run `command` to its end in a fresh container; its output (stdout and stderr) is also kept in `log`.
        user=None: the image's own USER. `hosts` maps names to addresses in the container's /etc/hosts."""
        container = self._container(hosts or {})
        try:
            full = self._run_command(container, command, user, list(mounts), env or {}, workdir)
            with tempfile.TemporaryDirectory() as scratch:
                log = log or Path(scratch) / "output.log"
                with open(log, "wb") as out:
                    process = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    _stop_group(process)
                    raise AssertionError(f"{command[0]} in {self.tag} did not finish in {timeout}s:\n"
                                         f"{log.read_text(errors='replace')[-4000:]}") from None
                return subprocess.CompletedProcess(full, process.returncode, log.read_text(errors="replace"))
        finally:
            self._remove(container)

    def start(self, command: list[str], *, log: Path, user: str = "1000:1000", mounts: list[Mount] = (),
              env: dict[str, str] | None = None, workdir: str | None = None) -> RunningContainer:
        """Start `command` in a fresh container and leave it running; stop it with .stop()."""
        container = self._container({})
        full = self._run_command(container, command, user, list(mounts), env or {}, workdir)
        with open(log, "wb") as out:
            process = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return RunningContainer(self, container, process, log)

    def _remove(self, container: str) -> None:
        subprocess.run([*self.buildah, "rm", container], capture_output=True, timeout=600)


@dataclass
class RunningContainer:
    image: Image
    container: str
    process: subprocess.Popen
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        _stop_group(self.process)
        self.image._remove(self.container)


def _stop_group(process: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM the process group `buildah run` leads (the command runs in it), SIGKILL after `grace`."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def writable_folder(path: Path, uid: int = 1000, gid: int = 1000) -> Path:
    """A folder the image's user owns, as Kubernetes gives an emptyDir or a volume with fsGroup."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    return path

