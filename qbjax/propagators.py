"""The propagators behind :func:`qbjax.charge`: one function per method, each a Trajectory from a Spec.

:func:`run` dispatches on the resolved method key (``"spectral"``,
``"ode"``, ``"dense-ode"``, ``"lindblad"``, ``"rates"``, ``"classical"``);
:func:`stepped_run` is the Chebyshev propagator of a general request (any
ket, observables, saved states), step by step on any grid.  Every
propagator takes the optional :class:`~qbjax.observe.Request` of
:func:`qbjax.charge` (observables, an initial state, saved states) and
fills ``expect``, ``states`` and ``final_state``.
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import representation as rep
from .dynamics import ODEOptions, hamilton_flow, hamilton_vector_field, mesolve, sesolve, spectral_moments
from .dynamics.lindblad import lindblad_adjoint, lindblad_rhs
from .dynamics.schrodinger import moments_from_states
from .model import Spec, Term, scaled
from .observe import Request, embed, expect_kets, operator_on, state_on
from .representation.closed import spectral_decomposition, tensor_top, top_level_masks
from .representation.open import initial_density_matrix
from .status import NONFINITE, flag, is_concrete, merge, outside_trace
from .trajectory import FINAL_RATES_MAX, Trajectory, energy_bound, finite_status

__all__ = ["run", "spectral_trajectory", "lindblad_trajectory", "stepped_terms", "stepped_run", "stationary_lindblad",
           "long_open_window", "STATIONARY_WINDOW", "EXPM_MAX_DIM"]


@eqx.filter_jit
def run(spec: Spec, ts, method: str, switch, options: ODEOptions, req: Request | None = None,
        uniform: bool = False, span=None, start=None) -> Trajectory:
    """One compiled run of ``method``; ``uniform`` (static): the caller checked that ``ts`` is evenly spaced;
    ``span``, ``start``: one piece of a Lindblad run (:func:`stationary_lindblad`)."""
    if method == "classical":
        return _classical(spec, ts, switch, options, req)
    if method == "spectral":
        return spectral_trajectory(spec, ts, req=req)
    if method == "lindblad":
        return lindblad_trajectory(spec, ts, switch, options, req=req, uniform=uniform, span=span, start=start)
    if method == "rates":
        return _rates(spec, ts, options, req)
    return _ode(spec, ts, switch, options, matrix_free=(method == "ode"), req=req)


def spectral_trajectory(spec: Spec, ts, eig=None, req: Request | None = None) -> Trajectory:
    """What ``method="spectral"`` computes, with the :func:`spectral_decomposition` when the caller has it."""
    b = rep.basis(spec)
    eig = spectral_decomposition(spec) if eig is None else eig
    if req is not None and req.mixed:
        return _spectral_mixed(spec, ts, eig, req, b)
    B = rep.dense_diagonal(spec.space, spec.battery, b)
    if B is None:
        B = rep.dense(spec.space, spec.battery, b)
    psi0 = rep.initial_vector(spec, b) if req is None else state_on(spec, req, b)
    masks = top_level_masks(spec, b)
    # ts[0] is the initial time (as in QuTiP and dynamiqs): phases run from there
    tau = ts - ts[0]
    E, dE, d2E, var, top = spectral_moments(None, B, psi0, tau, masks=tuple(masks), eig=eig)
    top = jnp.max(top, axis=-1)
    w, V = eig
    c = V.conj().T @ psi0.astype(jnp.result_type(V.dtype, psi0.dtype))
    expect, states = {}, None
    if req is not None and req.needs_states:
        psis = (c[None, :] * jnp.exp(-1j * jnp.outer(tau, w))) @ V.T  # (T, d): psi(t) = V phi(t)
        expect = req.named(expect_kets([operator_on(spec, op, b) for op in req.operators], psis))
        states = embed(psis, b) if req.save_states else None
        final = psis[-1]
    else:
        final = V @ (c * jnp.exp(-1j * w * tau[-1]))
    return Trajectory(ts, E, dE, d2E, var, top, energy_bound(spec), "quantum", "spectral", finite_status(E),
                      expect=expect, states=states, final_state=embed(final, b))


def _spectral_mixed(spec: Spec, ts, eig, req: Request, b) -> Trajectory:
    """A density matrix under a time-independent ``H``: with ``rho' = V^+ rho_0 V`` in the eigenbasis,
    ``tr(X rho(t)) = sum_jk X'_kj rho'_jk e^{-i (w_j - w_k) t} = u^T (X'^T o rho') u*`` with
    ``u = e^{-i w t}``: ``O(d^2)`` per time and operator after one ``O(d^3)`` change of basis each."""
    w, V = eig
    Vh = V.conj().T
    R = Vh @ state_on(spec, req, b, mixed=True) @ V
    Bp = Vh @ rep.dense(spec.space, spec.battery, b) @ V
    gap = w[:, None] - w[None, :]  # (k, j): w_k - w_j
    # i[H, B] and i[H, i[H, B]] in the eigenbasis: i (w_k - w_j) B'_kj and -(w_k - w_j)^2 B'_kj
    internal = [Bp, Bp @ Bp, 1j * gap * Bp, -(gap**2) * Bp]
    masks = [(Vh * m) @ V for m in top_level_masks(spec, b)]
    ops = [Vh @ operator_on(spec, op, b) @ V for op in req.operators]
    Ws = jnp.stack([X.T * R for X in (*internal, *masks, *ops)])
    tau = ts - ts[0]
    U = jnp.exp(-1j * jnp.outer(tau, w))  # (T, d)
    vals = jnp.einsum("tj,njk,tk->nt", U, Ws, jnp.conj(U))
    E, E2, dE, d2E = (jnp.real(v) for v in vals[:4])
    n_masks = len(masks)
    top = jnp.max(jnp.real(vals[4:4 + n_masks]), axis=-1) if n_masks else jnp.zeros(0)
    expect = req.named(list(vals[4 + n_masks:]))

    def state(u):
        return V @ (R * jnp.outer(u, jnp.conj(u))) @ Vh

    states = embed(jax.vmap(state)(U), b, dm=True) if req.save_states else None
    return Trajectory(ts, E, dE, d2E, E2 - E**2, top, energy_bound(spec), "quantum", "spectral", finite_status(E),
                      expect=expect, states=states, final_state=embed(state(U[-1]), b, dm=True))


def _ode(spec: Spec, ts, switch, options: ODEOptions, matrix_free: bool, req: Request | None = None) -> Trajectory:
    static, pieces = hamiltonian_pieces(spec, switch)
    if matrix_free:
        b = None
        op_of = lambda terms: rep.MatrixFree(spec.space, terms)  # noqa: E731
        if req is not None and req.state is not None:
            psi0 = req.state.reshape(spec.dims)
        else:
            psi0 = jnp.zeros(spec.dims, jnp.complex128).at[spec.initial_indices()].set(1.0)
        top_of = tensor_top(spec)
    else:
        b = rep.basis(spec)
        op_of = lambda terms: _matmul(rep.dense(spec.space, terms, b))  # noqa: E731
        psi0 = rep.initial_vector(spec, b) if req is None else state_on(spec, req, b)
        masks = top_level_masks(spec, b)
        top_of = lambda psi: jnp.stack([jnp.abs(psi) ** 2 @ m for m in masks]) if masks else jnp.zeros(0)  # noqa: E731
    H0, Bop = op_of(static), op_of(spec.battery)
    Hs = [op_of(terms) for _, terms in pieces]
    ws = [w for w, _ in pieces]

    def H_at(weights):
        def apply(x):
            out = H0(x)
            for w, H in zip(weights, Hs):
                out = out + w * H(x)
            return out
        return apply

    def apply_H(t, psi, args):
        return H_at([w(t) for w in ws])(psi)

    psis, solved = sesolve(apply_H, psi0, ts, options=options, jump_ts=jump_times(spec, switch), status=True)
    # Moments under the Hamiltonian in force at each t: E, dE/dt = <i[H(t), B]> and
    # d2E/dt2 = <i[H, i[H, B]]> + <i[dH/dt, B]> (exact for smooth and piecewise-constant weights).
    W, dW = weight_series(ws, ts)

    def moments(psi, wk, dwk):
        E, dE, d2E, var = (m[0] for m in moments_from_states(H_at(list(wk)), Bop, psi[None]))
        if Hs:
            dH = sum(dwk[i] * Hs[i](psi) for i in range(len(Hs)))
            d2E = d2E - 2 * jnp.imag(jnp.vdot(dH.reshape(-1), Bop(psi).reshape(-1)))
        return E, dE, d2E, var

    E, dE, d2E, var = (x[:, None] for x in jax.vmap(moments)(psis, W.T, dW.T))
    top = jax.vmap(top_of)(psis)
    flat = psis.reshape(psis.shape[0], -1)
    expect, states = {}, None
    if req is not None and req.needs_states:
        if matrix_free:
            values = [jax.vmap(_tensor_expect(spec, op))(psis) for op in req.operators]
        else:
            values = expect_kets([operator_on(spec, op, b) for op in req.operators], flat)
        expect = req.named(values)
        if req.save_states:
            states = flat if matrix_free else embed(flat, b)
    final = flat[-1] if matrix_free else embed(flat[-1], b)
    return Trajectory(ts, E[:, 0], dE[:, 0], d2E[:, 0], var[:, 0], jnp.max(top, axis=0),
                      energy_bound(spec), "quantum", "ode" if matrix_free else "dense-ode", merge(solved, finite_status(E)),
                      expect=expect, states=states, final_state=final)


def _tensor_expect(spec: Spec, op):
    """``psi -> <psi|O|psi>`` on state tensors of shape ``dims`` (matrix free for terms)."""
    if isinstance(op, tuple):
        apply = rep.MatrixFree(spec.space, op)
    else:
        def apply(psi):
            return (op @ psi.reshape(-1)).reshape(psi.shape)
    return lambda psi: jnp.vdot(psi.reshape(-1), apply(psi).reshape(-1))


def _matmul(m):
    return lambda x: m @ x


def lindblad_trajectory(spec: Spec, ts, switch, options: ODEOptions | None, observables=None,
                        req: Request | None = None, uniform: bool = False, span=None, start=None) -> Trajectory:
    """What ``method="lindblad"`` computes; ``observables``: ``{name: dense operator on rep.basis(spec)}``
    evaluated in the same run (``traj.expect[name]``, real parts of Hermitian operators); ``req``: the
    general request of :func:`charge` (its observables, initial state and saved states).

    A time-independent generator on an evenly spaced grid (``uniform``, checked by the caller) with a
    dimension up to :data:`EXPM_MAX_DIM` is propagated exactly: ``rho(t_k) = exp(L dt)^k rho_0``, one
    dense matrix exponential (scaling and squaring) and a product per save time.  Its cost does not grow
    with the window or with stiff rates, where the adaptive ODE's does (steps ~ window x fastest rate).

    ``span=(t_a, t_b)`` and ``start`` (the state at ``t_a`` on ``rep.basis(spec)``) compute one piece:
    the times in ``(t_a, t_b]`` (all of them, from ``start``, when ``t_a = t_b = ts[-1]``).
    """
    if options is None:
        options = ODEOptions(rtol=1e-12, atol=1e-12)
    named = {} if observables is None else dict(observables)
    b = rep.basis(spec)
    static, pieces = hamiltonian_pieces(spec, switch)
    H0 = rep.dense(spec.space, static, b)
    jumps = [(d.rate, rep.dense(spec.space, d.operator, b)) for d in spec.dissipators if d.modulation is None]
    # the time-dependent pieces of the generator: modulated Hamiltonian terms and modulated dissipators
    zero = jnp.zeros_like(H0)
    gen = [(w, rep.dense(spec.space, terms, b), []) for w, terms in pieces]
    gen += [(d.modulation, zero, [(d.rate, rep.dense(spec.space, d.operator, b))])
            for d in spec.dissipators if d.modulation is not None]
    rho0 = initial_density_matrix(spec, b) if req is None else state_on(spec, req, b, mixed=True)
    rho0 = rho0 if start is None else start
    B = rep.dense(spec.space, spec.battery, b)
    masks = [jnp.diag(m).astype(jnp.complex128) for m in top_level_masks(spec, b)]
    # With L(t) = L_0 + sum_p w_p(t) L_p:  d<B>/dt = sum_p w_p <L_p^+(B)> and
    # d2<B>/dt2 = sum_pq w_p w_q <L_p^+ L_q^+ (B)> + sum_p w_p' <L_p^+(B)>  (w_0 = 1), all exact.
    adj = [lindblad_adjoint(H0, jumps)] + [lindblad_adjoint(Hk, jk) for _, Hk, jk in gen]
    A = [f(B) for f in adj]
    second = [f(a) for f in adj for a in A]
    n = len(adj)
    masks = [*masks, *(jnp.asarray(op, jnp.complex128) for op in named.values())]
    asked = [] if req is None else [operator_on(spec, op, b) for op in req.operators]
    observables = [B, B @ B, *A, *second, *masks, *asked]
    save = req is not None and req.save_states
    if uniform and span is None and not gen and b.dim <= EXPM_MAX_DIM and ts.shape[0] >= 2:
        ex, states, last, solved = _exponential(H0, jumps, rho0, ts, observables, bool(asked), save)
    else:
        ex, states, last, solved = mesolve(H0, jumps, rho0, ts, observables=observables, options=options,
                                           pieces=[(w, lindblad_rhs(Hk, jk)) for w, Hk, jk in gen],
                                           jump_ts=jump_times(spec, switch), status=True,
                                           complex_observables=bool(asked), final=True, save_states=save,
                                           span=span)
    inner, ex = jnp.real(ex[:len(observables) - len(asked)]), ex[len(observables) - len(asked):]
    W, dW = weight_series([w for w, _, _ in gen], ts)
    W, dW = jnp.concatenate([jnp.ones_like(ts)[None], W]), jnp.concatenate([jnp.zeros_like(ts)[None], dW])
    E, E2, Av, Sv = inner[0], inner[1], inner[2:2 + n], inner[2 + n:2 + n + n * n].reshape(n, n, -1)
    dE = jnp.sum(W * Av, axis=0)
    d2E = jnp.einsum("pt,qt,pqt->t", W, W, Sv) + jnp.sum(dW * Av, axis=0)
    k = 2 + n + n * n
    n_masks = len(masks) - len(named)
    top = jnp.max(inner[k:k + n_masks], axis=-1) if n_masks else jnp.zeros(0)
    expect = {name: inner[k + n_masks + i] for i, name in enumerate(named)}
    if req is not None:
        expect.update(req.named(list(ex)))
    # (a piece's times outside its span hold the start state's values or zeros: finite, and no higher top
    # population than a state of the run)
    return Trajectory(ts, E, dE, d2E, E2 - E**2, top, energy_bound(spec), "quantum", "lindblad",
                      merge(solved, finite_status(E)), expect=expect,
                      states=embed(states, b, dm=True) if save else None, final_state=embed(last, b, dm=True))


def check_grid(ts, name: str = "ts") -> None:
    """Raise ``ValueError`` unless a concrete ``ts`` is a 1-D, finite, strictly increasing grid of at least two times.

    A traced grid (inside ``jit``) is not checked here; the adaptive
    propagators then report a decreasing one as ``qbjax.status.BAD_GRID``.
    """
    if not is_concrete(ts):
        return
    t = np.asarray(ts)
    if t.ndim != 1 or t.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 times (a start and a later time), got shape "
                         f"{t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{name} must be finite, got {t[~np.isfinite(t)][:3].tolist()} among its entries")
    if np.any(np.diff(t) <= 0):
        k = int(np.flatnonzero(np.diff(t) <= 0)[0])
        raise ValueError(f"{name} must be strictly increasing, but {name}[{k + 1}] = {t[k + 1]:g} <= "
                         f"{name}[{k}] = {t[k]:g}")


def evenly_spaced(ts) -> bool:
    """``ts`` concrete and evenly spaced: every ``t_k`` within ``1e-13`` of the span of ``t_0 + k dt``
    (what ``linspace`` gives), so a propagator may step by ``dt``."""
    if not is_concrete(ts) or ts.shape[0] < 2:
        return False
    t = np.asarray(ts, np.float64)
    k = np.arange(t.size)
    span = t[-1] - t[0]
    return bool(span > 0 and np.max(np.abs(t - (t[0] + k * span / (t.size - 1)))) <= 1e-13 * span)


def long_open_window(spec: Spec, ts, resolved: str, switch, req=None) -> bool:
    """A concrete, time-independent Lindblad run whose window exceeds :data:`STATIONARY_WINDOW` over the
    total dissipation rate, and which the exact exponential does not take: :func:`stationary_lindblad`
    stops it when stationary (shorter windows run in one piece: no restarts, no sparse LU)."""
    if resolved != "lindblad" or switch is not None or spec.time_dependent or ts.shape[0] < 3:
        return False
    if not outside_trace():  # under an outer trace the pieces' results are tracers: one run
        return False
    if not (is_concrete(ts) and all(is_concrete(x) for x in jax.tree.leaves((spec, req)))):
        return False
    if evenly_spaced(ts) and rep.basis(spec).dim <= EXPM_MAX_DIM:
        return False
    rates = sum(float(np.asarray(d.rate)) for d in spec.dissipators)
    t = np.asarray(ts)
    return float(t[-1] - t[0]) * rates > STATIONARY_WINDOW


#: ``window x (sum of the dissipation rates)`` above which a Lindblad run goes in pieces (a few relaxation times
#: of the slowest channel at the least: shorter windows have no stationary tail to skip).
STATIONARY_WINDOW = 50.0


def stationary_lindblad(spec: Spec, ts, options: ODEOptions, req: Request | None = None) -> Trajectory:
    """The Lindblad run of :func:`run` in pieces that stop once the rest of the window is proved stationary.

    For a concrete, time-independent spec: pieces grow geometrically from the
    fastest rate's time scale; after each, :class:`~qbjax.dynamics.stationary.Certifier`
    tries to prove every later state within ``max(10 rtol, 1e-10)`` (trace
    norm) of a stationary ``rho*``, and on success the remaining times hold
    ``rho*``'s values.  A window far past the relaxation costs what the
    relaxation costs (the adaptive ODE's steps grow with the window, since
    stiff rates bound them).  ``traj.stationary_from`` is the stop time
    (``None`` when the whole window was integrated: a degenerate stationary
    space, or no stationarity within it).
    """
    from .dynamics.stationary import GROWTH, STATIONARY_TOL, Certifier, density_trace_norm, liouvillian_matrix

    b = rep.basis(spec)
    d = b.dim
    static, _ = hamiltonian_pieces(spec, None)
    H0 = np.asarray(rep.dense(spec.space, static, b))
    jumps = [(float(np.asarray(x.rate)), np.asarray(rep.dense(spec.space, x.operator, b))) for x in spec.dissipators]
    L = liouvillian_matrix(H0, jumps)
    certify = Certifier(L, np.eye(d).reshape(-1), density_trace_norm(d), d,
                        max(STATIONARY_TOL * options.rtol, 1e-10))
    rho = initial_density_matrix(spec, b) if req is None else state_on(spec, req, b, mixed=True)
    t = np.asarray(ts, np.float64)
    piece = 1.0 / max(float(np.max(np.abs(L.diagonal()))), 1e-300)
    t_a, traj = float(t[0]), None
    while True:
        t_b = min(float(t[-1]), t_a + piece)
        part = run(spec, ts, "lindblad", None, options, req, span=(jnp.float64(t_a), jnp.float64(t_b)), start=rho)
        traj = part if traj is None else _merge(traj, part, t > t_a)
        last = np.asarray(part.final_state)
        rho = jnp.asarray(last if d == last.shape[0] else last[np.ix_(b.indices, b.indices)])
        t_a = t_b
        if t_b >= t[-1] or np.any(np.asarray(traj.status)):
            return traj
        piece *= GROWTH
        star = certify(np.asarray(rho).reshape(-1), float(t[-1]) - t_b)
        if certify.failed:
            piece = np.inf  # a degenerate stationary space: integrate the rest in one piece
        if star is not None:
            end = jnp.float64(t[-1])
            tail = run(spec, ts, "lindblad", None, options, req, span=(end, end),
                       start=jnp.asarray(star[0].reshape(d, d)))
            return dataclasses.replace(_merge(traj, tail, t > t_b), stationary_from=jnp.float64(t_b))


def _merge(old: Trajectory, new: Trajectory, take) -> Trajectory:
    """``new`` at the times ``take``, ``old`` elsewhere; the larger top population; ``new``'s final state."""
    take = jnp.asarray(take)

    def pick(a, b):
        if a is None or b is None or jnp.ndim(a) == 0 or a.shape[0] != take.shape[0]:
            return b
        return jnp.where(take.reshape((-1,) + (1,) * (a.ndim - 1)), b, a)

    fields = {f: pick(getattr(old, f), getattr(new, f)) for f in ("energy", "d_energy", "d2_energy", "variance")}
    return dataclasses.replace(
        new, **fields, top_population=jnp.maximum(old.top_population, new.top_population),
        expect={k: pick(old.expect[k], new.expect[k]) for k in new.expect},
        states=pick(old.states, new.states), status=merge(old.status, new.status))


