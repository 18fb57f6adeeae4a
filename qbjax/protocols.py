"""Time-dependent charging protocols: piecewise-constant controls, propagated exactly.

Seed 000, Eq. 2 switches the coupling with a step, ``lambda(t) = 1`` on
``[0, tau]``.  A :class:`PiecewiseProtocol` generalises it: ``K`` segments of
durations ``dt_k`` on which the Hamiltonian is constant::

    H_k = u_k^A H_A + H_B + u_k^I H_I,

with ``u^I = lambda(t)`` the switching function (``controls=("coupling",)``,
the default) and optionally a modulated charger ``u^A`` (``("coupling",
"charger")``); a time-dependent coupling ``g(t) = g lambda(t)`` is the same
thing.  On each segment the evolution is exact, ``psi <- exp(-i H_k dt_k) psi``
from one eigendecomposition of ``H_k`` on the model's symmetry block, with
no time-stepping error.  Its derivative is the Daleckii-Krein formula
(:func:`hermitian_propagator`), which stays finite where ``H_k`` is
degenerate (the coupling switched off: ``H_A + H_B`` of a resonant battery
is highly degenerate), where differentiating ``eigh`` itself gives NaN.

:func:`protocol_energy` gives ``E_B`` at the end of each segment;
:func:`protocol_power` the average power ``E_B(tau)/tau`` at the end.
:func:`optimize_protocol` maximises it over bounded controls (and ``tau``)
with :func:`qbjax.optimize.optimize`.  The independent check of any
optimised protocol is the adaptive ODE path: ``qb.charge(model, ts,
switch=protocol.switch(), method="dense-ode")``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from . import representation as rep
from .charging import PiecewiseConstant
from .linalg import eigh
from .model import AbstractBattery, Spec

__all__ = ["PiecewiseProtocol", "protocol_energy", "protocol_power", "optimize_protocol", "ProtocolResult",
           "hermitian_propagator"]

CONTROLS = ("coupling", "charger")


class PiecewiseProtocol(eqx.Module):
    """Piecewise-constant controls.

    Arguments:
        durations: ``(K,)`` segment lengths ``dt_k > 0``; ``tau = sum dt_k``.
        values: ``(K, C)`` control values (``(K,)`` for one control):
            ``values[k, c]`` multiplies the part ``controls[c]`` of ``H`` on
            segment ``k``.
        controls: which parts of ``H`` are modulated (static): ``"coupling"``
            (``H_I``, the switching function ``lambda(t)``) and/or
            ``"charger"`` (``H_A``).
    """

    durations: Float[Array, " K"]
    values: Float[Array, "K C"]
    controls: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, durations, values, controls=("coupling",)):
        self.durations = jnp.asarray(durations, jnp.float64)
        v = jnp.asarray(values, jnp.float64)
        self.values = v[:, None] if v.ndim == 1 else v
        self.controls = tuple(controls)

    def __check_init__(self):
        for c in self.controls:
            if c not in CONTROLS:
                raise ValueError(f"controls must be among {CONTROLS}, got {c!r}")
        if self.values.shape != (self.durations.shape[0], len(self.controls)):
            raise ValueError(f"values must have shape (K, C) = ({self.durations.shape[0]}, {len(self.controls)}), "
                             f"got {self.values.shape}")

    @classmethod
    def step(cls, tau, segments: int = 1) -> PiecewiseProtocol:
        """The step function of seed 000, Eq. 2: ``lambda = 1`` on ``[0, tau]`` (``segments`` equal pieces)."""
        return cls(jnp.full(segments, tau / segments), jnp.ones(segments))

    @classmethod
    def uniform(cls, tau, values, controls=("coupling",)) -> PiecewiseProtocol:
        """``K = len(values)`` equal segments over ``[0, tau]``."""
        v = jnp.asarray(values, jnp.float64)
        return cls(jnp.full(v.shape[0], 1.0) * (tau / v.shape[0]), v, controls)

    @property
    def tau(self):
        return jnp.sum(self.durations)

    @property
    def times(self):
        """Segment boundaries ``(K + 1,)``, from 0 to ``tau``."""
        return jnp.concatenate([jnp.zeros(1), jnp.cumsum(self.durations)])

    def switch(self) -> PiecewiseConstant:
        """``lambda(t)`` as a :class:`~qbjax.PiecewiseConstant` (coupling control only), for ``qb.charge``."""
        if self.controls != ("coupling",):
            raise ValueError("switch() represents a coupling-only protocol; this one also modulates "
                             f"{[c for c in self.controls if c != 'coupling']}")
        return PiecewiseConstant(self.times, self.values[:, 0])


@jax.custom_jvp
def hermitian_propagator(H, dt):
    """``exp(-i H dt)`` for a Hermitian ``H`` (exact, from ``eigh``).

    Differentiated by the Daleckii-Krein formula instead of through ``eigh``:
    with ``H = V diag(w) V^+`` and ``f(w) = e^{-i w dt}``,
    ``dU = V (F o (V^+ dH V)) V^+ - i ddt H U``, where
    ``F_jk = (f(w_j) - f(w_k)) / (w_j - w_k) = -i dt e^{-i (w_j + w_k) dt / 2} sinc((w_j - w_k) dt / 2)``
    (``F_jj = f'(w_j)``): smooth through degenerate eigenvalues.
    """
    w, V = eigh(H)
    return (V * jnp.exp(-1j * w * dt)) @ V.conj().T


@hermitian_propagator.defjvp
def _hermitian_propagator_jvp(primals, tangents):
    H, dt = primals
    dH, ddt = tangents
    w, V = eigh(H)
    e = jnp.exp(-1j * w * dt)
    U = (V * e) @ V.conj().T
    x = 0.5 * (w[:, None] - w[None, :]) * dt
    F = -1j * dt * jnp.exp(-0.5j * (w[:, None] + w[None, :]) * dt) * jnp.sinc(x / jnp.pi)
    Vh = V.conj().T
    dU = V @ (F * (Vh @ dH @ V)) @ Vh + ddt * ((V * (-1j * w * e)) @ Vh)
    return U, dU


class ProtocolResult(eqx.Module):
    """``E_B`` at the segment boundaries (``times``, ``(K + 1,)``) and the final state on the block basis."""

    times: Array
    energy: Array
    state: Array


def _parts(spec: Spec):
    if spec.dissipators:
        raise ValueError("protocols are propagated for closed systems (the spec has dissipators)")
    b = rep.basis(spec)
    # real parts when possible: a real symmetric eigh is far cheaper than a
    # complex Hermitian one (two orders of magnitude on CPU)
    parts = [rep.dense(spec.space, t, b, dtype=None) for t in (spec.charger, spec.battery, spec.coupling)]
    dtype = jnp.result_type(*parts)
    HA, HB, HI = (p.astype(dtype) for p in parts)
    return HA, HB, HI, rep.initial_vector(spec, b)


def protocol_energy(model: AbstractBattery | Spec, protocol: PiecewiseProtocol) -> ProtocolResult:
    """Exact ``E_B`` at the end of every segment of ``protocol``.

    The segment propagators ``exp(-i H_k dt_k)`` are dense matrix exponentials
    on the spec's symmetry block (the conserved charge must be conserved by
    each part separately, as it is for every model in :mod:`qbjax.models`),
    applied in one ``lax.scan``.  Differentiable in the model's leaves and in
    the protocol's durations and values.
    """
    spec = model.spec() if isinstance(model, AbstractBattery) else model
    HA, HB, HI, psi0 = _parts(spec)
    parts = {"coupling": HI, "charger": HA}
    fixed = HB + sum((parts[n] for n in CONTROLS if n not in protocol.controls), jnp.zeros_like(HB))

    def segment(psi, seg):
        dt, u = seg
        H = fixed + sum(u[i] * parts[c] for i, c in enumerate(protocol.controls))
        psi = hermitian_propagator(H, dt) @ psi
        return psi, jnp.real(jnp.vdot(psi, HB @ psi))

    psi, E = jax.lax.scan(segment, psi0, (protocol.durations, protocol.values))
    e0 = jnp.real(jnp.vdot(psi0, HB @ psi0))
    return ProtocolResult(protocol.times, jnp.concatenate([e0[None], E]), psi)


def protocol_power(model, protocol: PiecewiseProtocol):
    """Average power ``E_B(tau) / tau`` at the end of the protocol."""
    return protocol_energy(model, protocol).energy[-1] / protocol.tau


def optimize_protocol(model: AbstractBattery, segments: int, *, tau=None, tau_bounds=None, bounds=(-1.0, 1.0),
                      controls=("coupling",), init=None, restarts: int = 4, steps: int = 200,
                      method: str = "lbfgs", learning_rate: float = 0.05, seed: int = 0, progress: bool = True):
    """Maximise the average power ``E_B(tau)/tau`` over piecewise-constant controls.

    Arguments:
        model: a closed battery model.
        segments: ``K``, equal segments of ``tau / K``.
        tau: a fixed charging time, or the initial one when ``tau_bounds``
            is given (then ``tau`` is optimised too, inside the bounds).
        bounds: ``(lo, hi)`` of every control value (the step function has
            ``lambda = 1``; bounding ``|lambda| <= 1`` keeps the comparison
            with the step fair: no stronger coupling is ever used).
        controls: see :class:`PiecewiseProtocol`.
        init: initial ``(K, C)`` values (default: the step, all ones).
        restarts, steps, method, learning_rate, seed, progress: see
            :func:`qbjax.optimize.optimize` (restart 0 starts at ``init``,
            the others at random values inside the bounds).

    For the Dicke battery (``N = 4``, ``g = 0.2`` and ``0.6``) a bounded
    ``lambda(t)`` alone converges back to the step (bang-bang at the bound:
    more coupling always charges faster there); modulating the charger too
    (``controls=("coupling", "charger")``) raises ``Pbar`` by 8% at ``g = 0.2``
    (``notebooks/results/sweeps/dicke_protocol.py``).

    Returns:
        ``(protocol, result)``: the best :class:`PiecewiseProtocol` and the
        :class:`~qbjax.optimize.OptimizeResult` (history of every restart).
    """
    from .optimize import Box, optimize

    if tau is None:
        raise ValueError("tau is required (for example the step's optimal time taubar)")
    C = len(controls)
    v0 = jnp.ones((segments, C)) if init is None else jnp.asarray(init, jnp.float64).reshape(segments, C)
    params = {"values": v0}
    constraints = {"values": Box(*bounds)}
    if tau_bounds is not None:
        params["tau"] = jnp.asarray(tau, jnp.float64)
        constraints["tau"] = Box(*tau_bounds)

    def power(p):
        T = p["tau"] if "tau" in p else tau
        return protocol_power(model, PiecewiseProtocol.uniform(T, p["values"], controls))

    res = optimize(power, params, constraints=constraints, restarts=restarts, steps=steps, method=method,
                   learning_rate=learning_rate, seed=seed, progress=progress)
    best = res.params
    T = best["tau"] if "tau" in best else tau
    return PiecewiseProtocol.uniform(T, best["values"], controls), res
