"""How much memory each GPU of a run needs, estimated before any GPU is requested.

A pure function of the model's shape (its config.json, or the table below for the supported
models), the context length, the micro-batch, activation checkpointing and the GPUs: the
trainer's memory per GPU (FSDP2 over every GPU, bf16 compute, fp32 master weights, gradients
and AdamW state, the chunked loss), and the fewest nodes of a pool on which the run fits.
It is an estimate; bench/RESULTS.md compares it with measured peaks. Only the standard
library: the operator and the CLI import it without torch.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 2**30
# What the trainer keeps per parameter, sharded over the GPUs (docs/trainer.md, "Mixed precision").
MASTER_WEIGHT_BYTES = 4  # fp32 master weights (kubetune.trainer.modeling.MASTER_DTYPE)
GRADIENT_BYTES = 4  # fp32 sharded gradients, reduce-scattered in fp32
OPTIMIZER_STATE_BYTES = 8  # AdamW's two fp32 moments
SHARDED_BYTES_PER_PARAMETER = MASTER_WEIGHT_BYTES + GRADIENT_BYTES + OPTIMIZER_STATE_BYTES
GPU_COMPUTE_BYTES = 2  # bf16: gathered weights, activations (kubetune.trainer.distributed.compute_dtype)
LOGITS_CHUNK_BYTES = 256 * 2**20  # fp32 logits of one chunk of the loss (kubetune.trainer.loss)
# The CUDA context, NCCL's buffers and the caching allocator's rounding: what a GPU loses before the model.
GPU_RUNTIME_BYTES = 3 * GIB
MAX_NODES = 1024  # spec.compute.nodes' own limit


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only transformer that memory depends on (names as in config.json)."""

    vocab_size: int
    hidden_size: int
    layers: int
    intermediate_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    tied_embeddings: bool
    experts: int = 0  # mixture of experts: experts per layer (0: a dense MLP)
    experts_per_token: int = 0
    attention_bias: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ModelShape":
        """From a Hugging Face config.json (Llama, Mistral, Qwen2, Mixtral and alike)."""
        heads = config["num_attention_heads"]
        return cls(
            vocab_size=config["vocab_size"],
            hidden_size=config["hidden_size"],
            layers=config["num_hidden_layers"],
            intermediate_size=config["intermediate_size"],
            attention_heads=heads,
            kv_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
            experts=config.get("num_local_experts") or 0,
            experts_per_token=config.get("num_experts_per_tok") or 0,
            attention_bias=config.get("model_type") == "qwen2" or bool(config.get("attention_bias", False)),
        )

    @classmethod
    def from_folder(cls, folder: Path) -> "ModelShape":
        """From a Hugging Face model folder (its config.json)."""
        return cls.from_config(json.loads((Path(folder) / "config.json").read_text()))

    @property
    def layer_parameters(self) -> int:
        h, q, kv = self.hidden_size, self.attention_heads * self.head_dim, self.kv_heads * self.head_dim
        attention = h * q + 2 * h * kv + q * h + ((q + 2 * kv) if self.attention_bias else 0)
        mlp = 3 * h * self.intermediate_size
        if self.experts:
            mlp = self.experts * mlp + h * self.experts  # the experts and the router
        return attention + mlp + 2 * h  # two norms

    @property
    def root_parameters(self) -> int:
        """Embeddings, lm_head (unless tied) and the final norm: FSDP's root unit."""
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2) + self.hidden_size

    @property
    def parameters(self) -> int:
        return self.layers * self.layer_parameters + self.root_parameters

    @property
    def activation_values_per_token(self) -> int:
        """Values one decoder layer keeps per token for its backward pass: the norms' inputs and outputs,
        q, k, v, the attention output, the residual, and the MLP's gate, up, activation and product (for
        every expert a token goes to)."""
        q, kv = self.attention_heads * self.head_dim, self.kv_heads * self.head_dim
        mlp = 4 * self.intermediate_size * max(1, self.experts_per_token) + self.experts
        return 4 * self.hidden_size + 2 * q + 2 * kv + mlp