#: Largest dimension ``d`` the Lindblad method propagates by one ``d^2 x d^2`` matrix exponential (on an
#: evenly spaced grid): ``d = 16`` is a 256 x 256 exponential, ~1e8 flops, below one compilation's cost.
EXPM_MAX_DIM = 16


def _exponential(H, jumps, rho0, ts, observables, complex_observables: bool, save: bool):
    """``mesolve``'s ``(expectations (n, T), states or None, rho(ts[-1]), status)`` by ``exp(L dt)``."""
    d = H.shape[0]
    eye = jnp.eye(d, dtype=jnp.complex128)
    H = jnp.asarray(H, jnp.complex128)
    # row-major vec: vec(A X B) = (A kron B^T) vec(X)
    L = -1j * (jnp.kron(H, eye) - jnp.kron(eye, H.T))
    for rate, J in jumps:
        J = jnp.asarray(J, jnp.complex128)
        JdJ = J.conj().T @ J
        L = L + rate * (jnp.kron(J, J.conj()) - 0.5 * jnp.kron(JdJ, eye) - 0.5 * jnp.kron(eye, JdJ.T))
    P = jax.scipy.linalg.expm(L * ((ts[-1] - ts[0]) / (ts.shape[0] - 1)))  # the caller checked even spacing

    def observe(v):
        rho = v.reshape(d, d)
        ex = jnp.stack([jnp.sum(O * rho.T) for O in observables]) if observables else jnp.zeros(0)
        return (ex if complex_observables else jnp.real(ex)), (rho if save else None)

    def step(v, _):
        v = P @ v
        return v, observe(v)

    v0 = jnp.asarray(rho0, jnp.complex128).reshape(-1)
    last, (ex, states) = jax.lax.scan(step, v0, None, length=ts.shape[0] - 1)
    ex0, s0 = observe(v0)
    ex = jnp.concatenate([ex0[None], ex])
    states = jnp.concatenate([s0[None], states]) if save else None
    bad = ~jnp.all(jnp.isfinite(ex)) | ~jnp.all(jnp.isfinite(last))
    return ex.T, states, last.reshape(d, d), flag(bad, NONFINITE)


