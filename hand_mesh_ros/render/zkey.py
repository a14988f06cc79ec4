"""The z-buffer key: one int64 per candidate, nearest first under ``scatter_reduce_("amin")``.

key = (float32 bits of the depth) << ITEM_BITS | item. Positive float32 bit patterns order like
the floats they encode, so the smallest key of a pixel is its nearest candidate (ties broken by
the lower item) in one pass, no second pass over the candidates. Used by the hard rasterizer
(items: faces) and the vertex z-buffer (items: vertices).
"""

from __future__ import annotations

import torch

EMPTY_KEY = torch.iinfo(torch.int64).max  # a pixel no candidate covers
ITEM_BITS = 32  # low bits of the key hold the item
_ITEM_MASK = (1 << ITEM_BITS) - 1


def depth_keys(depth: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
    """(N,) positive depths and (N,) long items (< 2**32) -> (N,) int64 keys."""
    return (depth.float().view(torch.int32).long() << ITEM_BITS) | item


def key_items(key: torch.Tensor) -> torch.Tensor:
    """Keys -> their items."""
    return key & _ITEM_MASK


def key_depths(key: torch.Tensor) -> torch.Tensor:
    """Keys -> their float32 depths."""
    return (key >> ITEM_BITS).int().view(torch.float32)
