"""One optimizer step: micro-batches in, gradients accumulated, weights updated."""

from dataclasses import dataclass

import torch

from kubetune.trainer.data import PackedDataset, collate, model_inputs
from kubetune.trainer.distributed import all_reduce_sum, compute_dtype, set_gradient_sync
from kubetune.trainer.loss import IGNORE_INDEX, count_loss_tokens, summed_token_loss


@dataclass(frozen=True)
class StepResult:
    loss: float  # mean loss per loss token over the global batch
    loss_tokens: int  # across all ranks
    real_tokens: int  # non-padding tokens across all ranks
    grad_norm: float | None


def load_micro_batch(dataset: PackedDataset, indices: list[int], filler: int, device: torch.device) -> dict:
    """Stacked sequences on `device`. No indices (a rank with nothing left this step): sequence `filler`
    with every label masked, so the rank still joins FSDP's collectives but adds nothing to the loss."""
    items = [dataset[i] for i in indices] or [_without_labels(dataset[filler])]
    batch = {key: value.to(device) for key, value in collate(items).items()}
    batch["loss_tokens"] = count_loss_tokens(batch["labels"], batch["position_ids"])
    batch["real_tokens"] = sum(dataset.real_tokens_of(i) for i in indices)
    return batch


def _without_labels(item: dict) -> dict:
    return {**item, "labels": torch.full_like(item["labels"], IGNORE_INDEX)}


def forward_summed_loss(model: torch.nn.Module, batch: dict, chunked_loss: bool = True) -> torch.Tensor:
    """The summed token loss of one micro-batch (loss.summed_token_loss). The model runs to its final
    hidden states; lm_head projects only the last position there (nothing reads it), and the loss projects
    the loss positions chunk by chunk. The root FSDP unit holds lm_head's weight gathered until backward."""
    # The dense-mask fallback only: SDPA's GPU kernels take an additive mask only in the query's dtype,
    # bf16 under FSDP's mixed precision.
    inputs = model_inputs(
        {k: batch[k] for k in ("input_ids", "labels", "position_ids")},
        attn_implementation=model.config._attn_implementation,
        mask_dtype=compute_dtype(batch["input_ids"].device),
    )
    final_hidden: list[torch.Tensor] = []
    # A hook rather than output_hidden_states: that would keep every layer's output alive in evaluation too.
    hook = model.base_model.register_forward_hook(lambda module, args, output: final_hidden.append(output.last_hidden_state))
    try:
        model(**inputs, use_cache=False, logits_to_keep=1)
    finally:
        hook.remove()
    return summed_token_loss(
        final_hidden[0], model.get_output_embeddings(), batch["labels"], batch["position_ids"], chunked=chunked_loss
    )


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    micro_batches: list[dict],
    world_size: int,
    max_grad_norm: float | None,
    device: torch.device,
    chunked_loss: bool = True,
) -> StepResult:
    """Loss per micro-batch = summed token loss / loss tokens of the whole global batch, times world_size
    because FSDP averages gradients over ranks; the sum over ranks and micro-batches is then the global mean."""
    global_tokens = all_reduce_sum(sum(b["loss_tokens"] for b in micro_batches), device)
    scale = world_size / max(1.0, global_tokens)
    local_loss = 0.0
    for index, batch in enumerate(micro_batches):
        set_gradient_sync(model, index == len(micro_batches) - 1)
        loss = forward_summed_loss(model, batch, chunked_loss)
        (loss * scale).backward()
        local_loss += float(loss.detach())
    grad_norm = _clip(model, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    real_tokens = all_reduce_sum(sum(b["real_tokens"] for b in micro_batches), device)
    return StepResult(
        loss=all_reduce_sum(local_loss, device) / max(1.0, global_tokens),
        loss_tokens=int(global_tokens),
        real_tokens=int(real_tokens),
        grad_norm=grad_norm,
    )


def _clip(model: torch.nn.Module, max_norm: float | None) -> float | None:
    if max_norm is None:
        return None
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    if hasattr(norm, "full_tensor"):  # a DTensor under FSDP2: the norm over every shard
        norm = norm.full_tensor()
    return float(norm)