def hamiltonian_pieces(spec: Spec, switch) -> tuple[tuple[Term, ...], list]:
    """``(static terms, [(w, terms)])``: ``H(t) = H_static + sum_k w_k(t) H_k``.

    The switch ``lambda(t)`` multiplies every coupling term; a term's own
    ``modulation`` multiplies that term (both, for a modulated coupling).
    """
    static = tuple(t for t in spec.charger + spec.battery if t.modulation is None)
    coupling = tuple(t for t in spec.coupling if t.modulation is None)
    pieces = []
    if switch is None:
        static = static + coupling
    elif coupling:
        pieces.append((switch, coupling))
    for t in spec.charger:
        if t.modulation is not None:
            pieces.append((t.modulation, (t,)))
    for t in spec.coupling:
        if t.modulation is not None:
            f = t.modulation if switch is None else (lambda s, f=t.modulation: switch(s) * f(s))
            pieces.append((f, (t,)))
    return static, pieces


def jump_times(spec: Spec, switch):
    """The discontinuities of the switch and of every modulation that declares them (``times``), sorted."""
    mods = [switch] + [t.modulation for t in spec.charger + spec.coupling] + [d.modulation for d in spec.dissipators]
    times = [jnp.ravel(jnp.asarray(m.times, jnp.float64)) for m in mods if m is not None and hasattr(m, "times")]
    return jnp.sort(jnp.concatenate(times)) if times else None


