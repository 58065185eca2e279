"""The model architectures the trainer supports, and where each tensor of a checkpoint file lives in the model.

Most architectures keep a Hugging Face checkpoint's tensors under the names of the model's
parameters. Mixture-of-experts models in transformers 5 do not: Mixtral's files hold one
`w1`/`w3`/`w2` matrix per expert under `block_sparse_moe`, while the model stacks the experts
into `mlp.experts.gate_up_proj` (experts × [w1; w3]) and `mlp.experts.down_proj` (experts × w2).
One table of `TensorRule`s per architecture says how, in both directions: the sharded loader
reads a file's tensors into the model (weight_loading), and the export writes the model back
in the files' layout (export), which every Hugging Face tool reads.

Adding an architecture (docs/trainer.md): its decoder layer is in `_no_split_modules` (one FSDP
unit each), its logits are `lm_head(last hidden state)` (the chunked loss computes them so), its
file layout differs from its parameters only as a table of rules here can say, and a tiny model
of it trains in tests/trainer/test_sharded_loading.py.
"""

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Region:
    """Where one checkpoint tensor lives in a model parameter: all of it, or one expert's slice of a
    stacked-experts parameter (index `expert` along dim 0; `part` of `parts` equal blocks along dim 1)."""

    parameter: str
    expert: int | None = None
    part: int = 0
    parts: int = 1


@dataclass(frozen=True)
class TensorRule:
    """A file key pattern and the parameter it fills, with `{prefix}` (any text) and `{expert}` (a number)
    as placeholders, e.g. "{prefix}.block_sparse_moe.experts.{expert}.w1.weight"."""

    file_key: str
    parameter: str
    part: int = 0
    parts: int = 1
    _file_pattern: re.Pattern = field(init=False, repr=False, compare=False)
    _parameter_pattern: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_file_pattern", _compile(self.file_key))
        object.__setattr__(self, "_parameter_pattern", _compile(self.parameter))

    @property
    def stacks_experts(self) -> bool:
        return "{expert}" in self.file_key

    def region_of(self, file_key: str) -> Region | None:
        match = self._file_pattern.match(file_key)
        if match is None:
            return None
        parameter = self.parameter.format(prefix=match["prefix"])
        if not self.stacks_experts:
            return Region(parameter)
        return Region(parameter, int(match["expert"]), self.part, self.parts)

    def file_keys_of(self, parameter: str, experts: int) -> list[tuple[str, Region]] | None:
        """The file keys this rule writes for `parameter` (None: the rule is not about it)."""
        match = self._parameter_pattern.match(parameter)
        if match is None:
            return None
        if not self.stacks_experts:
            return [(self.file_key.format(prefix=match["prefix"]), Region(parameter))]
        return [
            (self.file_key.format(prefix=match["prefix"], expert=e), Region(parameter, e, self.part, self.parts))
            for e in range(experts)
        ]


def _compile(template: str) -> re.Pattern:
    pattern = re.escape(template).replace(r"\{prefix\}", r"(?P<prefix>.+)").replace(r"\{expert\}", r"(?P<expert>\d+)")
    return re.compile(f"^{pattern}$")


@dataclass(frozen=True)
class Architecture:
    model_type: str  # the config's model_type
    rules: tuple[TensorRule, ...] = ()

    def region_of(self, file_key: str) -> Region:
        """Where a file's tensor goes: the first rule that matches, else the parameter of the same name."""
        for rule in self.rules:
            region = rule.region_of(file_key)
            if region is not None:
                return region
        return Region(file_key)

    def file_keys_of(self, parameter: str, experts: int) -> list[tuple[str, Region]]:
        """The file keys (and their regions) that hold `parameter`, in the files' layout."""
        found = [pair for rule in self.rules for pair in (rule.file_keys_of(parameter, experts) or [])]
        return found or [(parameter, Region(parameter))]


_MIXTRAL_EXPERTS = "{prefix}.block_sparse_moe.experts.{expert}"

ARCHITECTURES: dict[str, Architecture] = {
    a.model_type: a
    for a in [
        Architecture("llama"),
        Architecture("mistral"),
        Architecture("qwen2"),
        Architecture("mixtral", (
            TensorRule(f"{_MIXTRAL_EXPERTS}.w1.weight", "{prefix}.mlp.experts.gate_up_proj", part=0, parts=2),
            TensorRule(f"{_MIXTRAL_EXPERTS}.w3.weight", "{prefix}.mlp.experts.gate_up_proj", part=1, parts=2),
            TensorRule(f"{_MIXTRAL_EXPERTS}.w2.weight", "{prefix}.mlp.experts.down_proj"),
            TensorRule("{prefix}.block_sparse_moe.gate.weight", "{prefix}.mlp.gate.weight"),
        )),
    ]
}


def architecture_of(config) -> Architecture | None:
    """The supported architecture of a transformers config, or None."""
    return ARCHITECTURES.get(getattr(config, "model_type", None))


def experts_of(config) -> int:
    """Experts per MoE layer (0 for a dense model)."""
    return int(getattr(config, "num_local_experts", 0) or getattr(config, "num_experts", 0) or 0)
