"""Where a run trains: the node pool from the operator configuration and the job's shape.

A request that can never fit (an unknown pool, more GPUs per node than the pool's
nodes have, a GPU total that does not fill whole nodes) is rejected up front as a
spec error. A request that fits the pool's node shape but needs more nodes than
are free right now is accepted: its pods wait Unschedulable (phase Queued) until
nodes free up or an autoscaler adds them.
"""

from dataclasses import dataclass

from kubetune.api.errors import SpecError, SpecProblem
from kubetune.api.spec import Compute
from kubetune.operator.config import NodePool, OperatorConfig


@dataclass(frozen=True)
class Placement:
    pool_name: str
    pool: NodePool
    nodes: int
    gpus_per_node: int

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def processes_per_node(self) -> int:
        """One process per GPU; a CPU pool runs one process per node (gloo)."""
        return max(1, self.gpus_per_node)


def resolve_placement(compute: Compute | None, config: OperatorConfig) -> Placement:
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
    return Placement(pool_name, pool, nodes, per_node)


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
