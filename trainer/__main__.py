"""`python -m kubetune.trainer --config FILE`: what torchrun starts on every node.

Exit codes: 0 success; 2 a user error that a retry cannot fix (bad data, model or
checkpoint path: the operator fails the run instead of restarting it); 1 anything
else (a transient fault: the operator may resume from the latest checkpoint).
"""

import argparse
import logging
import sys
from pathlib import Path

USER_ERROR_EXIT = 2


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
        return USER_ERROR_EXIT


if __name__ == "__main__":
    sys.exit(main())
