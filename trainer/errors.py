"""Which failures are the user's (retrying cannot help) and which are transient (resume may help)."""

from kubetune.api.errors import SpecError
from kubetune.api.checkpoints import CheckpointNotFoundError
from kubetune.trainer.checkpoint_reader import UntrustedCheckpointError
from kubetune.trainer.data import DataValidationError
from kubetune.trainer.modeling import ModelSourceError

USER_ERRORS: tuple[type[BaseException], ...] = (
    SpecError,
    DataValidationError,
    ModelSourceError,
    CheckpointNotFoundError,
    UntrustedCheckpointError,
)
