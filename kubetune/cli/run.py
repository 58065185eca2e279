"""`kubetune run FILE --local`: run a FineTuneRun manifest on this machine, without a cluster.

Validates the manifest (problems name file and line) and the data, trains with
torchrun, prints the run's events (with one progress line on a terminal), registers the model in
MLflow (MLFLOW_TRACKING_URI, else ./.kubetune/mlflow.db) and exits non-zero
unless the run succeeded.
"""

import argparse
import os
import shutil
import sys
from pathlib import Path

from kubetune.api.locations import DATASET_ROOT_ENV

DEFAULT_STATE_ROOT = Path(".kubetune")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="run a FineTuneRun manifest (--local: on this machine)",
        description="Run a FineTuneRun manifest. --local trains on this machine with torchrun and a local MLflow.",
    )
    parser.add_argument("filename", type=Path, help="a FineTuneRun manifest (YAML)")
    parser.add_argument("--local", action="store_true", required=True, help="train on this machine (required for now)")
    parser.add_argument("--name", help="run name (default: the manifest's metadata.name)")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_ROOT, help="where runs and MLflow live (default ./.kubetune)")
    parser.add_argument("--restart", action="store_true", help="discard the run's earlier checkpoints instead of resuming")
    parser.add_argument(
        "--databricks-locations", type=Path, metavar="FILE",
        help="Unity Catalog volumes and tables mapped to local or object storage (YAML: volumes, tables; "
        "default: the file $KUBETUNE_DATABRICKS_LOCATIONS names)",
    )
    parser.add_argument(
        "--dataset-root", type=Path, default=os.environ.get(DATASET_ROOT_ENV) or None, metavar="DIR",
        help=f"read Hugging Face datasets (org/name/split) from this offline mirror, DIR/org/name: the dataset's files "
        f"or a save_to_disk folder (default: ${DATASET_ROOT_ENV})",
    )
    parser.add_argument("--no-progress-bar", dest="progress_bar", action="store_false", help="no progress line even on a terminal")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from kubetune.api.databricks_locations import DatabricksLocations, map_spec_locations
    from kubetune.api.errors import SpecError
    from kubetune.cli.create import spec_from_manifest
    from kubetune.local.events import EventPrinter
    from kubetune.local.runner import LocalRun, default_tracking, resolve_local_paths, run_local

    try:
        spec, metadata = spec_from_manifest(args.filename)
        spec = map_spec_locations(spec, DatabricksLocations.for_local_mode(args.databricks_locations))
    except (SpecError, ValueError) as error:  # ValueError: an unreadable or invalid locations file
        print(f"error: {error}", file=sys.stderr)
        return 2
    name = args.name or metadata.get("name")
    if not name:
        print(f"error: {args.filename}: metadata.name is required (or pass --name)", file=sys.stderr)
        return 2
    state_root = args.state_dir
    tracking_uri, artifact_root = default_tracking(state_root)
    run = LocalRun(
        name=name, spec=resolve_local_paths(spec, args.filename.resolve().parent), state_root=state_root,
        tracking_uri=tracking_uri, artifact_root=artifact_root,
        dataset_root=args.dataset_root.resolve() if args.dataset_root else None,
    )
    if args.restart and run.run_dir.exists():
        shutil.rmtree(run.run_dir)
    result = run_local(run, EventPrinter(show_bar=args.progress_bar))
    if not result.succeeded:
        return 1
    print(f"Registered model: {result.registered_name} version {result.registered_version} (MLflow: {tracking_uri})")
    return 0
