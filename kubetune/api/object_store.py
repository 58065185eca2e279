"""Object stores (s3://, gs://, abfs[s]://, az://) through fsspec: what the trainer, the validation step and
local mode share to read a model folder or a checkpoint that lives in one.

Data files are streamed (kubetune.trainer.data.sources); a model folder or a checkpoint is copied once into a
local staging folder, since safetensors and torch.distributed.checkpoint read files by memory map and offset.
Credentials come only from the environment (the pods get them from Secrets by reference, every key an
environment variable): AWS_* for s3fs, AZURE_STORAGE_* for adlfs, which read them themselves, and for gcsfs the
JSON of a service-account key in GOOGLE_SERVICE_ACCOUNT_KEY (GOOGLE_APPLICATION_CREDENTIALS names a file, which
a Secret's key cannot be; delta-rs reads the same key), else Google's default credentials (workload identity).
Nothing here logs or stores them, and no error quotes them. fsspec is imported lazily: the operator never calls
this module.
"""

import functools
import hashlib
import importlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

# The fsspec implementation each scheme needs, for the one-line error when it is not installed.
FSSPEC_PACKAGES = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "abfs": "adlfs", "abfss": "adlfs", "az": "adlfs"}
STAGING_ENV = "KUBETUNE_STAGING_DIR"  # where staged copies go; default: <tmp>/kubetune-staging
GCS_KEY_ENV = "GOOGLE_SERVICE_ACCOUNT_KEY"  # a service-account key file's JSON; the name delta-rs reads too
GCS_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"  # gcsfs sends its requests there instead of Google's endpoint
# Kubetune only reads object stores: the token it asks for with a service-account key is read-only.
GCS_READ_ONLY_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
_MODEL_FILES_WITHOUT_WEIGHTS = (".json", ".model", ".txt", ".jinja")


class ObjectStoreError(OSError):
    """An object-store location cannot be read: no such object, no access, or no fsspec implementation."""


def filesystem(uri: str):
    """(fsspec filesystem, path inside it) for `uri`; a missing implementation is named in one line."""
    import fsspec

    scheme = uri.partition("://")[0]
    options = _gcs_options(uri) if FSSPEC_PACKAGES.get(scheme) == "gcsfs" else {}
    try:
        return fsspec.core.url_to_fs(uri, **options)
    except ImportError:
        package = FSSPEC_PACKAGES.get(scheme, f"the fsspec implementation for {scheme}://")
        raise ObjectStoreError(f"{uri}: reading {scheme}:// needs the package {package}: pip install {package}") from None


def _gcs_options(uri: str) -> dict:
    """gcsfs's options: the token of the service-account key in GCS_KEY_ENV, if set (else gcsfs finds Google's
    default credentials); against an emulator, gcsfs's plain JSON-API filesystem."""
    import fsspec

    # gcsfs logs a traceback when its retries run out; the caller says the same in one line (read_error).
    logging.getLogger("gcsfs").setLevel(logging.CRITICAL)
    if os.environ.get(GCS_EMULATOR_ENV):
        # gcsfs's default class asks Google's storage-control API (gRPC) for each bucket's layout first; an
        # emulator speaks only the JSON API.
        for scheme in ("gs", "gcs"):
            fsspec.register_implementation(scheme, "gcsfs.core.GCSFileSystem", clobber=True)
    key = os.environ.get(GCS_KEY_ENV)
    if not key:
        return {}
    from google.auth.exceptions import GoogleAuthError

    try:
        return {"token": _gcs_credentials(key)}
    except ValueError:  # google-auth's messages may quote the key: say only which key is wrong
        raise ObjectStoreError(
            f"{uri}: the storage Secret's key {GCS_KEY_ENV} does not hold a service-account key file's JSON"
        ) from None
    except GoogleAuthError as error:  # the token service's own words (invalid_grant: …), never the key
        raise ObjectStoreError(f"{uri}: no token for the service-account key in {GCS_KEY_ENV}: {error.args[0]}") from None


@functools.lru_cache(maxsize=4)
def _gcs_credentials(key: str):
    """The credentials of a service-account key's JSON, with a token; one object per key, so that fsspec reuses
    its filesystem (it caches them by their arguments) and the token. Only a service account's key: other
    credential files may name commands or URLs to fetch tokens from, which a Secret's key should not decide."""
    import google.auth.transport.requests
    from google.oauth2 import service_account

    info = json.loads(key)
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ValueError("not a service account's key")
    credentials = service_account.Credentials.from_service_account_info(info, scopes=[GCS_READ_ONLY_SCOPE])
    # A first token now: gcsfs retries a refused refresh for half a minute before it fails.
    credentials.refresh(google.auth.transport.requests.Request())
    return credentials


def read_errors() -> tuple[type[BaseException], ...]:
    """What a read from an object store raises when the store, not the code, is at fault: OSError (s3fs,
    gcsfs and adlfs translate most), ValueError, and the clients' own: botocore's (no credentials, no endpoint),
    google-auth's (a token refused) and Azure's (a request refused, such as a bad key's signature)."""
    errors: list[type[BaseException]] = [OSError, ValueError]
    for module, name in (
        ("botocore.exceptions", "BotoCoreError"),
        ("google.auth.exceptions", "GoogleAuthError"),
        ("azure.core.exceptions", "AzureError"),
    ):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except ImportError:
            pass
    return tuple(errors)


def staging_root() -> Path:
    return Path(os.environ.get(STAGING_ENV) or Path(tempfile.gettempdir()) / "kubetune-staging")


def stage_folder(uri: str, *, weights: bool = True, root: Path | None = None) -> Path:
    """A local copy of the folder at `uri`, made once per node: every process that asks at the same time
    copies into its own temporary folder and the first rename wins. `weights=False` leaves out everything but
    a model folder's config, tokenizer and chat template."""
    fs, path = filesystem(uri)
    path = path.rstrip("/")
    try:
        if not fs.isdir(path):
            raise ObjectStoreError(f"{uri}: no such folder")
        files = [f for f in fs.find(path) if weights or f.endswith(_MODEL_FILES_WITHOUT_WEIGHTS)]
    except read_errors() as error:
        raise read_error(uri, error) from None
    root = root or staging_root()
    target = root / f"{hashlib.sha256(uri.encode()).hexdigest()[:16]}{'' if weights else '-light'}"
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        for file in files:
            local = temporary / file[len(path) + 1:]
            local.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(file, str(local))
        os.rename(temporary, target)
    except read_errors() as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if target.is_dir():  # another process on this node staged it first
            return target
        raise read_error(uri, error) from None
    return target


def read_error(uri: str, error: Exception) -> ObjectStoreError:
    """`error`, raised reading `uri`, as one line naming the location."""
    if isinstance(error, ObjectStoreError):
        return error
    # The first line only: Azure's errors go on with the request's id and the response's XML.
    detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    reason = "no such object" if isinstance(error, FileNotFoundError) else f"{type(error).__name__}: {detail}"
    return ObjectStoreError(f"{uri}: cannot read it: {reason}")
