import pytest

from helpers.operator_factories import make_config, make_spec
from kubetune.api.errors import SpecError
from kubetune.api.spec import Compute
from kubetune.operator.placement import DoesNotFit, resolve_placement

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


# The memory plan (kubetune.api.memory_plan) where the pool says how much memory its GPUs have.
PLANNED = make_config(
    pools={"h100": {"gpusPerNode": 8, "gpuMemoryGiB": 80}, "cpu": {"gpusPerNode": 0}},
    defaults={"pool": "h100"},
)
LLAMA_70B = "meta-llama/Meta-Llama-3.1-70B-Instruct"


def planned(model: str, compute: dict | None = None):
    from kubetune.api.spec import FineTuneRunSpec

    spec = FineTuneRunSpec.parse(make_spec(model=model, compute=compute))
    return resolve_placement(spec.compute, PLANNED, spec)


def needed_nodes(model: str) -> int:
    from kubetune.api.memory_plan import GIB, MODEL_SHAPES, plan_memory

    return plan_memory(MODEL_SHAPES[model], 8192, 1, True, 80 * GIB, 8).min_nodes


def test_an_open_node_count_gets_the_fewest_nodes_that_fit():
    placement = planned(LLAMA_70B, {"pool": "h100"})
    assert placement.nodes == needed_nodes(LLAMA_70B) > 1  # 70B's sharded fp32 state alone is 1.1 TB
    assert placement.memory.fits and placement.memory.estimate.total <= 80 * 2**30
    assert planned("meta-llama/Llama-3.2-1B-Instruct", {"pool": "h100"}).nodes == 1


def test_a_run_that_cannot_fit_is_refused_with_the_nodes_it_needs():
    with pytest.raises(DoesNotFit, match=f"does not fit on 1 node.*needs at least {needed_nodes(LLAMA_70B)} node"):
        planned(LLAMA_70B, {"pool": "h100", "gpus": 8})
    assert planned(LLAMA_70B, {"pool": "h100", "nodes": needed_nodes(LLAMA_70B)}).memory.fits


def test_no_plan_without_the_pools_gpu_memory_or_the_models_shape():
    assert planned(LLAMA_70B, {"pool": "cpu", "gpus": 0}).memory is None  # a CPU pool
    assert planned("/models/byo", {"pool": "h100"}).memory is None  # a folder's shape is read in a pod
    spec_config = make_config()  # pools without gpuMemoryGiB
    from kubetune.api.spec import FineTuneRunSpec

    spec = FineTuneRunSpec.parse(make_spec(model=LLAMA_70B, compute={"pool": "h100", "gpus": 8}))
    assert resolve_placement(spec.compute, spec_config, spec).memory is None


def test_a_run_that_cannot_fit_fails_before_any_job():
    from helpers.operator_factories import NOW, make_run
    from kubetune.operator import conditions as c
    from kubetune.operator.reconcile import Observed, decide

    plan = decide(make_run(make_spec(model=LLAMA_70B, compute={"pool": "h100", "gpus": 8})), Observed(), PLANNED, NOW)
    assert plan.create == [] and plan.status.phase == "Failed"
    failed = c.find(plan.status.conditions, c.FAILED)
    assert failed.reason == c.DOES_NOT_FIT and "needs at least" in failed.message
    fits = decide(make_run(make_spec(model=LLAMA_70B, compute={"pool": "h100"})), Observed(), PLANNED, NOW).status
    assert "memory plan:" in c.find(fits.conditions, c.SPEC_VALID).message
