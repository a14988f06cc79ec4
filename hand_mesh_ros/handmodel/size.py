"""A hand's overall size in its model's shape space: measure it, and scale a shape by a factor.

From one RGB image a hand's size and its distance are tied: scaling a hand by s about the
camera centre does not change its image. Aligned depth breaks the tie and gives s; this module
turns it into shape coefficients. Shapes are linear in the coefficients (rest vertices
T + S beta), so the shape change that scales the rest hand about its root joint by s is the
least-squares solution of S' d = (s - 1)(T' + S' beta), with T', S' taken relative to the
root (the shape space's pseudo-inverse, computed once per model). For the open model this is
almost exactly its overall-size component (0); for MANO it is the best mix of its ten.
"""

from __future__ import annotations

import functools

import torch


class HandSize:
    """Size measure and scaling for one hand model (float64 internally).

    ``relative(shape (B,10)) -> (B,)``: RMS distance of the rest vertices from the root joint,
    relative to the mean shape's (1 = the mean hand). ``scaled(shape (B,10), s (B,)) ->
    (B,10)``: the shape whose rest hand is ``s`` times as large (to first order: exact for a
    pure-size direction).
    """

    def __init__(self, model) -> None:
        template = model.v_template.double()
        dirs = model.shapedirs.double()  # (V,3,S)
        reg = model.j_regressor.double()
        root_t = reg[0] @ template  # (3,)
        root_d = torch.einsum("v,vcs->cs", reg[0], dirs)  # (3,S)
        self._t = (template - root_t).reshape(-1)  # (3V,)
        self._d = (dirs - root_d).reshape(-1, dirs.shape[-1])  # (3V,S)
        self._pinv = torch.linalg.pinv(self._d)  # (S,3V)
        self._mean_rms = float(self._t.square().mean().sqrt())

    def _rest(self, shape: torch.Tensor) -> torch.Tensor:
        return self._t.to(shape.device) + shape.double() @ self._d.to(shape.device).T  # (B,3V)

    def relative(self, shape: torch.Tensor) -> torch.Tensor:
        return (self._rest(shape).square().mean(-1).sqrt() / self._mean_rms).to(shape.dtype)

    def scaled(self, shape: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        rest = self._rest(shape)
        change = ((s.double() - 1.0)[:, None] * rest) @ self._pinv.to(shape.device).T
        return (shape.double() + change).to(shape.dtype)


@functools.lru_cache(maxsize=8)
def hand_size_of(model) -> HandSize:
    """One ``HandSize`` per model object (its pseudo-inverse is computed once)."""
    return HandSize(model)
