"""`kubetune plan-memory --model FOLDER …`: the validation step's memory plan for a model folder.

The operator plans a supported model's GPU memory when the run is applied (the shapes are built in,
kubetune.api.memory_plan); a model folder's shape is in its config.json, which only a pod that mounts
the folder reads. The validation step runs this command, before any GPU is requested, with the
operator's own inputs: the pool's GPU memory, the placement's GPUs per node and nodes, the trainer's
micro-batch and activation checkpointing, and contextLength (default: the trainer's, from the folder).

Exit 0: it fits on --nodes (without --nodes: on some number of nodes). 3 (kubetune.api.failures'
DOES_NOT_FIT_EXIT): it does not; the marked termination message says the estimate, the pool's GPU
memory and the nodes it needs, and the operator ends the run DoesNotFit with it. 2: the folder's
config.json cannot be read, or contextLength is longer than the model's.
"""

import argparse
import sys
from pathlib import Path

from kubetune.api.failures import DOES_NOT_FIT_EXIT, TERMINATION_LOG
from kubetune.api.locations import PVC_MOUNT_ROOT
from kubetune.cli.errors import EXIT_USAGE



def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plan-memory", help="check that a model folder fits the pool's GPU memory (the validation step)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="a model folder as spec.model names it: a path or pvc://CLAIM/path")
    parser.add_argument("--pool", required=True, help="the node pool's name (for the message)")
    parser.add_argument("--gpu-memory-gib", type=float, required=True, help="memory of one GPU of the pool")
    parser.add_argument("--gpus-per-node", type=int, required=True, help="GPUs of each training pod")
    parser.add_argument("--nodes", type=int, help="the training pods; default: the fewest on which the run fits")
    parser.add_argument("--context-length", type=int, help="default: min(8192, the folder's max_position_embeddings)")
    parser.add_argument("--micro-batch", type=int, help="packed sequences per forward pass (default: the trainer's)")
    parser.add_argument("--activation-checkpointing", action=argparse.BooleanOptionalAction, default=True,
                        help="whether the trainer recomputes activations (default: on, as on GPUs)")
    parser.add_argument("--pvc-mount-root", type=Path, default=Path(PVC_MOUNT_ROOT), help="where pvc://CLAIM is mounted as ROOT/CLAIM")
    parser.add_argument("--termination-log", type=Path, default=Path(TERMINATION_LOG),
                        help="where the marked message goes when it does not fit (written only where it exists)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kubetune.api.data_rules import folder_max_context, resolve_context_length
    from kubetune.api.failures import EndedAs, leave_termination_message, termination_message
    from kubetune.api.memory_plan import GIB, ModelShape, plan_memory
    from kubetune.api.trainer_config import TrainingOptions
    from kubetune.cli.plan import describe, model_folder

    try:
        folder = model_folder(args.model, Path.cwd(), args.pvc_mount_root)
        shape = ModelShape.from_folder(folder)
        context_length = resolve_context_length(args.context_length, args.model, folder_max_context(folder))
    except (ValueError, KeyError, OSError) as error:
        reason = f"config.json has no {error}" if isinstance(error, KeyError) else str(error)
        print(f"kubetune plan-memory: error: {args.model}: {reason}", file=sys.stderr)
        return EXIT_USAGE
    micro_batch = args.micro_batch or TrainingOptions().micro_batch_size
    plan = plan_memory(
        shape, context_length, micro_batch, args.activation_checkpointing,
        int(args.gpu_memory_gib * GIB), args.gpus_per_node, args.nodes,
    )
    print(describe(args.model, plan, context_length, micro_batch, args.activation_checkpointing))
    if plan.fits:
        print(plan.message())
        return 0
    refusal = plan.refusal(args.model, args.pool)
    print(refusal)
    leave_termination_message(args.termination_log, termination_message(EndedAs.DOES_NOT_FIT, refusal))
    return DOES_NOT_FIT_EXIT
