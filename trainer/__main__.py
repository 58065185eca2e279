"""`python -m kubetune.trainer --config FILE`: what torchrun starts on every node.

Exit codes: 0 success; 2 a user error that a retry cannot fix (bad data, model or
checkpoint path), also left as the container's marked termination message, which is
what the operator reads to fail the run instead of restarting it (kubetune.api.failures);
1 anything else (a transient fault: the operator resumes from the latest checkpoint).
"""

import argparse
import logging
import sys
from pathlib import Path

from kubetune.api.failures import TERMINATION_LOG, USER_ERROR_EXIT, user_error_message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubetune.trainer", description="Kubetune's fine-tuning trainer.")
    parser.add_argument("--config", required=True, type=Path, help="TrainerConfig as JSON or YAML")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from kubetune.api.trainer_config import TrainerConfig
    from kubetune.trainer.errors import USER_ERRORS
    from kubetune.trainer.recipe import run

    config = TrainerConfig.load(args.config)
    try:
        return run(config)
    except USER_ERRORS as error:
        logging.getLogger("kubetune.trainer").error("%s", error)
        leave_termination_message(user_error_message(str(error)))
        return USER_ERROR_EXIT


def leave_termination_message(message: str) -> None:
    """In a pod, the container's termination message: how the operator learns the failure is the user's
    (torchrun's own exit code does not say). The file exists only where the kubelet mounted it, so local
    runs write nothing."""
    path = Path(TERMINATION_LOG)
    if path.is_file():
        try:
            path.write_text(message)
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
