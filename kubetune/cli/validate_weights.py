"""`kubetune validate-weights`: check that a customWeightsPath names a complete checkpoint, the way the
trainer will resolve it (kubetune.api.checkpoints), before any GPU is asked for. The validation step runs
it next to `validate-data` (exit 1: no such checkpoint, with the reason)."""

import argparse
import os
from pathlib import Path

from kubetune.api.locations import PVC_MOUNT_ROOT

EXIT_NO_CHECKPOINT = 1


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "validate-weights",
        help="check that a customWeightsPath names a complete checkpoint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "path", help="a customWeightsPath: a checkpoint folder, a run's `latest`, an earlier run's name, or runs:/RUN_ID/checkpoints/…"
    )
    parser.add_argument("--checkpoint-root", type=Path, required=True, help="where every run's checkpoints are: ROOT/<run>/checkpoints")
    parser.add_argument(
        "--pvc-mount-root", type=Path, default=Path(PVC_MOUNT_ROOT), help="where pvc://CLAIM is mounted as ROOT/CLAIM"
    )
    parser.add_argument(
        "--mlflow-tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="the MLflow server a runs:/RUN_ID/checkpoints/… path is asked of (default: $MLFLOW_TRACKING_URI)",
    )
    parser.add_argument(
        "--namespace", default="default", help="the namespace of the run that will read it: runs:/ references to "
        "another namespace's runs are refused",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kubetune.api.checkpoints import CheckpointNotFoundError, resolve_custom_weights
    from kubetune.api.mlflow_checkpoints import MlflowUnavailableError

    try:
        checkpoint = resolve_custom_weights(
            args.path, args.checkpoint_root, args.pvc_mount_root, tracking_uri=args.mlflow_tracking_uri, namespace=args.namespace
        )
    except CheckpointNotFoundError as error:
        print(error)
        return EXIT_NO_CHECKPOINT
    except MlflowUnavailableError as error:
        print(error)
        return EXIT_NO_CHECKPOINT
    print(f"OK: {args.path} is the complete checkpoint {checkpoint}")
    return 0
