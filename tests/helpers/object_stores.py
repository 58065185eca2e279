"""Real Google Cloud Storage and Azure Blob Storage servers for tests, on loopback, a free port, one per session:

    gcs_env    (session fixture) -> gcp-storage-emulator (a PyPI package, the dev extra), with the bucket BUCKET
    azure_env  (session fixture) -> Azurite (an npm package; hack/azurite.sh installs it under .cache/ on first
                                    use), with the container CONTAINER

Each yields the keys of a storage Secret for its server, also set in this test process while the session runs:
everything reaches the servers the way the pods do, gcsfs and adlfs reading the environment. Like
helpers.s3_server's s3_env, only one store's environment is set at a time in this process per test module.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.health import stop, wait_healthy
from helpers.mlflow_server import free_port

START_TIMEOUT_S = 60.0
REPO_ROOT = Path(__file__).resolve().parents[2]
BUCKET = "kubetune-tests"
CONTAINER = "kubetune-tests"
# Azurite's one built-in account and its published key (Microsoft's documentation; it guards nothing).
AZURITE_ACCOUNT = "devstoreaccount1"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # what google-auth signs for, whatever the token_uri
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def gcs_secret_env(endpoint: str) -> dict[str, str]:
    """A storage Secret's keys for the GCS emulator: its address (it accepts any or no token)."""
    return {"STORAGE_EMULATOR_HOST": endpoint}


def azure_secret_env(endpoint: str, key: str = AZURITE_KEY) -> dict[str, str]:
    """A storage Secret's keys for Azurite: a connection string (Azurite checks the key's signatures)."""
    return {
        "AZURE_STORAGE_CONNECTION_STRING": f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={key};BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};"
    }


@contextlib.contextmanager
def running_server(name: str, command: list[str], ready_url: str, log: Path) -> Iterator[None]:
    """`command` (a server on loopback, run in the log's folder) until the block ends; fails with its log when
    it does not answer."""
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
        try:
            wait_healthy(ready_url, lambda: process.poll() is not None, log.read_text, START_TIMEOUT_S, name, any_answer=True)
            yield
        finally:
            stop(process, timeout=30)


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """`env` set in this process's os.environ for the block (a store's Secret keys, read by its fsspec client)."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def azurite_command() -> str:
    """The azurite-blob command, installed by hack/azurite.sh on first use; skips only without Node.js/npm."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Azurite (the abfs:// tests' emulator) needs Node.js 20+ and npm, which are not installed")
    result = subprocess.run([str(REPO_ROOT / "hack/azurite.sh")], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"hack/azurite.sh failed: {result.stderr[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def gcs_env(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A running GCS emulator with the bucket BUCKET; its Secret's keys, also set in os.environ meanwhile."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port),
        "--in-memory", "--default-bucket", BUCKET,
    ]
    log = tmp_path_factory.mktemp("gcs") / "gcp-storage-emulator.log"
    with running_server("gcp-storage-emulator", command, f"{endpoint}/storage/v1/b", log):
        env = gcs_secret_env(endpoint)
        with environment(env):
            yield env


@pytest.fixture(scope="session")
def azure_env(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A running Azurite with the container CONTAINER; its Secret's keys, also set in os.environ meanwhile."""
    azurite = azurite_command()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    workspace = tmp_path_factory.mktemp("azurite")
    command = [
        azurite, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence", "--silent", "--disableTelemetry",
        "--skipApiVersionCheck",  # the Azure SDK may be newer than the emulator's API version
    ]
    with running_server("Azurite", command, f"{endpoint}/{AZURITE_ACCOUNT}?comp=list", workspace / "azurite.log"):
        env = azure_secret_env(endpoint)
        with environment(env):
            fresh_filesystem("abfs").mkdir(CONTAINER)
            yield env


def fresh_filesystem(scheme: str):
    """An fsspec filesystem for `scheme` made from the current environment, with no listing cached."""
    import fsspec

    if scheme in ("gs", "gcs"):  # the JSON-API filesystem, as kubetune.api.object_store uses it with an emulator
        from gcsfs.core import GCSFileSystem as cls
    else:
        cls = fsspec.get_filesystem_class(scheme)
    fs = cls(skip_instance_cache=True)
    fs.invalidate_cache()
    return fs


def upload(local: Path, uri: str) -> None:
    """Copy a local file or folder to gs://… or abfs://… (a fresh client: no listing cached before the upload)."""
    scheme, _, path = uri.partition("://")
    fs = fresh_filesystem(scheme)
    fs.put(str(local), path, recursive=Path(local).is_dir())
    fs.invalidate_cache()


def service_account_key(token_uri: str) -> tuple[dict, bytes]:
    """A new service account's key file (as JSON) whose tokens come from `token_uri`, and its public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    key = {
        "type": "service_account", "project_id": "kubetune-tests", "private_key_id": "1", "private_key": pem,
        "client_email": "trainer@kubetune-tests.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri,
    }
    return key, public


@contextlib.contextmanager
def token_service(public_key: bytes) -> Iterator[str]:
    """Google's OAuth token exchange for one service account, on loopback (the emulators have none): a JWT
    assertion signed by that account's key gets an access token, any other `invalid_grant`, as Google answers.
    Yields the token URI."""
    import http.server
    import json
    import threading
    import urllib.parse

    from google.auth import jwt

    class Exchange(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            try:
                jwt.decode(form["assertion"][0], certs=public_key, verify=True, audience=GOOGLE_TOKEN_AUDIENCE)
                status, body = 200, {"access_token": "kubetune-test-token", "expires_in": 3600, "token_type": "Bearer"}
            except (KeyError, ValueError):
                status, body = 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Exchange)
    token_uri = f"http://127.0.0.1:{server.server_port}/token"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield token_uri
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def gcs_key(gcs_env):
    """The keys of a GCS storage Secret holding a service-account key: (keys, the key's JSON)."""
    key, public = service_account_key(token_uri="")
    with token_service(public) as token_uri:
        key["token_uri"] = token_uri
        yield {**gcs_env, "GOOGLE_SERVICE_ACCOUNT_KEY": json.dumps(key)}, key


def validate_data(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`kubetune validate-data ARGS` (the validation step's command) with `env` as its only environment besides
    PATH and HOME: what a storage Secret gives the pod."""
    base = {"PATH": str(Path(sys.executable).parent), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONSAFEPATH": "1"}
    kubetune = str(Path(sys.executable).with_name("kubetune"))
    return subprocess.run(
        [kubetune, "validate-data", *args], capture_output=True, text=True, env={**base, **env}, timeout=300
    )
