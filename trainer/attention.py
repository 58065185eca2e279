"""Packed attention without an L×L mask: each example of a packed sequence attends only to itself.

`DOCUMENT_ATTENTION` is registered with transformers as an attention implementation. A model built
with it gets no mask from transformers (no mask function is registered under that name, so
masking_utils builds none) and, per packed row, runs transformers' own SDPA attention once per
example with `is_causal` and no mask: exactly what that example computes when it runs alone, so the
per-example results are the same bit for bit, the work is Σ Lᵢ² instead of L², and on GPUs SDPA may
pick its flash kernels (they take no arbitrary mask). The example boundaries come from the
position_ids (each example restarts at 0), read once per micro-batch (`document_bounds`) and handed
down through the forward's kwargs, which transformers passes to every attention call.

Why not the alternatives (torch 2.15, transformers 5.24 on CPU): FlexAttention has no backward on
CPU, and its forward there through transformers' `flex_attention` differed from the per-example
logits; torch's `varlen_attn` is CUDA-only. Both are candidates for a faster single-kernel GPU path.
"""

from itertools import pairwise

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

DOCUMENT_ATTENTION = "kubetune_documents"


def document_bounds(position_ids: torch.Tensor) -> tuple[tuple[int, ...], ...]:
    """Per row of [B, L] position_ids, the offsets where an example starts (position 0), then L.

    One host read per micro-batch; the attention of every layer reuses it."""
    starts = (position_ids == 0).cpu()
    starts[:, 0] = True
    length = position_ids.shape[-1]
    return tuple((*row.nonzero().flatten().tolist(), length) for row in starts)


def document_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    document_bounds: tuple[tuple[int, ...], ...] | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """query [B, H, L, D], key and value [B, H_kv, L, D] -> [B, L, H, D], like every transformers attention.

    Without `document_bounds` (generation, one unpacked prompt) this is plain SDPA attention."""
    if document_bounds is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    rows = []
    for row, bounds in enumerate(document_bounds):
        pieces = [
            sdpa_attention_forward(
                module, query[row : row + 1, :, start:end], key[row : row + 1, :, start:end],
                value[row : row + 1, :, start:end], None, **kwargs,
            )[0]
            for start, end in pairwise(bounds)
        ]
        rows.append(torch.cat(pieces, dim=1))
    return torch.cat(rows), None


AttentionInterface.register(DOCUMENT_ATTENTION, document_attention)
