"""Reading a checkpoint without trusting it: a checkpoint folder can come from another run on a shared claim
(customWeightsPath), and torch's own loaders unpickle what they find there, which can run any code.

The tensors are read by torch.distributed.checkpoint from its own binary files; only its `.metadata` index
is a pickle. `VettedCheckpointReader` unpickles that index with an allow-list: the classes of
torch.distributed.checkpoint, torch's dtypes, sizes and layouts, and plain containers. Anything else (a
function to call, another module's class) is refused before it is looked up, naming the file and the name.
The RNG states are loaded with `torch.load(weights_only=True)` (tensors and plain values only).
"""

import builtins
import collections
import pickle
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import StorageMeta

METADATA_FILE = ".metadata"  # torch.distributed.checkpoint's index file in every checkpoint folder
_CHECKPOINT_MODULES = "torch.distributed.checkpoint."
_PLAIN = {("builtins", name) for name in ("set", "frozenset", "slice", "complex")} | {("collections", "OrderedDict")}
_PATHS = {"Path", "PosixPath", "PurePath", "PurePosixPath"}  # the index keeps the checkpoint's own path


class UntrustedCheckpointError(Exception):
    """A checkpoint's index names something a checkpoint never holds: resuming from it could run code."""


class _VettedUnpickler(pickle.Unpickler):
    def __init__(self, stream, source: str):
        super().__init__(stream)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PLAIN:
            return getattr(builtins if module == "builtins" else collections, name)
        if module in ("pathlib", "pathlib._local") and name in _PATHS:
            return super().find_class(module, name)
        if module.startswith(_CHECKPOINT_MODULES) or module == "torch.distributed.checkpoint":
            found = super().find_class(module, name)
            if isinstance(found, type):  # a class of the index (Metadata, TensorStorageMetadata, ...), not a function
                return found
        if module == "torch":
            found = getattr(torch, name, None)
            if isinstance(found, (torch.dtype, torch.layout, torch.memory_format)) or found is torch.Size:
                return found
        if (module, name) == ("torch.serialization", "_get_layout"):  # how torch pickles a layout: a name to look up
            return super().find_class(module, name)
        raise UntrustedCheckpointError(
            f"{self.source}: the checkpoint index refers to {module}.{name}, which a checkpoint never holds; "
            "refused, since loading it could run code (use only checkpoints written by Kubetune runs)"
        )


def read_vetted_metadata(path: Path) -> Any:
    """The index of the checkpoint folder `path`, unpickled through the allow-list. Called before
    torch.distributed.checkpoint.load too: it wraps what its reader raises, which would hide that this is
    the user's error (a retry cannot help)."""
    file = Path(path) / METADATA_FILE
    with open(file, "rb") as stream:
        return _VettedUnpickler(stream, str(file)).load()


class VettedCheckpointReader(FileSystemReader):
    """torch.distributed.checkpoint's file reader, but its index is unpickled through the allow-list."""

    def read_metadata(self, *args: Any, **kwargs: Any):
        rank = kwargs.get("rank")
        if rank is not None:  # a per-rank index (__RANK.metadata), where this torch writes one
            path = Path(str(self.path)) / f"__{rank}{METADATA_FILE}"
            with open(path, "rb") as stream:
                metadata = _VettedUnpickler(stream, str(path)).load()
        else:
            metadata = read_vetted_metadata(Path(str(self.path)))
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


def load_rng_state(path: Path) -> dict:
    """A rank's saved RNG states: tensors and plain values only (weights_only)."""
    return torch.load(path, weights_only=True)
