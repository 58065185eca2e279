"""The supported-models table: the one place that knows each base model's limits.

A `model` that is not in this table must be a path or URI of a Hugging Face model
folder (bring your own weights, see kubetune.api.locations); its limits are then read
from its config.json (kubetune.api.data_rules) instead of being checked at admission.
"""

from dataclasses import dataclass

# Databricks caps the default context length at 8192 even where models allow more.
DEFAULT_CONTEXT_CAP = 8192


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    max_context_length: int
    default_learning_rate: float
    accepts_system_role: bool

    @property
    def default_context_length(self) -> int:
        return capped_context_length(self.max_context_length)


def _family(family: str, names: list[str], max_context: int, lr: float, system: bool = True) -> list[ModelInfo]:
    return [ModelInfo(n, family, max_context, lr, system) for n in names]


SUPPORTED_MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in [
        *_family("llama", [
            "meta-llama/Meta-Llama-3.1-8B", "meta-llama/Meta-Llama-3.1-8B-Instruct",
            "meta-llama/Meta-Llama-3.1-70B", "meta-llama/Meta-Llama-3.1-70B-Instruct",
            "meta-llama/Meta-Llama-3.1-405B", "meta-llama/Meta-Llama-3.1-405B-Instruct",
            "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-1B-Instruct",
            "meta-llama/Llama-3.2-3B", "meta-llama/Llama-3.2-3B-Instruct",
            "meta-llama/Llama-3.3-70B-Instruct",
        ], 131072, 5e-6),
        *_family("mistral", [
            "mistralai/Mistral-7B-v0.1", "mistralai/Mistral-7B-Instruct-v0.2",
        ], 32768, 5e-6, system=False),
        *_family("mistral", [
            "mistralai/Mistral-Nemo-Base-2407", "mistralai/Mistral-Nemo-Instruct-2407",
        ], 131072, 5e-6, system=False),
        *_family("mixtral", [
            "mistralai/Mixtral-8x7B-v0.1", "mistralai/Mixtral-8x7B-Instruct-v0.1",
        ], 32768, 5e-6, system=False),
        *_family("qwen2", [
            "Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B-Instruct",
            "Qwen/Qwen2.5-1.5B", "Qwen/Qwen2.5-1.5B-Instruct",
            "Qwen/Qwen2.5-3B", "Qwen/Qwen2.5-3B-Instruct",
            "Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-7B-Instruct",
            "Qwen/Qwen2.5-14B", "Qwen/Qwen2.5-14B-Instruct",
            "Qwen/Qwen2.5-32B", "Qwen/Qwen2.5-32B-Instruct",
            "Qwen/Qwen2.5-72B", "Qwen/Qwen2.5-72B-Instruct",
        ], 32768, 1e-5),
    ]
}

# Bring-your-own models (a path or URI) start from this learning rate.
FALLBACK_LEARNING_RATE = 1e-5

def capped_context_length(maximum: int | None) -> int:
    """The default context length for a model that takes `maximum` tokens (unknown: the cap itself)."""
    return min(DEFAULT_CONTEXT_CAP, maximum or DEFAULT_CONTEXT_CAP)


def lookup(model: str) -> ModelInfo | None:
    return SUPPORTED_MODELS.get(model)
