"""Tiny random-weight models of real families, for tests, demos and the offline quickstart.

Each family gets a byte-level BPE tokenizer trained here on a built-in text
sample, with that family's special tokens and a real chat template, and a model
built from the family's real transformers config. Everything is deterministic:
regenerating a model folder gives identical files.

    python -m kubetune.trainer.tiny_models examples/models/tiny-llama --family llama
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

VOCAB_SIZE = 640

# Meta-Llama-3-8B-Instruct's template.
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# Qwen2-Instruct's ChatML template, with its default system message.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Mistral-7B-Instruct-v0.2's template: no system role, strict alternation.
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)


@dataclass(frozen=True)
class FamilySpec:
    config_class: str  # a transformers config class name
    bos: str | None
    eos: str
    pad: str | None
    extra_special: tuple[str, ...]
    chat_template: str


FAMILIES: dict[str, FamilySpec] = {
    "llama": FamilySpec(
        "LlamaConfig", "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>",
        ("<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"), LLAMA3_TEMPLATE,
    ),
    "qwen2": FamilySpec("Qwen2Config", None, "<|im_end|>", "<|endoftext|>", ("<|im_start|>",), CHATML_TEMPLATE),
    "mistral": FamilySpec("MistralConfig", "<s>", "</s>", None, ("<unk>", "[INST]", "[/INST]"), MISTRAL_TEMPLATE),
    # Mixtral is Mistral's tokenizer and template with mixture-of-experts layers.
    "mixtral": FamilySpec("MixtralConfig", "<s>", "</s>", None, ("<unk>", "[INST]", "[/INST]"), MISTRAL_TEMPLATE),
}

SAMPLE_TEXT = """\
The quick brown fox jumps over the lazy dog. A model learns to answer questions,
to follow instructions and to continue a text. What is the capital of France?
The capital of France is Paris. What is two plus three? Two plus three is five.
Please translate the word hello into Spanish: hola. Summarize the paragraph in one sentence.
You are a helpful assistant. Thank you for your question; here is a short answer.
Kubernetes runs containers on nodes; a pod holds one or more containers, and a job
runs pods until they finish. Fine-tuning adapts a pretrained language model to new data.
The weather today is sunny with a light breeze, and tomorrow it may rain in the evening.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 20 42 100 1000. Colors: red, green, blue, yellow.
Animals: cat, dog, horse, bird, fish, rabbit. Days: Monday, Tuesday, Wednesday, Thursday,
Friday, Saturday, Sunday. Months: January, February, March, April, May, June, July,
August, September, October, November, December. Why does the sun rise in the east?
Because the Earth turns from west to east. How many legs does a spider have? Eight.
Write a haiku about autumn: leaves fall quietly, the river carries them home, cold wind in the trees.
"""


def build_tokenizer(family: str):
    """A small byte-level BPE tokenizer with the family's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    spec = FAMILIES[family]
    specials = [t for t in (spec.bos, spec.eos, spec.pad, *spec.extra_special) if t is not None]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(SAMPLE_TEXT.splitlines(keepends=True), trainer)
    tokenizer.post_processor = _post_processor(tokenizer, spec, processors)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=spec.bos,
        eos_token=spec.eos,
        pad_token=spec.pad,
        unk_token="<unk>" if "<unk>" in specials else None,
        additional_special_tokens=list(spec.extra_special),
        chat_template=spec.chat_template,
        model_max_length=32768,
    )


def _post_processor(tokenizer, spec: FamilySpec, processors):
    byte_level = processors.ByteLevel(trim_offsets=False)
    if spec.bos is None:
        return byte_level
    bos = (spec.bos, tokenizer.token_to_id(spec.bos))
    # Like the real Llama and Mistral tokenizers, plain encoding starts with BOS.
    prepend_bos = processors.TemplateProcessing(single=f"{spec.bos} $A", pair=f"{spec.bos} $A $B", special_tokens=[bos])
    return processors.Sequence([byte_level, prepend_bos])


def build_tiny_model(
    family: str,
    tokenizer,
    *,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    max_position_embeddings: int = 2048,
    seed: int = 0,
    attn_implementation: str = "sdpa",
):
    """A randomly initialised causal LM of the family's real architecture; same seed, same weights."""
    import torch
    import transformers

    config = getattr(transformers, FAMILIES[family].config_class)(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        **_family_config(family),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation)
    return model.eval()


def _family_config(family: str) -> dict:
    # The real 7B Mistral and Qwen2 checkpoints train without a sliding window.
    return {
        "mistral": {"sliding_window": None},
        "qwen2": {"use_sliding_window": False},
        # Three experts do not split evenly over two ranks: FSDP then shards them along their rows.
        "mixtral": {"sliding_window": None, "num_local_experts": 3, "num_experts_per_tok": 2},
    }.get(family, {})


def save_tiny_model(family: str, path: Path, *, seed: int = 0, **sizes) -> Path:
    """Writes a Hugging Face model folder (safetensors weights, config, tokenizer, chat template)."""
    path = Path(path)
    tokenizer = build_tokenizer(family)
    model = build_tiny_model(family, tokenizer, seed=seed, **sizes)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(path)
    model.save_pretrained(path, safe_serialization=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a tiny random-weight model folder.")
    parser.add_argument("path", type=Path)
    parser.add_argument("--family", choices=sorted(FAMILIES), default="llama")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    save_tiny_model(args.family, args.path, seed=args.seed)
    print(f"wrote a tiny {args.family} model to {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
