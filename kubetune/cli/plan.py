"""`kubetune plan FILE`: the memory each GPU of a run will need, before any GPU is requested.

Reads a FineTuneRun manifest, takes the model's shape (the table of supported models, or the
config.json of a model folder, or --model-config), and prints the estimate per GPU
(kubetune.api.memory_plan) on the run's nodes, and the fewest nodes of the pool on which the
run fits. Exit 0: it fits (on the run's nodes, or on that fewest number when compute leaves
the node count open); 1: it does not; 2: the manifest or the model's config cannot be read.
"""

import argparse
import json
import sys
from pathlib import Path

from kubetune.api.locations import PVC_MOUNT_ROOT
from kubetune.cli.errors import EXIT_USAGE

EXIT_DOES_NOT_FIT = 1
DEFAULT_GPUS_PER_NODE = 8


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plan", help="estimate the GPU memory a run needs and the nodes it fits on",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("filename", type=Path, help="a FineTuneRun manifest (YAML)")
    parser.add_argument("--gpu-memory-gib", type=float, default=80.0, help="memory of one GPU of the pool (default 80)")
    parser.add_argument("--gpus-per-node", type=int, help=f"default: the manifest's compute.gpusPerNode, else {DEFAULT_GPUS_PER_NODE}")
    parser.add_argument("--micro-batch", type=int, help="packed sequences per forward pass (default: the trainer's)")
    parser.add_argument("--no-activation-checkpointing", dest="activation_checkpointing", action="store_false",
                        help="plan without recomputing activations (the trainer recomputes them on GPUs by default)")
    parser.add_argument("--model-config", type=Path, help="the model's config.json, for a model outside the table and not local")
    parser.add_argument("--pvc-mount-root", type=Path, default=Path(PVC_MOUNT_ROOT), help="where pvc://CLAIM is mounted as ROOT/CLAIM")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kubetune.api.errors import SpecError
    from kubetune.api.memory_plan import GIB, plan_memory
    from kubetune.api.trainer_config import TrainingOptions
    from kubetune.cli.create import spec_from_manifest

    try:
        spec, _ = spec_from_manifest(args.filename)
        shape = model_shape(spec.model, args.model_config, args.filename.resolve().parent, args.pvc_mount_root)
    except (SpecError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    compute = spec.compute
    gpus_per_node = args.gpus_per_node or (compute.gpus_per_node if compute and compute.gpus_per_node else DEFAULT_GPUS_PER_NODE)
    nodes = requested_nodes(compute, gpus_per_node)
    context_length = spec.effective_context_length(model_max=None)
    micro_batch = args.micro_batch or TrainingOptions().micro_batch_size
    plan = plan_memory(shape, context_length, micro_batch, args.activation_checkpointing, int(args.gpu_memory_gib * GIB), gpus_per_node, nodes)

    print(describe(spec.model, plan, context_length, micro_batch, args.activation_checkpointing))
    print(plan.message())
    return 0 if plan.fits else EXIT_DOES_NOT_FIT


def describe(model: str, plan, context_length: int, micro_batch: int, activation_checkpointing: bool) -> str:
    """The plan's inputs and its estimate part by part (`kubetune plan`, `kubetune plan-memory`)."""
    from kubetune.api.memory_plan import GIB

    lines = [
        f"model: {model} ({plan.parameters / 1e9:.2f}B parameters), context {context_length}, micro-batch {micro_batch}, "
        f"activation checkpointing {'on' if activation_checkpointing else 'off'}",
        *(f"  {part:<45} {size / GIB:8.2f} GiB" for part, size in plan.estimate.parts.items()),
        f"  {'total per GPU':<45} {plan.estimate.total / GIB:8.2f} GiB of {plan.gpu_memory_bytes / GIB:g}",
    ]
    return "\n".join(lines)


def requested_nodes(compute, gpus_per_node: int) -> int | None:
    """The nodes a run asks for: compute.nodes, or compute.gpus spread over whole nodes; None when open."""
    if compute is None:
        return None
    if compute.nodes:
        return compute.nodes
    if compute.gpus:
        return -(-compute.gpus // gpus_per_node)
    return None


def model_shape(model: str, config_file: Path | None, manifest_dir: Path, pvc_mount_root: Path):
    """The model's shape: --model-config, else the supported models' table, else the config.json of its folder."""
    from kubetune.api.memory_plan import MODEL_SHAPES, ModelShape

    if config_file is not None:
        return ModelShape.from_config(json.loads(config_file.read_text()))
    if model in MODEL_SHAPES:
        return MODEL_SHAPES[model]
    return ModelShape.from_folder(model_folder(model, manifest_dir, pvc_mount_root))


def model_folder(model: str, base: Path, pvc_mount_root: Path) -> Path:
    """The local folder a model outside the table names (a relative path from `base`); ValueError for any other."""
    from kubetune.api.locations import parse_model

    folder = parse_model(model).local_path(pvc_mount_root)
    if folder is None:
        raise ValueError(f"{model}: not a supported model and not a local folder; pass its config.json with --model-config")
    return folder if folder.is_absolute() else base / folder
