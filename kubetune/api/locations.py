"""Where an input lives and how a pod reaches it: one parser for the spec, the SDK, the CLI, the
operator's volume mounts, the validation step, local mode and the trainer.

Data paths (trainDataPath, evalDataPath):
  pvc://CLAIM/path/in/claim       a PersistentVolumeClaim, mounted read-only by the operator at ROOT/CLAIM
  s3://… gs://… abfs://… abfss://… az://… hf://…   object stores, read through fsspec
  /abs/path, ./rel, ../rel, file://…, or a name ending in .jsonl/.json/.txt   a local path
  org/name/split, name/split      a Hugging Face dataset and its split
  A Delta table is any of the path forms pointing at a folder with a `_delta_log`.
Databricks' forms, classified as databricks-genai classifies them (classify_data_path):
  /Volumes/… and /databricks/…    mean dbfs:/Volumes/… and dbfs:/databricks/…
  dbfs:/Volumes/CATALOG/SCHEMA/VOLUME/path   a Unity Catalog volume
  CATALOG.SCHEMA.TABLE (dots, no /)          a Unity Catalog table
  any other form with / that is not a URI or a local path is a Hugging Face dataset.
  The operator configuration's `databricks` section (locally: the file --databricks-locations or
  KUBETUNE_DATABRICKS_LOCATIONS names) maps each volume to a pvc:// or object-store prefix and each table
  to its Delta folder (kubetune.api.databricks_locations); parse_data_path refuses an unmapped one, saying
  how to map it.
Models (model):
  a supported model's name, or hf://org/name   a Hugging Face hub id
  pvc://CLAIM/path, a local path, an object-store URI   a Hugging Face model folder
Custom weights (customWeightsPath):
  an earlier run's name (a DNS label)   that run's latest checkpoint
  runs:/RUN_ID, runs:/RUN_ID/checkpoints[/ep{E}-ba{B}]   a checkpoint the MLflow run RUN_ID lists (the latest
                                        without a name): the trainer and the validation step ask MLflow which
                                        FineTuneRun made it, and read it from that run's checkpoint folder
  pvc://CLAIM/path, a local path, an object-store URI   a checkpoint folder or a run's `latest`

ROOT is PVC_MOUNT_ROOT in every pod; local mode passes its own root to `local_path`.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from kubetune.api import supported_models
from kubetune.api.identifiers import DNS_LABEL, DNS_LABEL_PATTERN

# Where the operator mounts claim CLAIM (read-only) and every side reads pvc://CLAIM/path: ROOT/CLAIM/path.
PVC_MOUNT_ROOT = "/mnt/data"
# Local mode and the CLI read Hugging Face datasets (org/name/split) from the offline mirror $KUBETUNE_DATASET_ROOT/org/name.
DATASET_ROOT_ENV = "KUBETUNE_DATASET_ROOT"

OBJECT_STORE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "az", "hf", "http", "https", "memory")
_PVC = re.compile(rf"^pvc://(?P<claim>{DNS_LABEL_PATTERN[1:-1]})(?P<path>/.*)?$")
_HF_DATASET = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*(?:/[\w.-]+)?)/(?P<split>[A-Za-z_][\w.\[\]:%+-]*)$")
_LOCAL_PREFIXES = ("/", "./", "../")
_LOCAL_SUFFIXES = (".jsonl", ".json", ".txt")
HUB_MODEL_SCHEME = "hf://"
# Every model that is not a supported model's name starts with one of these (the CRD checks it with CEL).
MODEL_PATH_PREFIXES = ("/", "./", "../", "pvc://", "s3://", "gs://", "abfs://", "abfss://", "file://", HUB_MODEL_SCHEME)

LocationKind = Literal[
    "pvc", "object_store", "local", "huggingface", "hub_model", "run_name", "mlflow_run", "uc_volume", "uc_table"
]
DBFS_SCHEME = "dbfs:"
DATABRICKS_ABSOLUTE_PREFIXES = ("/Volumes", "/databricks")  # Databricks reads these as dbfs:/Volumes, dbfs:/databricks
_UC_VOLUME = re.compile(r"^dbfs:/Volumes/(?P<catalog>[^/]+)/(?P<schema>[^/]+)/(?P<volume>[^/]+)(?P<path>/.*)?$")
_UC_NAME_PART = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Location:
    kind: LocationKind
    uri: str
    claim: str | None = None  # pvc only
    path: str | None = None  # pvc: path inside the claim; local: the path
    repo: str | None = None  # huggingface and hub_model: org/name
    split: str | None = None  # huggingface only
    catalog: str | None = None  # uc_volume and uc_table
    schema: str | None = None  # uc_volume and uc_table
    name: str | None = None  # uc_volume: the volume; uc_table: the table; mlflow_run: the checkpoint (None: latest)
    run_id: str | None = None  # mlflow_run only

    def local_path(self, pvc_mount_root: Path | str = PVC_MOUNT_ROOT) -> Path | None:
        """The path a process opens for a pvc:// or local location; None for remote ones."""
        if self.kind == "pvc":
            return Path(pvc_mount_root) / self.claim / self.path.lstrip("/")  # type: ignore[operator,union-attr]
        if self.kind == "local":
            return Path(self.path)  # type: ignore[arg-type]
        return None


PATH_RULE = (
    "must be pvc://CLAIM/path, an object-store URI (s3://, gs://, abfs://, abfss://, az://, hf://), "
    "a local path (/…, ./…, ../…, file://… or a .jsonl/.json/.txt file), or a Hugging Face dataset org/name/split (or name/split)"
)
MODEL_RULE = (
    "must be a supported model (run `kubetune models`) or the path or URI of a Hugging Face model folder "
    "(/…, ./…, pvc://…, s3://…, hf://org/name)"
)


