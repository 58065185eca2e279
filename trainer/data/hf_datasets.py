"""Hugging Face datasets as users keep them: a hub id and split (`org/name/split`), the same from an
offline mirror (ROOT/org/name), and folders written by `save_to_disk` wherever a path may point.

`load_dataset` reads a hub id, a mirror of the hub's files and a cache; it refuses a `Dataset.save_to_disk`
folder and, offline, fails with a ConnectionError. Both get one line here that says what to do.
"""

from collections.abc import Iterator
from pathlib import Path

from kubetune.api.locations import Location

from .records import Origin, RawRecord
from .validation import DataProblem, DataValidationError

# What `save_to_disk` writes: a Dataset folder holds both files, a DatasetDict folder the second kind.
SAVED_DATASET_FILES = ("state.json", "dataset_info.json")
SAVED_DATASET_DICT_FILE = "dataset_dict.json"
OFFLINE_HINT = (
    "offline (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE), and not in the Hugging Face cache: put it in the dataset "
    "mirror (the operator's huggingfaceDatasets.mirror, or --dataset-root locally) as ROOT/org/name"
)


def saved_dataset_kind(fs, path: str) -> str | None:
    """"dataset" or "dict" for a save_to_disk folder, else None."""
    root = path.rstrip("/")
    if fs.isfile(f"{root}/{SAVED_DATASET_DICT_FILE}"):
        return "dict"
    if all(fs.isfile(f"{root}/{name}") for name in SAVED_DATASET_FILES):
        return "dataset"
    return None


def read_saved_dataset(url: str, kind: str, split: str | None, display: str) -> Iterator[RawRecord]:
    """Rows of a save_to_disk folder: a Dataset as it is, a DatasetDict's `split` (or its only split)."""
    import datasets

    loaded = datasets.load_from_disk(url)
    if kind == "dict":
        splits = sorted(loaded)
        if split is None and len(splits) == 1:
            split = splits[0]
        if split not in loaded:
            named = f"has no split {split!r}" if split else "holds several splits"
            raise _error(display, f"this save_to_disk folder {named}; its splits are {', '.join(splits)}: "
                         f"name one as {display.rstrip('/')}/<split>")
        loaded = loaded[split]
    for row, value in enumerate(loaded, start=1):
        yield RawRecord(Origin(display, row), drop_nulls(value))


def read_hf_dataset(location: Location, *, dataset_root: Path | None, cache_dir: Path | None) -> Iterator[RawRecord]:
    """Rows of a Hugging Face dataset split, through the same `load_dataset` call whether hub or mirror; a mirror
    folder written by save_to_disk is loaded from disk."""
    import datasets
    from fsspec.implementations.local import LocalFileSystem

    path = location.repo
    if dataset_root is not None:
        mirror = Path(dataset_root) / location.repo
        if not mirror.is_dir():
            raise _error(location.uri, f"dataset {location.repo} is not in the mirror: no folder {mirror}")
        kind = saved_dataset_kind(LocalFileSystem(), str(mirror))
        if kind is not None:
            return read_saved_dataset(str(mirror), kind, location.split, location.uri)
        path = str(mirror)
    try:
        dataset = datasets.load_dataset(path, split=location.split, cache_dir=str(cache_dir) if cache_dir else None)
    except (FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as err:
        raise _error(location.uri, f"dataset not found: {_first_line(err)}") from err
    except datasets.exceptions.DatasetGenerationError as err:  # e.g. files whose columns differ
        raise _error(location.uri, f"cannot read the dataset: {_first_line(err.__cause__ or err)}") from err
    except ConnectionError as err:  # offline, or the hub unreachable
        if "OfflineModeIsEnabled" in str(err) or _offline():
            raise _error(location.uri, f"dataset {location.repo} is {OFFLINE_HINT}") from err
        raise _error(location.uri, f"the Hugging Face hub cannot be reached: {_first_line(err)}") from err
    except ValueError as err:  # an unknown split or a malformed split expression
        raise _error(location.uri, _first_line(err)) from err
    return (RawRecord(Origin(location.uri, row), drop_nulls(value)) for row, value in enumerate(dataset, start=1))


def drop_nulls(value: object) -> object:
    """Columnar formats give every row every column; a null there means the key was absent."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def _offline() -> bool:
    import os

    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on") for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _error(display: str, rule: str) -> DataValidationError:
    return DataValidationError([DataProblem(display, None, rule)])
