"""Where a run trains: the node pool from the operator configuration and the job's shape.

A request that can never fit (an unknown pool, more GPUs per node than the pool's
nodes have, a GPU total that does not fill whole nodes) is rejected up front as a
spec error. A request that fits the pool's node shape but needs more nodes than
are free right now is accepted: its pods wait Unschedulable (phase Queued) until
nodes free up or an autoscaler adds them.

Where the pool says how much memory its GPUs have, the run's memory is planned
before any GPU is requested (kubetune.api.memory_plan): a run that would run out of
GPU memory is refused (DoesNotFit, with the nodes it needs), and a run that leaves
the node count open gets the fewest nodes that fit. A model folder's shape is only
known to a pod: the validation step plans it (builders.validation), on these nodes.
"""

from dataclasses import dataclass

from kubetune.api.errors import SpecError, SpecProblem
from kubetune.api.memory_plan import GIB, MODEL_SHAPES, MemoryPlan, plan_memory
from kubetune.api.spec import Compute, FineTuneRunSpec
from kubetune.api.trainer_config import TrainingOptions
from kubetune.operator.config import NodePool, OperatorConfig


@dataclass(frozen=True)
class Placement:
    pool_name: str
    pool: NodePool
    nodes: int
    gpus_per_node: int
    memory: MemoryPlan | None = None  # None: the pool's GPU memory or the model's shape is not known

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def processes_per_node(self) -> int:
        """One process per GPU; a CPU pool runs one process per node (gloo)."""
        return max(1, self.gpus_per_node)


class DoesNotFit(Exception):
    """The run would run out of GPU memory on the nodes it asks for (or on any number of them)."""


def resolve_placement(compute: Compute | None, config: OperatorConfig, spec: FineTuneRunSpec | None = None) -> Placement:
    compute = compute or Compute()
    pool_name = compute.pool or config.defaults.pool
    pool = config.pools.get(pool_name)
    if pool is None:
        raise SpecError(
            [SpecProblem("spec.compute.pool", f"must be one of the operator's node pools {sorted(config.pools)}", pool_name)]
        )
    if compute.gpus is not None:
        nodes, per_node = _spread(compute.gpus, pool, pool_name)
    else:
        nodes = compute.nodes or 1
        per_node = pool.gpus_per_node if compute.gpus_per_node is None else compute.gpus_per_node
        if per_node > pool.gpus_per_node:
            raise SpecError(
                [
                    SpecProblem(
                        "spec.compute.gpusPerNode",
                        f"must be at most {pool.gpus_per_node}, the GPUs of one node in pool {pool_name!r}",
                        per_node,
                    )
                ]
            )
    placement = Placement(pool_name, pool, nodes, per_node)
    return _plan_memory(placement, compute, spec) if spec is not None else placement


@dataclass(frozen=True)
class MemoryQuestion:
    """What a run's memory plan is asked besides the model's shape and context length: the trainer's micro-batch
    and activation checkpointing as the operator configures them, and the pool's GPUs."""

    micro_batch: int
    activation_checkpointing: bool
    gpu_memory_gib: float
    gpus_per_node: int
    nodes: int | None  # None: compute leaves the node count open


def memory_question(placement: Placement, compute: Compute | None) -> MemoryQuestion | None:
    """None where no plan is made: the pool does not say its GPUs' memory, or the run uses no GPUs."""
    if placement.pool.gpu_memory_gib is None or not placement.gpus_per_node:
        return None
    compute = compute or Compute()
    options = TrainingOptions()  # what the operator's trainer configuration uses
    node_count_open = compute.gpus is None and compute.nodes is None
    return MemoryQuestion(
        options.micro_batch_size,
        options.activation_checkpointing is not False,  # on for GPUs by default
        placement.pool.gpu_memory_gib,
        placement.gpus_per_node,
        None if node_count_open else placement.nodes,
    )


def _plan_memory(placement: Placement, compute: Compute, spec: FineTuneRunSpec) -> Placement:
    """The memory plan where the pool's GPU memory and the model's shape are known (the supported models;
    a model folder's shape is read by the validation pod: builders.validation)."""
    shape = MODEL_SHAPES.get(spec.model)
    question = memory_question(placement, compute)
    if question is None or shape is None:
        return placement
    plan = plan_memory(
        shape,
        spec.effective_context_length(),
        question.micro_batch,
        question.activation_checkpointing,
        gpu_memory_bytes=int(question.gpu_memory_gib * GIB),
        gpus_per_node=question.gpus_per_node,
        nodes=question.nodes,
    )
    if plan.min_nodes is None or not plan.fits:
        raise DoesNotFit(plan.refusal(spec.model, placement.pool_name))
    nodes = plan.min_nodes if question.nodes is None else placement.nodes
    return Placement(placement.pool_name, placement.pool, nodes, placement.gpus_per_node, plan)


def _spread(gpus: int, pool: NodePool, pool_name: str) -> tuple[int, int]:
    """Whole nodes of the pool holding `gpus` GPUs: (nodes, GPUs per node)."""
    if gpus == 0:
        return 1, 0
    if pool.gpus_per_node == 0:
        raise SpecError([SpecProblem("spec.compute.gpus", f"must be 0: pool {pool_name!r} has no GPUs", gpus)])
    if gpus <= pool.gpus_per_node:
        return 1, gpus
    if gpus % pool.gpus_per_node:
        raise SpecError(
            [
                SpecProblem(
                    "spec.compute.gpus",
                    f"must fill whole nodes: a multiple of {pool.gpus_per_node} (GPUs per node in pool {pool_name!r})",
                    gpus,
                )
            ]
        )
    return gpus // pool.gpus_per_node, pool.gpus_per_node
