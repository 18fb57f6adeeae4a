"""Diagonal-preserving master equations as rate equations: the population generator of a Spec.

When ``H`` is diagonal in the product basis and every jump operator moves
one basis state to one basis state (a single band per factor), the
populations obey ``dp/dt = A p`` on their own (:func:`not_diagonal_reason`
says why not otherwise).  :func:`rate_generator` builds ``A`` as a
:class:`RateGenerator` (shifts and weights on the population tensor), which
the propagators of :mod:`qbjax.dynamics.rates` integrate.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .dense import _local_matrices, split_diagonal
from .matrix_free import _bands

__all__ = ["RateGenerator", "rate_generator", "not_diagonal_reason"]


def _shift(x, ks):
    """``y[r] = x[r + k]`` along every axis (zero outside)."""
    for axis, k in enumerate(ks):
        if k == 0:
            continue
        n = x.shape[axis]
        pad = [(0, 0)] * x.ndim
        pad[axis] = (0, k) if k > 0 else (-k, 0)
        start = k if k > 0 else 0
        x = jax.lax.slice_in_dim(jnp.pad(x, pad), start, start + n, axis=axis)
    return x


class RateGenerator(eqx.Module):
    """``A``: the population generator of a diagonal-preserving master equation.

    Attributes:
        dims: shape of the population tensor.
        shifts: per channel, the shift ``k`` (destination ``r`` gains from ``r + k``).
        weights: per channel, the rate into each destination state ``(dims)``.
    """

    dims: tuple[int, ...] = eqx.field(static=True)
    shifts: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    weights: tuple[jax.Array, ...]

    def out_rates(self):
        """Total escape rate of every state."""
        out = jnp.zeros(self.dims)
        for k, w in zip(self.shifts, self.weights):
            out = out + _shift(w, tuple(-x for x in k))
        return out

    def __call__(self, p):
        out = -self.out_rates() * p
        for k, w in zip(self.shifts, self.weights):
            out = out + w * _shift(p, k)
        return out

    @property
    def chain_axis(self) -> int | None:
        """The axis of a birth-death chain (all jumps by +-1 along it), else ``None``."""
        axes = set()
        for k in self.shifts:
            moved = [i for i, x in enumerate(k) if x != 0]
            if len(moved) != 1 or abs(k[moved[0]]) != 1:
                return None
            axes.add(moved[0])
        return axes.pop() if len(axes) == 1 else None

    def tridiagonal(self):
        """``(sub, diag, super)`` of ``A`` along :attr:`chain_axis`, each of shape ``dims``."""
        axis = self.chain_axis
        sub = jnp.zeros(self.dims)
        sup = jnp.zeros(self.dims)
        for k, w in zip(self.shifts, self.weights):
            if k[axis] == 1:  # r gains from r + 1
                sup = sup + w
            else:  # r gains from r - 1
                sub = sub + w
        return sub, -self.out_rates(), sup

    def dense(self):
        """``A`` as a ``(D, D)`` matrix on the flattened basis (small problems)."""
        D = math.prod(self.dims)
        eye = jnp.eye(D).reshape((D,) + self.dims)
        return jax.vmap(self)(eye).reshape(D, D).T


def _local(space, factors):
    return _local_matrices(space, factors)


def not_diagonal_reason(spec) -> str | None:
    """Why ``spec``'s master equation does not reduce to rate equations (``None``: it does)."""
    if split_diagonal(spec.space, spec.charger + spec.battery + spec.coupling)[1]:
        return "H is not diagonal in the product basis"
    for i, d in enumerate(spec.dissipators):
        shifts = set()
        for t in d.operator:
            ks = []
            for m in _local(spec.space, t.factors):
                if m is None:
                    ks.append(0)
                    continue
                bands = _bands(m, max_bands=1)
                if bands is None or len(bands) != 1:
                    return f"dissipator {i} is not a single shift (more than one band)"
                ks.append(bands[0][0])
            shifts.add(tuple(ks))
        if len(shifts) > 1:
            return f"dissipator {i} mixes different shifts"
    return None


def rate_generator(spec) -> RateGenerator:
    """The population generator ``A`` of ``spec`` (raises if the state would not stay diagonal)."""
    reason = not_diagonal_reason(spec)
    if reason is not None:
        raise ValueError(f"the master equation does not reduce to rate equations: {reason}")
    dims = spec.dims
    by_shift: dict = {}
    for d in spec.dissipators:
        amp, ks = None, None
        for t in d.operator:
            vec = jnp.asarray(t.coeff, jnp.complex128)
            shape_ks = []
            for (_, dof), m in zip(spec.space, _local(spec.space, t.factors)):
                if m is None:
                    v, k = np.ones(dof.dim), 0
                else:
                    k, v = _bands(m, max_bands=1)[0]
                vec = jnp.multiply.outer(vec, jnp.asarray(v))
                shape_ks.append(k)
            ks = tuple(shape_ks)
            amp = vec if amp is None else amp + vec
        if amp is None or not any(ks):
            continue  # no terms, or pure dephasing: populations do not move
        w = jnp.real(d.rate) * jnp.abs(amp) ** 2
        by_shift[ks] = by_shift.get(ks, 0.0) + w
    shifts = tuple(by_shift)
    return RateGenerator(dims, shifts, tuple(by_shift[k] for k in shifts))
