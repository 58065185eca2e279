import pytest

from helpers.operator_factories import make_config
from kubetune.api.errors import SpecError
from kubetune.api.spec import Compute
from kubetune.operator.placement import resolve_placement

CONFIG = make_config()


@pytest.mark.parametrize(
    "compute, pool, nodes, per_node",
    [
        (None, "h100", 1, 8),
        ({"pool": "h100", "gpus": 16}, "h100", 2, 8),
        ({"pool": "h100", "gpus": 4}, "h100", 1, 4),
        ({"pool": "a10g", "gpus": 16}, "a10g", 16, 1),  # accepted: waits Unschedulable if the pool is smaller
        ({"pool": "h100", "nodes": 2}, "h100", 2, 8),
        ({"pool": "h100", "nodes": 3, "gpusPerNode": 2}, "h100", 3, 2),
        ({"pool": "cpu", "gpus": 0}, "cpu", 1, 0),
        ({"pool": "cpu", "nodes": 2}, "cpu", 2, 0),
    ],
)
def test_resolves_pool_and_shape(compute, pool, nodes, per_node):
    placement = resolve_placement(Compute.model_validate(compute) if compute else None, CONFIG)
    assert (placement.pool_name, placement.nodes, placement.gpus_per_node) == (pool, nodes, per_node)
    assert placement.total_gpus == nodes * per_node


@pytest.mark.parametrize(
    "compute, field, rule_part",
    [
        ({"pool": "tpu"}, "spec.compute.pool", "must be one of the operator's node pools ['a10g', 'cpu', 'h100']"),
        ({"pool": "h100", "gpus": 12}, "spec.compute.gpus", "multiple of 8"),
        ({"pool": "h100", "gpusPerNode": 16}, "spec.compute.gpusPerNode", "at most 8"),
        ({"pool": "cpu", "gpus": 2}, "spec.compute.gpus", "has no GPUs"),
    ],
)
def test_impossible_shapes_are_spec_errors(compute, field, rule_part):
    with pytest.raises(SpecError) as caught:
        resolve_placement(Compute.model_validate(compute), CONFIG)
    [problem] = caught.value.problems
    assert problem.field == field
    assert rule_part in problem.rule


def test_cpu_pool_runs_one_process_per_node():
    assert resolve_placement(Compute(pool="cpu", nodes=2), CONFIG).processes_per_node == 1
