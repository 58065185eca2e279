"""Where an input lives and how a pod reaches it: one parser for the spec, the SDK, the CLI, the
operator's volume mounts, the validation step, local mode and the trainer.

Data paths (trainDataPath, evalDataPath):
  pvc://CLAIM/path/in/claim       a PersistentVolumeClaim, mounted read-only by the operator at ROOT/CLAIM
  s3://… gs://… abfs://… abfss://… az://… hf://…   object stores, read through fsspec
  /abs/path, ./rel, ../rel, file://…, or a name ending in .jsonl/.json/.txt   a local path
  org/name/split                  a Hugging Face dataset and its split
  A Delta table is any of the path forms pointing at a folder with a `_delta_log`.
Models (model):
  a supported model's name, or hf://org/name   a Hugging Face hub id
  pvc://CLAIM/path, a local path, an object-store URI   a Hugging Face model folder
Custom weights (customWeightsPath):
  an earlier run's name (a DNS label)   that run's latest checkpoint
  pvc://CLAIM/path, a local path, an object-store URI   a checkpoint folder or a run's `latest`

ROOT is PVC_MOUNT_ROOT in every pod; local mode passes its own root to `local_path`.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kubetune.api import supported_models
from kubetune.api.identifiers import DNS_LABEL, DNS_LABEL_PATTERN

# Where the operator mounts claim CLAIM (read-only) and every side reads pvc://CLAIM/path: ROOT/CLAIM/path.
PVC_MOUNT_ROOT = "/mnt/data"

OBJECT_STORE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "az", "hf", "http", "https", "memory")
_PVC = re.compile(rf"^pvc://(?P<claim>{DNS_LABEL_PATTERN[1:-1]})(?P<path>/.*)?$")
_HF_DATASET = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)/(?P<split>[A-Za-z_][\w.\[\]:%+-]*)$")
_LOCAL_PREFIXES = ("/", "./", "../")
_LOCAL_SUFFIXES = (".jsonl", ".json", ".txt")
HUB_MODEL_SCHEME = "hf://"
# Every model that is not a supported model's name starts with one of these (the CRD checks it with CEL).
MODEL_PATH_PREFIXES = ("/", "./", "../", "pvc://", "s3://", "gs://", "abfs://", "abfss://", "file://", HUB_MODEL_SCHEME)

LocationKind = Literal["pvc", "object_store", "local", "huggingface", "hub_model", "run_name"]


@dataclass(frozen=True)
class Location:
    kind: LocationKind
    uri: str
    claim: str | None = None  # pvc only
    path: str | None = None  # pvc: path inside the claim; local: the path
    repo: str | None = None  # huggingface and hub_model: org/name
    split: str | None = None  # huggingface only

    def local_path(self, pvc_mount_root: Path | str = PVC_MOUNT_ROOT) -> Path | None:
        """The path a process opens for a pvc:// or local location; None for remote ones."""
        if self.kind == "pvc":
            return Path(pvc_mount_root) / self.claim / self.path.lstrip("/")  # type: ignore[operator,union-attr]
        if self.kind == "local":
            return Path(self.path)  # type: ignore[arg-type]
        return None


PATH_RULE = (
    "must be pvc://CLAIM/path, an object-store URI (s3://, gs://, abfs://, abfss://, az://, hf://), "
    "a local path (/…, ./…, ../…, file://… or a .jsonl/.json/.txt file), or a Hugging Face dataset org/name/split"
)
CUSTOM_WEIGHTS_ON_OBJECT_STORE = (
    "checkpoints on an object store are not supported yet; use a run's name, pvc://CLAIM/path or a path in the image"
)
MODEL_RULE = (
    "must be a supported model (run `kubetune models`) or the path or URI of a Hugging Face model folder "
    "(/…, ./…, pvc://…, s3://…, hf://org/name)"
)


def parse_data_path(uri: str) -> Location:
    """Classify a data path; raises ValueError with the accepted forms when it matches none."""
    uri = uri.strip()
    if not uri:
        raise ValueError(PATH_RULE)
    folder = _folder_location(uri, PATH_RULE)
    if folder is not None:
        return folder
    if uri.endswith(_LOCAL_SUFFIXES):
        return Location("local", uri, path=uri)
    m = _HF_DATASET.match(uri)
    if m:
        return Location("huggingface", uri, repo=m["repo"], split=m["split"])
    raise ValueError(PATH_RULE)


def parse_model(value: str) -> Location:
    """A supported model or hf://org/name is a hub id; the other forms are a model folder."""
    value = value.strip()
    if supported_models.lookup(value):
        return Location("hub_model", value, repo=value)
    if value.startswith(HUB_MODEL_SCHEME):
        repo = value.removeprefix(HUB_MODEL_SCHEME).strip("/")
        if not repo:
            raise ValueError(MODEL_RULE)
        return Location("hub_model", value, repo=repo)
    if not value.startswith(MODEL_PATH_PREFIXES):
        raise ValueError(MODEL_RULE)
    return _folder_location(value, MODEL_RULE)  # type: ignore[return-value]


def parse_custom_weights(value: str) -> Location:
    """A bare DNS label names an earlier run; anything else is a checkpoint path (relative paths allowed)."""
    value = value.strip()
    if DNS_LABEL.match(value):
        return Location("run_name", value, path=value)
    folder = _folder_location(value, "must be pvc://CLAIM/path, an object-store URI, a local path or a run's name")
    return folder or Location("local", value, path=value)


def _folder_location(uri: str, rule: str) -> Location | None:
    """pvc://, object-store and local forms; None when `uri` has none of them."""
    if uri.startswith("pvc://"):
        m = _PVC.match(uri)
        if not m:
            raise ValueError("pvc:// paths must be pvc://CLAIM/path with CLAIM a valid PersistentVolumeClaim name")
        return Location("pvc", uri, claim=m["claim"], path=(m["path"] or "/"))
    scheme, sep, _ = uri.partition("://")
    if sep:
        if scheme == "file":
            return Location("local", uri, path=uri[len("file://"):])
        if scheme in OBJECT_STORE_SCHEMES:
            return Location("object_store", uri)
        raise ValueError(f"unknown scheme {scheme}://; {rule}")
    if uri.startswith(_LOCAL_PREFIXES):
        return Location("local", uri, path=uri)
    return None


def claims(*locations: Location | None) -> list[str]:
    """The PersistentVolumeClaims the locations name, sorted, without repeats: what a pod must mount."""
    return sorted({loc.claim for loc in locations if loc is not None and loc.kind == "pvc" and loc.claim})
