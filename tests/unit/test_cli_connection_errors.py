"""A cluster the CLI cannot use, as a user meets it: the real `kubetune` console script in a clean environment,
one line on stderr that names the CLI's own flags, no traceback, the documented exit code."""

import socket
import subprocess
import sys
from pathlib import Path

KUBETUNE = str(Path(sys.executable).with_name("kubetune"))
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{port}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u, namespace: team-a}}}}]
current-context: x
"""


def kubetune(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    """No KUBERNETES_SERVICE_HOST (not in a pod) and no ~/.kube/config: only what the test passes."""
    environment = {"PATH": str(Path(sys.executable).parent), "HOME": str(home), "PYTHONSAFEPATH": "1", **env}
    return subprocess.run([KUBETUNE, *args], capture_output=True, text=True, env=environment, timeout=120)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_api_server_is_one_line_and_exit_3(tmp_path):
    port = closed_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG.format(port=port))
    for args in (["list", "-A", "-o", "wide"], ["get", "some-run"]):
        result = kubetune(*args, "--kubeconfig", str(kubeconfig), home=tmp_path)
        assert (result.returncode, result.stdout) == (3, ""), result.stderr
        assert result.stderr == (
            f"kubetune: cannot reach the Kubernetes API server at https://127.0.0.1:{port}: connection refused "
            "(check --kubeconfig / --context)\n"
        )


def test_a_missing_kubeconfig_names_the_flag_and_the_variable_and_exits_2(tmp_path):
    missing = tmp_path / "no-such-kubeconfig"
    result = kubetune("list", home=tmp_path, KUBECONFIG=str(missing))
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"kubetune: no kubeconfig at {missing} and not running inside a cluster")
    assert "--kubeconfig" in result.stderr and "KUBECONFIG" in result.stderr and "configure()" not in result.stderr

    result = kubetune("events", "some-run", "--kubeconfig", str(missing), home=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"kubetune: kubeconfig {missing} does not exist (use --kubeconfig FILE or set KUBECONFIG")
    assert result.stderr.count("\n") == 1
