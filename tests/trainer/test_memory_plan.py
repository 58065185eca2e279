"""The memory plan (kubetune/api/memory_plan.py) and `kubetune plan`: parameter counts of the supported
models, the fewest nodes that fit, runs that fit on no number of nodes, the bytes it assumes being the
trainer's own dtypes, and the command's output and exit codes. bench/RESULTS.md compares the estimate
with measured peaks."""

import textwrap

import pytest
import torch

from kubetune.api.memory_plan import (
    GIB,
    GPU_COMPUTE_BYTES,
    LOGITS_CHUNK_BYTES,
    MASTER_WEIGHT_BYTES,
    MODEL_SHAPES,
    OPTIMIZER_STATE_BYTES,
    ModelShape,
    estimate_memory,
    plan_memory,
)
from kubetune.api.supported_models import SUPPORTED_MODELS
from kubetune.cli.main import main as kubetune

pytestmark = pytest.mark.trainer

LLAMA_70B = MODEL_SHAPES["meta-llama/Meta-Llama-3.1-70B"]


@pytest.mark.parametrize("model, published", [
    ("meta-llama/Llama-3.2-1B", 1.24e9),
    ("meta-llama/Meta-Llama-3.1-8B", 8.03e9),
    ("meta-llama/Meta-Llama-3.1-70B", 70.6e9),
    ("meta-llama/Meta-Llama-3.1-405B", 405.9e9),
    ("mistralai/Mistral-7B-v0.1", 7.24e9),
    ("mistralai/Mixtral-8x7B-v0.1", 46.7e9),
    ("Qwen/Qwen2.5-0.5B", 0.494e9),
    ("Qwen/Qwen2.5-72B", 72.7e9),
])
def test_parameter_counts_match_the_published_sizes(model, published):
    assert MODEL_SHAPES[model].parameters == pytest.approx(published, rel=0.005)


def test_every_supported_model_has_a_shape():
    assert set(MODEL_SHAPES) == set(SUPPORTED_MODELS)


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "mixtral"])
def test_the_shape_from_a_config_counts_the_model_parameters(family, model_for):
    model = model_for(family)
    assert ModelShape.from_config(model.config.to_dict()).parameters == sum(p.numel() for p in model.parameters())


def test_the_bytes_per_parameter_are_the_trainers_dtypes():
    from kubetune.trainer.distributed import compute_dtype
    from kubetune.trainer.loss import LOGITS_CHUNK_BYTES as trainer_chunk
    from kubetune.trainer.modeling import MASTER_DTYPE

    assert MASTER_WEIGHT_BYTES == torch.finfo(MASTER_DTYPE).bits // 8
    assert GPU_COMPUTE_BYTES == torch.finfo(compute_dtype(torch.device("cuda", 0))).bits // 8
    assert OPTIMIZER_STATE_BYTES == 2 * MASTER_WEIGHT_BYTES  # AdamW's two moments, in the parameters' dtype
    assert trainer_chunk == LOGITS_CHUNK_BYTES


def test_more_gpus_shrink_the_sharded_state_but_not_the_micro_batch():
    few, many = (estimate_memory(LLAMA_70B, 8192, 1, True, gpus) for gpus in (16, 64))
    assert many.parts["sharded weights, gradients and AdamW state"] * 4 == pytest.approx(few.parts["sharded weights, gradients and AdamW state"], rel=1e-6)
    assert many.parts["activations"] == few.parts["activations"]
    assert few.parts["sharded weights, gradients and AdamW state"] == pytest.approx(16 * LLAMA_70B.parameters / 16, rel=1e-6)


def test_the_plan_picks_the_fewest_nodes_that_fit():
    plan = plan_memory(LLAMA_70B, 8192, 1, True, 80 * GIB, gpus_per_node=8)
    assert plan.min_nodes is not None and plan.fits and plan.estimate.gpus == plan.min_nodes * 8
    one_fewer = estimate_memory(LLAMA_70B, 8192, 1, True, (plan.min_nodes - 1) * 8)
    assert one_fewer.total > 80 * GIB
    assert f"needs at least {plan.min_nodes} node(s)" in plan.message()


def test_a_run_on_too_few_nodes_is_refused_with_the_number_it_needs():
    plan = plan_memory(LLAMA_70B, 8192, 1, True, 80 * GIB, gpus_per_node=8, nodes=1)
    assert not plan.fits and plan.estimate.gpus == 8
    assert plan.message().startswith("does not fit on 1 node(s)") and f"at least {plan.min_nodes} node(s)" in plan.message()


def test_activations_that_exceed_a_gpu_fit_on_no_number_of_nodes():
    """Without recomputation, 80 layers' activations of an 8k sequence exceed any GPU: more nodes do not help."""
    plan = plan_memory(LLAMA_70B, 8192, 1, False, 80 * GIB, gpus_per_node=8)
    assert plan.min_nodes is None and not plan.fits
    assert "activation checkpointing" in plan.message()


def _manifest(tmp_path, model: str, compute: str = "") -> str:
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(f"""\
        apiVersion: kubetune.io/v1alpha1
        kind: FineTuneRun
        metadata: {{name: big}}
        spec:
          model: {model}
          trainDataPath: /data/train.jsonl
          registerTo: main.default
          contextLength: 8192
        """) + compute)
    return str(path)


def test_kubetune_plan_prints_the_estimate_and_exits_by_whether_it_fits(tmp_path, capsys):
    one_node = _manifest(tmp_path, "meta-llama/Meta-Llama-3.1-70B-Instruct", "  compute: {nodes: 1, gpusPerNode: 8}\n")
    assert kubetune(["plan", one_node]) == 1
    out = capsys.readouterr().out
    assert "70.55B parameters" in out and "total per GPU" in out and "does not fit on 1 node(s)" in out

    assert kubetune(["plan", _manifest(tmp_path, "meta-llama/Meta-Llama-3.1-70B-Instruct")]) == 0  # nodes left open
    assert "fits:" in capsys.readouterr().out


def test_kubetune_plan_reads_the_config_of_a_model_folder(tmp_path, tiny_model_dir, capsys):
    assert kubetune(["plan", _manifest(tmp_path, str(tiny_model_dir("llama")))]) == 0
    assert "fits:" in capsys.readouterr().out
    assert kubetune(["plan", _manifest(tmp_path, "hf://org/unknown")]) == 2
    assert "--model-config" in capsys.readouterr().err