def weight_series(ws, ts):
    """``(W, dW)``: each weight ``w(t)`` and its derivative (forward mode) on ``ts``, shape ``(len(ws), T)``."""
    if not ws:
        return jnp.zeros((0,) + ts.shape), jnp.zeros((0,) + ts.shape)

    def value_and_slope(w, t):
        return jax.jvp(lambda s: jnp.asarray(w(s), jnp.float64), (t,), (jnp.ones_like(t),))

    out = [jax.vmap(lambda t, w=w: value_and_slope(w, t))(ts) for w in ws]
    return jnp.stack([v for v, _ in out]), jnp.stack([d for _, d in out])


def _rates(spec: Spec, ts, options: ODEOptions, req: Request | None = None) -> Trajectory:
    from .dynamics.rates import rate_solve
    from .representation.rates import rate_generator

    gen = rate_generator(spec)
    e = rep.diagonal_tensor(spec.space, spec.battery)
    top_of = tensor_top(spec, populations=True)
    p0 = spec.initial_population_tensor()
    ops = []
    if req is not None:
        if req.state is not None:
            x = req.state
            p0 = jnp.real(jnp.abs(x) ** 2 if x.ndim == 1 else jnp.diagonal(x)).reshape(spec.dims)
        ops = [_diagonal_of(spec, op) for op in req.operators]
    save = req is not None and req.save_states
    # the populations are kept at every time when asked for, or when small (the final state is then free)
    keep = save or math.prod(spec.dims) <= FINAL_RATES_MAX

    def observe(p):
        Ap = gen(p)
        asked = tuple(jnp.sum(o * p) for o in ops)
        return (jnp.sum(e * p), jnp.sum(e * e * p), jnp.sum(e * Ap), jnp.sum(e * gen(Ap)), top_of(p), asked,
                p if keep else None)

    (E, E2, dE, d2E, top, asked, ps), solved = rate_solve(gen, p0, ts, observe, options=options, status=True)
    top = jnp.max(top, axis=0) if top.shape[-1] else jnp.zeros(0)
    expect = {} if req is None else req.named(list(asked))
    states = jax.vmap(lambda p: jnp.diag(p.reshape(-1).astype(jnp.complex128)))(ps) if save else None
    final = jnp.diag(ps[-1].reshape(-1).astype(jnp.complex128)) if keep else None
    return Trajectory(ts, E, dE, d2E, E2 - E**2, top, energy_bound(spec), "quantum", "rates",
                      merge(solved, finite_status(E)), expect=expect, states=states, final_state=final)


