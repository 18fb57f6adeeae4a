"""The compact layout of one parity sector and operators acting on it."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import jax.numpy as jnp
import numpy as np

from ..model import Term
from .matrix_free import _band_coefficient, _banded_terms


@dataclasses.dataclass(frozen=True)
class ParityLayout:
    """One sector of a conserved parity, stored without the other sector's zeros.

    For a :class:`~qbjax.model.Charge` with ``modulus = 2`` the level indices
    ``k_a`` on the axes of odd weight (``A``) split into even and odd
    sublattices.  The states of sector ``sum_{a in A} k_a = value (mod 2)``
    live on the sublattice blocks ``s`` (one parity per axis in ``A``) with
    ``sum s = value``; a block is a regular array with index
    ``k_a = 2 i_a + s_a`` on ``A`` and ``k_a = i_a`` elsewhere.  The compact
    state has shape ``(blocks, *half_dims)`` (``half`` is ``ceil(d_a / 2)``
    on ``A``); entries past an odd ``d_a`` are padding and stay zero.

    A Dicke battery's parity sector (cutoff 330, 21 spin levels) is two
    blocks of ``165 x 11``: 3630 entries instead of 6930, so every product,
    stored Chebyshev vector and combination costs half.
    """

    dims: tuple[int, ...]
    axes: tuple[int, ...]
    blocks: tuple[tuple[int, ...], ...]

    @staticmethod
    def of(dims, charge, value: int):
        """The layout of sector ``value``, or ``None`` when ``charge`` is not a parity."""
        if charge is None or charge.modulus != 2 or len(charge.weights) != len(dims):
            return None
        axes = tuple(a for a, w in enumerate(charge.weights) if w % 2)
        if not axes:
            return None
        blocks = tuple(s for s in itertools.product((0, 1), repeat=len(axes)) if sum(s) % 2 == value % 2)
        return ParityLayout(tuple(dims), axes, blocks)

    @property
    def shape(self) -> tuple[int, ...]:
        half = tuple(-(-d // 2) if a in self.axes else d for a, d in enumerate(self.dims))
        return (len(self.blocks),) + half

    def _index(self):
        """Flat full-space index of each compact entry, and whether it is a real (not padding) entry."""
        grids = np.meshgrid(*[np.arange(n) for n in self.shape[1:]], indexing="ij")
        idx, ok = [], []
        for s in self.blocks:
            k = list(grids)
            valid = np.ones(self.shape[1:], bool)
            for a, sa in zip(self.axes, s, strict=True):
                k[a] = 2 * grids[a] + sa
                valid &= k[a] < self.dims[a]
            flat = np.ravel_multi_index(tuple(np.where(valid, ka, 0) for ka in k), self.dims)
            idx.append(flat)
            ok.append(valid)
        return np.stack(idx), np.stack(ok)

    def compact(self, x):
        """A full tensor (shape ``dims``) in the compact layout (padding zero)."""
        idx, ok = _layout_index(self)
        return jnp.where(ok, x.reshape(-1)[idx], 0)

    def expand(self, y):
        """A compact tensor back on the full space (the other sector zero)."""
        idx, ok = _layout_index(self)
        full = jnp.zeros(math.prod(self.dims), y.dtype).at[idx[ok]].set(y[ok])
        return full.reshape(self.dims)


@functools.lru_cache(maxsize=32)
def _layout_index(layout: ParityLayout):
    idx, ok = layout._index()
    idx.setflags(write=False)
    ok.setflags(write=False)
    return idx, ok


def compact_operator(space, terms: tuple[Term, ...], layout: ParityLayout):
    """``x -> O x`` on the compact layout, or ``None`` when ``O`` is not banded or mixes the sectors.

    Each offset ``k`` of the banded plan (:func:`_banded_plan`) maps block
    ``s`` to block ``t = s + k (mod 2)`` on the parity axes: target row
    ``2 i + t`` reads source row ``2 i + t + k``, compact index ``i + (t + k - s) / 2``; the band vectors are sampled
    on the target block's sublattice.  One zero-padded copy of the compact
    state serves every (offset, block) slice, as in :func:`_apply_banded`.
    """
    if not terms:
        return lambda y: jnp.zeros_like(y)
    by_offset = _banded_terms(space, terms)
    if by_offset is None:
        return None
    by_offset = by_offset.items()
    axes, blocks = layout.axes, layout.blocks
    where = {s: b for b, s in enumerate(blocks)}
    half = layout.shape[1:]
    nd = len(layout.dims)
    pieces = []  # (target block, source block, compact shifts, items)
    for off, items in by_offset:
        if sum(off[a] for a in axes) % 2:
            return None  # the operator changes the parity: not a sector operator
        for b, s in enumerate(blocks):
            t = tuple((sa + off[a]) % 2 for a, sa in zip(axes, s, strict=True))
            shift = list(off)
            for a, sa, ta in zip(axes, s, t, strict=True):
                # target row 2 i + t reads full row 2 i + t + k = 2 (i + shift) + s
                shift[a] = (ta + off[a] - sa) // 2
            pieces.append((where[t], b, tuple(shift), items))
    lo = [max(0, -min(p[2][a] for p in pieces)) for a in range(nd)]
    hi = [max(0, max(p[2][a] for p in pieces)) for a in range(nd)]

    def sampled(v, a, target):
        # band vector v (full axis a) on the target block's compact index
        if a not in axes:
            return np.asarray(v)
        sa = blocks[target][axes.index(a)]
        out = np.zeros(half[a], np.asarray(v).dtype)
        vals = np.asarray(v)[sa::2]
        out[: vals.shape[0]] = vals
        return out

    def apply(y):
        yp = jnp.pad(y, [(0, 0)] + list(zip(lo, hi, strict=True))) if any(lo) or any(hi) else y
        complex_y = jnp.iscomplexobj(y)
        outs = [None] * len(blocks)
        for target, source, shift, items in pieces:
            sl = yp[(source,) + tuple(slice(lo[a] + shift[a], lo[a] + shift[a] + half[a]) for a in range(nd))]
            part = _band_coefficient(items, y.dtype, nd, lambda v, a, t=target: sampled(v, a, t)) * sl
            outs[target] = part if outs[target] is None else outs[target] + part
        out = jnp.stack([o if o is not None else jnp.zeros(half, yp.dtype) for o in outs])
        if not complex_y and jnp.iscomplexobj(out):
            out = jnp.real(out)
        return out

    return apply
