"""Lindblad master equations on dense density matrices (diffrax).

``d rho/dt = -i[H, rho] + sum_k gamma_k (L_k rho L_k^+ - {L_k^+ L_k, rho}/2)``

The anti-commutator is folded into the non-Hermitian effective Hamiltonian
``H_eff = H - (i/2) sum_k gamma_k L_k^+ L_k``, so each step costs two
products with ``H_eff`` and one sandwich per channel.  The right-hand side
keeps ``rho`` Hermitian and trace preserving exactly; the integrator does so
to its tolerance (tested).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp

from ..status import settle
from .options import ODEOptions


def lindblad_rhs(H, jumps: Sequence):
    """The generator as a function ``rho -> d rho/dt``; ``jumps = [(rate, L), ...]``."""
    Heff = H
    for rate, L in jumps:
        Heff = Heff - 0.5j * rate * (L.conj().T @ L)

    def rhs(rho):
        out = -1j * (Heff @ rho - rho @ Heff.conj().T)
        for rate, L in jumps:
            out = out + rate * (L @ rho @ L.conj().T)
        return out

    return rhs


def lindblad_adjoint(H, jumps: Sequence):
    """The Heisenberg-picture generator ``O -> i[H, O] + sum_k g_k (L^+ O L - {L^+ L, O}/2)``.

    ``d<O>/dt = <adjoint(O)>`` for a time-independent generator, so the
    time derivatives of an expectation value are expectation values of
    fixed operators (exact, no differencing of the saved series).
    """

    def adj(O):
        out = 1j * (H @ O - O @ H)
        for rate, L in jumps:
            Ld = L.conj().T
            out = out + rate * (Ld @ O @ L - 0.5 * (Ld @ L @ O + O @ Ld @ L))
        return out

    return adj


def mesolve(H, jumps: Sequence, rho0, ts, *, observables=(), options: ODEOptions = ODEOptions(rtol=1e-9, atol=1e-11),
            save_states: bool = False, switch=None, H_switched=None, jump_ts=None, status: bool = False,
            complex_observables: bool = False, final: bool = False, pieces: Sequence = (), span=None):
    """Integrate the master equation; return expectation values (and states).

    Arguments:
        H: Hermitian ``(d, d)`` Hamiltonian.
        jumps: ``[(rate, L)]`` Lindblad channels.
        rho0: initial density matrix ``(d, d)``.
        ts: save times.
        observables: operators ``O``; returns ``Re tr(O rho(t))`` for each
            (``tr(O rho(t))`` with ``complex_observables``), ``O(d^2)`` each.
        save_states: also return ``rho(t)`` (memory ``T d^2``).
        switch, H_switched: optional time dependence
            ``H(t) = H + switch(t) * H_switched``.
        pieces: more time dependence, ``[(w, rhs)]``: the generator gains
            ``w(t) rhs(rho)`` for each (``rhs`` from :func:`lindblad_rhs`:
            a modulated Hamiltonian term or dissipator).
        status: also return a :mod:`qbjax.status` flag (no host callback).
        final: also return ``rho(ts[-1])`` (after the states).
        span: ``(t_a, t_b)``: integrate ``rho0`` from ``t_a`` to ``t_b`` only (one piece of a
            run, :func:`qbjax.dynamics.integrate.integrate`).

    Returns:
        ``(expectations (n_obs, T), states (T, d, d) or None)``, then the
        final state when asked for, then the status when asked for.
    """
    static = lindblad_rhs(H, jumps)

    def vf(t, rho, args):
        out = static(rho)
        if switch is not None:
            out = out - 1j * switch(t) * (H_switched @ rho - rho @ H_switched)
        for w, rhs in pieces:
            out = out + w(t) * rhs(rho)
        return out

    def trace(O, rho):
        # tr(O rho) = sum_ij O_ij rho_ji: d^2 work, not the d^3 of a product
        v = jnp.sum(O * rho.T)
        return v if complex_observables else jnp.real(v)

    def fn(rho):
        ex = jnp.stack([trace(O, rho) for O in observables]) if observables else jnp.zeros(0)
        return (ex, rho) if save_states else (ex, None)

    if final:
        (ex, states), last, flags = options.solve(vf, rho0, ts, jump_ts=jump_ts, fn=fn, final=True, span=span)
        if status:
            return ex.T, states, last, flags
        return settle((ex.T, states, last), flags, "mesolve")
    (ex, states), flags = options.solve(vf, rho0, ts, jump_ts=jump_ts, fn=fn)
    if status:
        return ex.T, states, flags
    return settle((ex.T, states), flags, "mesolve")
