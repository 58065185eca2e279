"""Evaluation at each checkpoint: loss on evalDataPath and sampled generations for evalPrompts.

Both are collective: the model is sharded, so every rank runs every forward pass.
"""

import math

import torch

from kubetune.api.spec import TaskType
from kubetune.trainer.data import PackedDataset
from kubetune.trainer.data.formatting import FALLBACK_CHAT_TEMPLATE, instruction_prompt_ids
from kubetune.trainer.distributed import DistributedEnv, all_reduce_sum
from kubetune.trainer.steps import forward_summed_loss, load_micro_batch

# Databricks' generation settings for evalPrompts.
GENERATION = {"do_sample": True, "temperature": 1.0, "top_k": 50, "top_p": 0.95}


@torch.no_grad()
def eval_loss(model: torch.nn.Module, dataset: PackedDataset, env: DistributedEnv, device: torch.device, micro_batch_size: int) -> float:
    """Mean loss per loss token over the whole eval set; ranks split it and pad with empty micro-batches."""
    model.eval()
    mine = list(range(env.rank, len(dataset), env.world_size))
    rounds = math.ceil(math.ceil(len(dataset) / env.world_size) / micro_batch_size)
    total, tokens = 0.0, 0
    for i in range(rounds):
        batch = load_micro_batch(dataset, mine[i * micro_batch_size : (i + 1) * micro_batch_size], filler=0, device=device)
        total += float(forward_summed_loss(model, batch))
        tokens += int(batch["loss_tokens"])
    model.train()
    total_tokens = all_reduce_sum(tokens, device)
    return all_reduce_sum(total, device) / max(1.0, total_tokens)


@torch.no_grad()
def generate_for_prompts(
    model, tokenizer, prompts: list[str], task_type: str, device: torch.device, env: DistributedEnv, seed: int, max_new_tokens: int
) -> list[dict[str, str]]:
    """One sampled completion per prompt, identical on every rank (same seed); the training RNG is untouched."""
    model.eval()
    rows = []
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for prompt in prompts:
            input_ids = prompt_ids(tokenizer, prompt, task_type).to(device)
            output = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                # Ranks that stop early keep joining the sharded forward passes until all are done.
                synced_gpus=env.world_size > 1,
                use_cache=True,
                **GENERATION,
            )
            text = tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True)
            rows.append({"prompt": prompt, "generation": text})
    model.train()
    return rows


def prompt_ids(tokenizer, prompt: str, task_type: str) -> torch.Tensor:
    """The prompt as the model saw prompts in training: a user turn of the chat template for chat runs,
    the text as written (with the tokenizer's BOS) for instruction pairs and continued pre-training."""
    if TaskType(task_type) is TaskType.INSTRUCTION_FINETUNE:
        return torch.tensor([instruction_prompt_ids(prompt, tokenizer)], dtype=torch.long)
    if TaskType(task_type) is TaskType.CONTINUED_PRETRAIN:
        return tokenizer(prompt, return_tensors="pt")["input_ids"]
    encoded = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], chat_template=tokenizer.chat_template or FALLBACK_CHAT_TEMPLATE,
        add_generation_prompt=True, tokenize=True,
        return_dict=True,  # transformers 5 returns a mapping by default, 4.x a list: ask for the mapping
    )
    return torch.tensor([list(encoded["input_ids"])], dtype=torch.long)