def _diagonal_of(spec: Spec, op):
    """The diagonal of a diagonal observable as a tensor of shape ``dims`` (complex when it is)."""
    if isinstance(op, tuple):
        re = rep.diagonal_tensor(spec.space, tuple(Term(jnp.real(t.coeff), t.factors) for t in op))
        if not any(jnp.iscomplexobj(t.coeff) for t in op):
            return re
        im = rep.diagonal_tensor(spec.space, tuple(Term(jnp.imag(t.coeff), t.factors) for t in op))
        return re + 1j * im
    return jnp.diagonal(op).reshape(spec.dims)


def _classical(spec: Spec, ts, switch, options: ODEOptions, req: Request | None = None) -> Trajectory:
    kinds = rep.classical_kinds(spec.space)
    h0 = rep.classical_hamiltonian(spec.space, spec.charger + spec.battery)
    hi = rep.classical_hamiltonian(spec.space, spec.coupling)
    hb = rep.classical_hamiltonian(spec.space, spec.battery)
    x0 = rep.classical_state(spec)
    if switch is None:
        h = lambda x: h0(x) + hi(x)  # noqa: E731
        xs, solved = hamilton_flow(h, kinds, x0, ts, options=options, status=True)
        lam_t = jnp.ones_like(ts)
    else:
        xs, solved = hamilton_flow(h0, kinds, x0, ts, options=options, switch=switch, h_switched=hi,
                                   jump_ts=getattr(switch, "times", None), status=True)
        lam_t = jax.vmap(switch)(ts)

    def moments(x, lt):
        f = hamilton_vector_field(lambda y: h0(y) + lt * hi(y), kinds)
        d1 = lambda y: jax.jvp(hb, (y,), (f(y),))[1]  # noqa: E731  dE/dt = {E_B, H}
        return hb(x), d1(x), jax.jvp(d1, (x,), (f(x),))[1]

    E, dE, d2E = jax.vmap(moments)(xs, lam_t)
    expect = {}
    if req is not None and req.names:
        values = []
        for op, hermitian in zip(req.operators, req.hermitian, strict=True):
            # the symbol of O is Re sym(O) + i Re sym(-i O) (classical_hamiltonian takes real parts)
            re = rep.classical_hamiltonian(spec.space, op)
            im = None if hermitian else rep.classical_hamiltonian(spec.space, scaled(op, -1j))
            values.append(jax.vmap(lambda x, re=re, im=im: re(x) if im is None else re(x) + 1j * im(x))(xs))
        expect = req.named(values)
    return Trajectory(ts, E, dE, d2E, jnp.zeros_like(E), jnp.zeros(0), energy_bound(spec),
                      "classical", "hamilton", merge(solved, finite_status(E)), expect=expect)


