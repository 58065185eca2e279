"""`python -m kubetune.trainer --config FILE`: what torchrun starts on every node.

Exit codes (kubetune.api.failures): 0 success; 2 a user error that a retry cannot fix
(bad data, model or checkpoint path); 143 stopped on SIGTERM after a checkpoint (a
preemption: resume, not a failure); 1 anything else (a transient fault: the operator
resumes from the latest checkpoint within the retry budget). The first two are also
left as the container's marked termination message, which is what the operator reads.
"""

import argparse
import logging
import sys
from pathlib import Path

from kubetune.api.failures import PREEMPTED_EXIT, USER_ERROR_EXIT, EndedAs, leave_termination_message, termination_message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubetune.trainer", description="Kubetune's fine-tuning trainer.")
    parser.add_argument("--config", required=True, type=Path, help="TrainerConfig as JSON or YAML")
    parser.add_argument(
        "--wait-for-go", action="store_true",
        help="after importing the trainer, read a line from stdin and start only if it is `go` (local mode validates "
        "the data meanwhile, so the imports of both processes overlap)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from kubetune.api.trainer_config import TrainerConfig
    from kubetune.trainer.errors import USER_ERRORS
    from kubetune.trainer.preemption import Preempted
    from kubetune.trainer.recipe import run

    if args.wait_for_go and sys.stdin.readline().strip() != "go":
        return 0  # the launcher found a problem first: nothing was started
    config = TrainerConfig.load(args.config)
    log = logging.getLogger("kubetune.trainer")
    try:
        return run(config)
    except USER_ERRORS as error:
        log.error("%s", error)
        leave_termination_message(config.paths.termination_log, termination_message(EndedAs.USER_ERROR, str(error)))
        return USER_ERROR_EXIT
    except Preempted as preempted:
        log.warning("%s", preempted)
        leave_termination_message(config.paths.termination_log, termination_message(EndedAs.PREEMPTED, str(preempted)))
        return PREEMPTED_EXIT


if __name__ == "__main__":
    sys.exit(main())
