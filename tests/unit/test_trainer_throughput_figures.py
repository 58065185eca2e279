"""The figures of bench/trainer_throughput.py (FLOPs per token, MFU, tokens/s, the interleaved order): pure
functions, checked here so the CUDA path's MFU is right before any GPU runs it."""

import importlib.util

import pytest
from helpers.cluster import REPO_ROOT


def bench_module():
    spec = importlib.util.spec_from_file_location("trainer_throughput", REPO_ROOT / "bench" / "trainer_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = bench_module()


def test_flops_per_token_is_six_n_plus_attention():
    # A Llama-3.2-1B-shaped model at 4k: 6N = 6e9, 12·L·d·T = 12 · 16 · 2048 · 4096.
    assert bench.flops_per_token(1_000_000_000, layers=16, hidden=2048, context=4096) == 6e9 + 1_610_612_736


def test_mfu_is_the_share_of_the_peak_the_model_flops_reach():
    per_token = bench.flops_per_token(1_000_000_000, 16, 2048, 4096)
    at_peak = 989.5e12 / per_token
    assert bench.model_flops_utilization(at_peak, per_token, 989.5) == pytest.approx(1.0)
    assert bench.model_flops_utilization(at_peak * 0.45, per_token, 989.5) == pytest.approx(0.45)
    assert bench.model_flops_utilization(at_peak, per_token, 989.5, devices=2) == pytest.approx(0.5)


def test_matmul_parameters_leave_out_an_untied_input_embedding_only():
    assert bench.matmul_parameters(1000, vocab=10, hidden=8, tied_embeddings=True) == 1000
    assert bench.matmul_parameters(1000, vocab=10, hidden=8, tied_embeddings=False) == 920


def test_throughput_counts_only_the_steps_after_the_warmup():
    ends, tokens = [5.0, 6.0, 7.0, 9.0], [100, 100, 300, 500]
    assert bench.throughput(ends, tokens, warmup_steps=1) == pytest.approx((100 + 300 + 500) / (9.0 - 5.0))
    assert bench.throughput(ends, tokens, warmup_steps=2) == pytest.approx((300 + 500) / (9.0 - 6.0))
    with pytest.raises(ValueError):
        bench.throughput(ends, tokens, warmup_steps=4)


def test_interleaving_rotates_the_contenders_every_repetition():
    order = bench.interleaved(["a", "b", "c"], 3)
    assert [name for _, name in order] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert [rep for rep, _ in order] == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_a_cuda_summary_carries_mfu_and_medians():
    plan = {
        "device": "cuda", "context": 4096, "peak_tflops": 989.5, "contenders": ["kubetune"],
        "model": {"matmul_parameters": 1_000_000_000, "layers": 16, "hidden": 2048},
    }
    runs = [
        {"contender": "kubetune", "tokens_per_second": tps, "train_seconds": 1.0, "wall_seconds": 2.0, "peak_memory_mib": 10.0,
         "memory_rise_mib": 0.0, "final_loss": 1.0, "last_quarter_loss": 1.0, "padding_share": 0.0, "tokens_per_step": 8,
         "steps": 3}
        for tps in (40_000.0, 60_000.0, 50_000.0)
    ]
    figures = bench.summarize(runs, plan)["kubetune"]
    assert figures["tokens_per_second"] == 50_000.0
    assert figures["mfu"] == pytest.approx(50_000 * (6e9 + 1_610_612_736) / 989.5e12)