def stepped_terms(spec: Spec, ts) -> int:
    """Chebyshev terms for the longest step of ``ts`` under Gershgorin's (rigorous) enclosure of ``H``."""
    from .dynamics.chebyshev import chebyshev_terms
    from .expansions import _gershgorin

    _, r, _ = _gershgorin(spec)
    step = float(np.max(np.diff(np.asarray(ts)))) if np.size(ts) > 1 else 0.0
    return 8 * math.ceil(max(chebyshev_terms(r * step), 1) / 8)


@eqx.filter_jit
def stepped_run(spec: Spec, ts, req: Request, terms: int) -> Trajectory:
    """Closed dynamics of any ket, step by step: ``psi(t_{k+1}) = exp(-i H (t_{k+1} - t_k)) psi(t_k)`` by a
    Chebyshev expansion on Gershgorin's enclosure (matrix free, exact to rounding on any grid), with
    every observable and the moments of ``H_B`` from the states."""
    from .dynamics.chebyshev import chebyshev_state
    from .expansions import enclosure
    from .representation.closed import closed_operators, operator_diagonals

    diagonals = operator_diagonals(spec)
    c, r = enclosure(spec, diagonals)
    apply_H, apply_B, _ = closed_operators(spec, diagonals, None)
    if req.state is not None:
        psi0 = req.state.reshape(spec.dims)
    else:
        psi0 = jnp.zeros(spec.dims, jnp.complex128).at[spec.initial_indices()].set(1.0)

    expects = [_tensor_expect(spec, op) for op in req.operators]
    top_of = tensor_top(spec)

    def observe(psi):
        E, dE, d2E, var = (m[0] for m in moments_from_states(apply_H, apply_B, psi[None]))
        values = tuple(f(psi) for f in expects)
        return (E, dE, d2E, var, top_of(psi), values, psi.reshape(-1) if req.save_states else None)

    def step(psi, dt):
        new = chebyshev_state(apply_H, psi, c, r, dt, terms)
        return new, observe(new)

    last, later = jax.lax.scan(step, psi0, jnp.diff(ts))
    first = observe(psi0)
    E, dE, d2E, var, top, values, states = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, later)
    top = jnp.max(top, axis=0) if top.shape[-1] else jnp.zeros(0)
    return Trajectory(ts, E, dE, d2E, var, top, energy_bound(spec), "quantum", "chebyshev", finite_status(E),
                      expect=req.named(list(values)), states=states, final_state=last.reshape(-1))