def _llama(vocab, hidden, layers, intermediate, heads, kv, tied=False, head_dim=None, **extra) -> ModelShape:
    return ModelShape(vocab, hidden, layers, intermediate, heads, kv, head_dim or hidden // heads, tied, **extra)


# The supported models' config.json sizes, so `kubetune plan` works without downloading them.
MODEL_SHAPES: dict[str, ModelShape] = {
    **dict.fromkeys(["meta-llama/Meta-Llama-3.1-8B", "meta-llama/Meta-Llama-3.1-8B-Instruct"], _llama(128256, 4096, 32, 14336, 32, 8)),
    **dict.fromkeys([
        "meta-llama/Meta-Llama-3.1-70B", "meta-llama/Meta-Llama-3.1-70B-Instruct", "meta-llama/Llama-3.3-70B-Instruct",
    ], _llama(128256, 8192, 80, 28672, 64, 8)),
    **dict.fromkeys(["meta-llama/Meta-Llama-3.1-405B", "meta-llama/Meta-Llama-3.1-405B-Instruct"], _llama(128256, 16384, 126, 53248, 128, 8)),
    **dict.fromkeys(["meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-1B-Instruct"], _llama(128256, 2048, 16, 8192, 32, 8, tied=True)),
    **dict.fromkeys(["meta-llama/Llama-3.2-3B", "meta-llama/Llama-3.2-3B-Instruct"], _llama(128256, 3072, 28, 8192, 24, 8, tied=True)),
    **dict.fromkeys(["mistralai/Mistral-7B-v0.1", "mistralai/Mistral-7B-Instruct-v0.2"], _llama(32000, 4096, 32, 14336, 32, 8)),
    **dict.fromkeys(
        ["mistralai/Mistral-Nemo-Base-2407", "mistralai/Mistral-Nemo-Instruct-2407"], _llama(131072, 5120, 40, 14336, 32, 8, head_dim=128)
    ),
    **dict.fromkeys(
        ["mistralai/Mixtral-8x7B-v0.1", "mistralai/Mixtral-8x7B-Instruct-v0.1"],
        _llama(32000, 4096, 32, 14336, 32, 8, experts=8, experts_per_token=2),
    ),
    **dict.fromkeys(["Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B-Instruct"], _llama(151936, 896, 24, 4864, 14, 2, tied=True, attention_bias=True)),
    **dict.fromkeys(["Qwen/Qwen2.5-1.5B", "Qwen/Qwen2.5-1.5B-Instruct"], _llama(151936, 1536, 28, 8960, 12, 2, tied=True, attention_bias=True)),
    **dict.fromkeys(["Qwen/Qwen2.5-3B", "Qwen/Qwen2.5-3B-Instruct"], _llama(151936, 2048, 36, 11008, 16, 2, tied=True, attention_bias=True)),
    **dict.fromkeys(["Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-7B-Instruct"], _llama(152064, 3584, 28, 18944, 28, 4, attention_bias=True)),
    **dict.fromkeys(["Qwen/Qwen2.5-14B", "Qwen/Qwen2.5-14B-Instruct"], _llama(152064, 5120, 48, 13824, 40, 8, attention_bias=True)),
    **dict.fromkeys(["Qwen/Qwen2.5-32B", "Qwen/Qwen2.5-32B-Instruct"], _llama(152064, 5120, 64, 27648, 40, 8, attention_bias=True)),
    **dict.fromkeys(["Qwen/Qwen2.5-72B", "Qwen/Qwen2.5-72B-Instruct"], _llama(152064, 8192, 80, 29568, 64, 8, attention_bias=True)),
}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per GPU, by what holds them, for a run on `gpus` GPUs."""

    gpus: int
    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def estimate_memory(
    shape: ModelShape,
    context_length: int,
    micro_batch: int,
    activation_checkpointing: bool,
    gpus: int,
    compute_bytes: int = GPU_COMPUTE_BYTES,
    runtime_bytes: int = GPU_RUNTIME_BYTES,
) -> MemoryEstimate:
    """The trainer's peak memory on one of `gpus` GPUs. Weights, gradients and AdamW state shrink with
    more GPUs; activations and the loss's chunk do not (each GPU runs its own micro-batch). Packed
    sequences need no attention mask (kubetune.trainer.attention: causal attention per example, whose
    kernels keep no L x L scores). `compute_bytes` 4 and `runtime_bytes` 0 describe the CPU path (fp32 throughout)."""
    tokens = micro_batch * context_length
    layer, root = shape.layer_parameters, shape.root_parameters
    saved_per_layer = tokens * shape.hidden_size * compute_bytes  # a decoder layer's input
    one_layer = tokens * shape.activation_values_per_token * compute_bytes
    activations = shape.layers * saved_per_layer + one_layer if activation_checkpointing else shape.layers * one_layer
    chunk_logits = min(LOGITS_CHUNK_BYTES, tokens * shape.vocab_size * 4)
    return MemoryEstimate(gpus, {
        "sharded weights, gradients and AdamW state": math.ceil(shape.parameters / gpus) * SHARDED_BYTES_PER_PARAMETER,
        # the root (embeddings, lm_head) from forward to backward, a decoder layer and the one prefetched
        "gathered weights": (root + 2 * layer) * compute_bytes,
        # a unit's full gradient before its reduce-scatter, in the compute dtype and again in fp32
        "gathered gradients": max(layer, root) * (compute_bytes + GRADIENT_BYTES),
        "activations": activations,
        "loss chunk": 3 * chunk_logits + tokens * shape.hidden_size * compute_bytes,  # logits, fp32 copy, gradient
        "runtime": runtime_bytes,
    })


@dataclass(frozen=True)
class MemoryPlan:
    """The estimate on the requested nodes (or on the fewest that fit), and that fewest number."""

    parameters: int
    gpu_memory_bytes: int
    gpus_per_node: int
    nodes: int | None  # requested; None: Kubetune picks
    min_nodes: int | None  # None: no number of nodes fits (activations alone exceed a GPU)
    estimate: MemoryEstimate

    @property
    def fits(self) -> bool:
        return self.estimate.total <= self.gpu_memory_bytes

    def message(self) -> str:
        per_gpu = f"{self.estimate.total / GIB:.1f} GiB per GPU on {self.estimate.gpus} GPUs"
        memory = f"{self.gpu_memory_bytes / GIB:.0f} GiB GPUs"
        if self.min_nodes is None:
            return (
                f"does not fit on any number of {memory}: {per_gpu}, what does not shrink with more GPUs (a "
                "micro-batch's activations, gathered layers) is too large; lower contextLength or the micro-batch, "
                "or turn activation checkpointing on"
            )
        needs = f"needs at least {self.min_nodes} node(s) of {self.gpus_per_node} GPUs"
        if self.fits:
            return f"fits: {per_gpu} of {memory}; {needs}"
        return f"does not fit on {self.nodes} node(s): {per_gpu} of {memory}; {needs}"

    def refusal(self, model: str, pool: str) -> str:
        """Why a run is refused DoesNotFit: by the operator (a supported model) or its validation step (a folder)."""
        return f"{model} on pool {pool!r} {self.message()}"


def plan_memory(
    shape: ModelShape,
    context_length: int,
    micro_batch: int,
    activation_checkpointing: bool,
    gpu_memory_bytes: int,
    gpus_per_node: int,
    nodes: int | None = None,
) -> MemoryPlan:
    """The fewest nodes of `gpus_per_node` GPUs on which the estimate fits, and the estimate on `nodes`
    (when the run asks for a number) or on that fewest number."""

    def on(node_count: int) -> MemoryEstimate:
        return estimate_memory(shape, context_length, micro_batch, activation_checkpointing, node_count * gpus_per_node)

    fitting = (n for n in range(1, MAX_NODES + 1) if on(n).total <= gpu_memory_bytes)
    min_nodes = next(fitting, None)
    chosen = nodes or min_nodes or MAX_NODES
    return MemoryPlan(shape.parameters, gpu_memory_bytes, gpus_per_node, nodes, min_nodes, on(chosen))
