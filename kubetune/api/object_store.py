"""Object stores (s3://, gs://, abfs[s]://, az://) through fsspec: what the trainer, the validation step and
local mode share to read a model folder or a checkpoint that lives in one.

Data files are streamed (kubetune.trainer.data.sources); a model folder or a checkpoint is copied once into a
local staging folder, since safetensors and torch.distributed.checkpoint read files by memory map and offset.
Credentials come only from the environment (the pods get them from Secrets by reference: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AZURE_STORAGE_CONNECTION_STRING, GOOGLE_APPLICATION_CREDENTIALS, …);
nothing here logs or stores them. fsspec is imported lazily: the operator never calls this module.
"""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

# The fsspec implementation each scheme needs, for the one-line error when it is not installed.
FSSPEC_PACKAGES = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "abfs": "adlfs", "abfss": "adlfs", "az": "adlfs"}
STAGING_ENV = "KUBETUNE_STAGING_DIR"  # where staged copies go; default: <tmp>/kubetune-staging
_MODEL_FILES_WITHOUT_WEIGHTS = (".json", ".model", ".txt", ".jinja")


class ObjectStoreError(OSError):
    """An object-store location cannot be read: no such object, no access, or no fsspec implementation."""


def filesystem(uri: str):
    """(fsspec filesystem, path inside it) for `uri`; a missing implementation is named in one line."""
    import fsspec

    scheme = uri.partition("://")[0]
    if scheme == "abfss" and scheme not in fsspec.available_protocols():  # adlfs reads abfss:// as abfs://
        fsspec.register_implementation("abfss", "adlfs.AzureBlobFileSystem")
    try:
        return fsspec.core.url_to_fs(uri)
    except ImportError:
        package = FSSPEC_PACKAGES.get(scheme, f"the fsspec implementation for {scheme}://")
        raise ObjectStoreError(f"{uri}: reading {scheme}:// needs the package {package}: pip install {package}") from None


def read_errors() -> tuple[type[BaseException], ...]:
    """What a read from an object store raises when the store, not the code, is at fault: OSError (s3fs,
    gcsfs and adlfs translate most), ValueError, and botocore's own (no credentials, no endpoint)."""
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:
        return (OSError, ValueError)
    return (OSError, ValueError, BotoCoreError)


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
    reason = "no such object" if isinstance(error, FileNotFoundError) else f"{type(error).__name__}: {error}"
    return ObjectStoreError(f"{uri}: cannot read it: {reason}")
