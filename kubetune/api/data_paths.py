"""Where training data lives: one parser shared by the SDK, the operator and the trainer.

Forms:
  pvc://CLAIM/path/in/claim       a PersistentVolumeClaim, mounted read-only by the operator
  s3://… gs://… abfs://… abfss://… az://… hf://…   object stores, read through fsspec
  /abs/path, ./rel, ../rel, file://…, or a name ending in .jsonl/.json/.txt   a local path
  org/name/split                  a Hugging Face dataset and its split
A Delta table is any of the path forms pointing at a folder with a `_delta_log`.
"""

import re
from dataclasses import dataclass
from typing import Literal

# Where the operator mounts claim CLAIM (read-only) and the trainer reads pvc://CLAIM/path: ROOT/CLAIM/path.
PVC_MOUNT_ROOT = "/mnt/data"

OBJECT_STORE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "az", "hf", "http", "https", "memory")
_PVC = re.compile(r"^pvc://(?P<claim>[a-z0-9]([-a-z0-9]*[a-z0-9])?)(?P<path>/.*)?$")
_HF_DATASET = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)/(?P<split>[A-Za-z_][\w.\[\]:%+-]*)$")
_LOCAL_SUFFIXES = (".jsonl", ".json", ".txt")

DataKind = Literal["pvc", "object_store", "local", "huggingface"]


@dataclass(frozen=True)
class DataLocation:
    kind: DataKind
    uri: str
    claim: str | None = None  # pvc only
    path: str | None = None  # pvc: path inside the claim; local: the path
    repo: str | None = None  # huggingface only
    split: str | None = None  # huggingface only


PATH_RULE = (
    "must be pvc://CLAIM/path, an object-store URI (s3://, gs://, abfs://, abfss://, az://, hf://), "
    "a local path (/…, ./…, ../…, file://… or a .jsonl/.json/.txt file), or a Hugging Face dataset org/name/split"
)


def parse_data_path(uri: str) -> DataLocation:
    """Classify a data path; raises ValueError with the accepted forms when it matches none."""
    uri = uri.strip()
    if not uri:
        raise ValueError(PATH_RULE)
    if uri.startswith("pvc://"):
        m = _PVC.match(uri)
        if not m:
            raise ValueError("pvc:// paths must be pvc://CLAIM/path with CLAIM a valid PersistentVolumeClaim name")
        return DataLocation("pvc", uri, claim=m["claim"], path=(m["path"] or "/"))
    scheme, sep, _ = uri.partition("://")
    if sep:
        if scheme == "file":
            return DataLocation("local", uri, path=uri[len("file://"):])
        if scheme in OBJECT_STORE_SCHEMES:
            return DataLocation("object_store", uri)
        raise ValueError(f"unknown scheme {scheme}://; {PATH_RULE}")
    if uri.startswith(("/", "./", "../")) or uri.endswith(_LOCAL_SUFFIXES):
        return DataLocation("local", uri, path=uri)
    m = _HF_DATASET.match(uri)
    if m:
        return DataLocation("huggingface", uri, repo=m["repo"], split=m["split"])
    raise ValueError(PATH_RULE)
