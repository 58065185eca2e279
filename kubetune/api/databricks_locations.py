"""Where Databricks' Unity Catalog locations live on the cluster: one mapping, the operator configuration's
`databricks` section and local mode's file alike.

    volumes:                                 # dbfs:/Volumes/CATALOG/SCHEMA/VOLUME/path and /Volumes/…
      main.default.chat: pvc://datasets/chat          # → pvc://datasets/chat/path
      main.default.raw: s3://bucket/volumes/raw      # → s3://bucket/volumes/raw/path
    tables:                                  # CATALOG.SCHEMA.TABLE
      main.default.chat_table: s3://bucket/delta/chat_table   # a Delta table's folder, read with delta-rs

A volume maps to a prefix (a PVC path, an object-store URI or a local folder): the path inside the volume is
appended. A table maps to the folder holding its `_delta_log`. Anything unmapped is refused before a run starts
(kubetune.api.locations.unmapped_message says how to map it).
"""

import os
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kubetune.api.errors import SpecError, SpecProblem
from kubetune.api.locations import Location, classify_data_path, parse_data_path
from kubetune.api.redaction import CREDENTIALS_RULE, carries_credentials
from kubetune.api.spec import FineTuneRunSpec

# Local mode (`kubetune run --local`, `kubetune validate-data`) reads the mapping from this file when set.
LOCATIONS_FILE_ENV = "KUBETUNE_DATABRICKS_LOCATIONS"
_UC_NAME = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"


class DatabricksLocations(BaseModel):
    """Unity Catalog volumes and tables, each by its three-part name, mapped to storage the cluster has."""

    model_config = ConfigDict(extra="forbid")

    volumes: dict[str, str] = Field(
        default_factory=dict,
        description="CATALOG.SCHEMA.VOLUME: pvc://CLAIM/prefix, s3://bucket/prefix (gs://, abfss://) or a local "
        "folder; dbfs:/Volumes/CATALOG/SCHEMA/VOLUME/path (or /Volumes/…) reads <prefix>/path.",
    )
    tables: dict[str, str] = Field(
        default_factory=dict,
        description="CATALOG.SCHEMA.TABLE: the Delta table's folder (holding _delta_log) as pvc://CLAIM/path, an "
        "object-store URI or a local folder; read with delta-rs.",
    )

    @field_validator("volumes", "tables")
    @classmethod
    def _names_and_targets(cls, value: dict[str, str]) -> dict[str, str]:
        for name, target in value.items():
            if not re.match(_UC_NAME, name):
                raise ValueError(f"{name!r} is not a three-part Unity Catalog name CATALOG.SCHEMA.NAME")
            if carries_credentials(target):
                raise ValueError(f"{name}: the target {CREDENTIALS_RULE}")
            kind = classify_data_path(target).kind
            if kind not in ("pvc", "object_store", "local"):
                raise ValueError(f"{name}: {target!r} must be pvc://CLAIM/path, an object-store URI or a local path")
        return value

    def target(self, location: Location) -> str | None:
        """The location a Unity Catalog volume path or table reads, or None when it is not mapped."""
        full_name = f"{location.catalog}.{location.schema}.{location.name}"
        if location.kind == "uc_table":
            return self.tables.get(full_name)
        prefix = self.volumes.get(full_name)
        if prefix is None:
            return None
        inside = (location.path or "/").strip("/")
        return f"{prefix.rstrip('/')}/{inside}" if inside else prefix

    @classmethod
    def load(cls, path: Path | str) -> "DatabricksLocations":
        """Read a mapping file (YAML: volumes and tables, as in the operator configuration's `databricks`)."""
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
            return cls.model_validate(data)
        except (OSError, yaml.YAMLError) as error:
            raise ValueError(f"{path}: cannot read the Databricks locations file: {error}") from None
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise ValueError(f"{path}: invalid Databricks locations file: {problems}") from None

    @classmethod
    def for_local_mode(cls, path: Path | str | None = None) -> "DatabricksLocations | None":
        """The mapping local mode uses: `path` (a flag), else the file KUBETUNE_DATABRICKS_LOCATIONS names, else none."""
        chosen = path or os.environ.get(LOCATIONS_FILE_ENV)
        return cls.load(chosen) if chosen else None


def mapped_data_path(path: str, mapping: DatabricksLocations | None) -> str:
    """What a data path reads: a Unity Catalog volume path or table becomes its mapped location, any other form
    stays as written (its readers check it). Raises ValueError for an unmapped one, saying how to map it."""
    try:
        kind = classify_data_path(path).kind
    except ValueError:
        return path
    return parse_data_path(path, mapping).uri if kind in ("uc_volume", "uc_table") else path


def map_spec_locations(spec: FineTuneRunSpec, mapping: DatabricksLocations | None) -> FineTuneRunSpec:
    """The spec with its Unity Catalog data paths replaced by their mapped locations, as every pod reads it
    (the operator's admission and local mode alike); SpecError names each unmapped field and how to map it."""
    updates, problems = {}, []
    for field, alias in (("train_data_path", "trainDataPath"), ("eval_data_path", "evalDataPath")):
        value = getattr(spec, field)
        if value is None:
            continue
        try:
            updates[field] = mapped_data_path(value, mapping)
        except ValueError as error:
            problems.append(SpecProblem(f"spec.{alias}", str(error)))
    if problems:
        raise SpecError(problems)
    return spec.model_copy(update=updates)