class DatabricksMapping(Protocol):
    """What maps a Unity Catalog volume or table to a location (kubetune.api.databricks_locations)."""

    def target(self, location: Location) -> str | None: ...


def parse_data_path(uri: str, mapping: DatabricksMapping | None = None) -> Location:
    """A data path the cluster can read; raises ValueError with the accepted forms when it matches none. A Unity
    Catalog volume or table becomes the location `mapping` gives it; unmapped, it is refused saying how to map it."""
    location = classify_data_path(uri)
    if location.kind not in ("uc_volume", "uc_table"):
        return location
    target = mapping.target(location) if mapping is not None else None
    if target is None:
        raise ValueError(unmapped_message(location))
    mapped = classify_data_path(target)
    if mapped.kind not in ("pvc", "object_store", "local"):
        raise ValueError(f"{uri} is mapped to {target}, which is not pvc://, an object store or a local path")
    return mapped


def databricks_form(path: str) -> str:
    """The path as Databricks reads it: /Volumes/… and /databricks/… are dbfs:/Volumes/… and dbfs:/databricks/…."""
    return f"{DBFS_SCHEME}{path}" if path.startswith(DATABRICKS_ABSOLUTE_PREFIXES) else path


def classify_data_path(uri: str) -> Location:
    """What a data path names, Databricks' forms included (a UC volume or table is classified, not refused)."""
    uri = uri.strip()
    if not uri:
        raise ValueError(PATH_RULE)
    dbfs = databricks_form(uri)
    if dbfs.startswith(DBFS_SCHEME):
        return _dbfs_location(uri, dbfs)
    folder = _folder_location(uri, PATH_RULE)
    if folder is not None:
        return folder
    if uri.endswith(_LOCAL_SUFFIXES):
        return Location("local", uri, path=uri)
    if "/" not in uri and "." in uri:
        return _uc_table(uri)
    m = _HF_DATASET.match(uri)
    if m:
        return Location("huggingface", uri, repo=m["repo"], split=m["split"])
    raise ValueError(PATH_RULE)


def unmapped_message(location: Location) -> str:
    """Why a Unity Catalog volume or table cannot be read, how to map it, and what to pass instead."""
    full_name = f"{location.catalog}.{location.schema}.{location.name}"
    if location.kind == "uc_volume":
        what = f"{location.uri} is in the Unity Catalog volume {full_name}"
        section, target = "volumes", "pvc://CLAIM/prefix or s3://bucket/prefix holding the volume's files"
        instead = "pvc://CLAIM/path or s3://bucket/path"
    else:
        what = f"{location.uri} is a Unity Catalog table"
        section, target = "tables", "the Delta table's folder (the one holding _delta_log)"
        instead = "the Delta table's folder as pvc://CLAIM/path or s3://bucket/path"
    return (
        f"{what}, which is not mapped to storage the cluster has: map it under databricks.{section} "
        f"({full_name}: {target}) in the operator configuration (kubetune run --local: in the file "
        f"--databricks-locations or KUBETUNE_DATABRICKS_LOCATIONS names), or pass {instead}"
    )


def _dbfs_location(uri: str, dbfs: str) -> Location:
    m = _UC_VOLUME.match(dbfs)
    if m:
        return Location("uc_volume", uri, catalog=m["catalog"], schema=m["schema"], name=m["volume"], path=m["path"] or "/")
    raise ValueError(
        f"{uri}: Databricks reads it as {dbfs}, and only Unity Catalog volumes "
        "(dbfs:/Volumes/CATALOG/SCHEMA/VOLUME/path) of DBFS have a meaning here; " + PATH_RULE
    )


def _uc_table(uri: str) -> Location:
    parts = uri.split(".")
    if len(parts) != 3 or not all(_UC_NAME_PART.match(p) for p in parts):
        raise ValueError(f"{uri}: a name with dots and no / is a Unity Catalog table, CATALOG.SCHEMA.TABLE; " + PATH_RULE)
    return Location("uc_table", uri, catalog=parts[0], schema=parts[1], name=parts[2])


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


MLFLOW_RUNS_SCHEME = "runs:/"
_MLFLOW_CHECKPOINT = re.compile(r"^runs:/(?P<run_id>[0-9A-Za-z_-]+)(?:/checkpoints(?:/(?P<name>ep\d+-ba\d+|latest))?)?/?$")
MLFLOW_CHECKPOINT_RULE = (
    "an MLflow checkpoint reference must be runs:/RUN_ID (its latest checkpoint), runs:/RUN_ID/checkpoints "
    "or runs:/RUN_ID/checkpoints/ep{E}-ba{B}"
)


def parse_custom_weights(value: str) -> Location:
    """A bare DNS label names an earlier run; runs:/… a checkpoint an MLflow run lists; anything else is a
    checkpoint path (relative paths allowed)."""
    value = value.strip()
    if DNS_LABEL.match(value):
        return Location("run_name", value, path=value)
    if value.startswith(MLFLOW_RUNS_SCHEME):
        m = _MLFLOW_CHECKPOINT.match(value)
        if not m:
            raise ValueError(MLFLOW_CHECKPOINT_RULE)
        name = None if m["name"] in (None, "latest") else m["name"]
        return Location("mlflow_run", value, run_id=m["run_id"], name=name)
    if databricks_form(value).startswith(DBFS_SCHEME):
        raise ValueError(
            f"{value} is a Databricks location (Databricks reads it as {databricks_form(value)}); "
            "start from an earlier run here: its name, or its checkpoint as pvc://CLAIM/path or a path in the image"
        )
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
