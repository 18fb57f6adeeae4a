"""Propagation: one ``lax.scan`` over the collisions of a swap-angle schedule.

The battery starts in its ground state ``|0><0|`` (Sec. II).  Collision ``k``
(angle ``theta_k``, Eq. 3) is followed by the damping channel (Eq. 21) when the
model is lossy.  Two state representations:

``"populations"``  the diagonal of ``rho_B``, ``O(d)`` per collision: exact
                   when the units are incoherent (``c = 0``, or ``q`` in
                   ``{0, 1}``), because the state then stays diagonal (Eq. 9).
``"density"``      the real symmetric ``rho~`` of the rotating frame
                   (:mod:`qbjax.dynamics.collisions`), ``O(d^2)`` per collision.

The schedule ``thetas`` is an array leaf: ``jax.grad`` of the stored energy
with respect to it, and ``jax.vmap`` over schedules or unit parameters, go
through the scan.  For long density-matrix runs the scan is nested
(chunks of ``checkpoint`` collisions under ``jax.checkpoint``) so that
reverse-mode memory is ``O((K / c + c) d^2)`` instead of ``O(K d^2)``.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..dynamics.collisions import (
    collide_density,
    collide_populations,
    damp_density,
    damp_populations,
    damping_coefficients,
    damping_tail,
    nested_scan,
    phase_factors,
)
from ..methods import register_native
from ..metrics import passive_energy
from ..models._common import ParameterError
from ..status import DAMPING_CUT, flag, merge
from ..trajectory import Trajectory, finite_status, warn_top_population
from ._model import CollisionalModel, check_schedule

__all__ = [
    "CollisionTrajectory",
    "collide",
    "stored_energy",
    "stored_energy_and_grad",
    "ergotropy",
    "damp_step",
    "Kernel",
    "kernel",
    "TRUNCATION_TOL",
    "MODES",
]

MODES = ("auto", "populations", "density")
#: Warn when the top level of a truncated oscillator ever holds more than this.
TRUNCATION_TOL = 1e-6


class CollisionTrajectory(eqx.Module):
    """The battery along a schedule (energies in units of ``E``, times ``Omega tau``).

    Attributes:
        thetas: the swap angles ``theta_k`` ``(K,)``.
        times: ``Omega tau`` after each collision, ``cumsum(thetas)`` ``(K,)``.
        energy: mean battery energy after each collision (and its damping) ``(K,)``.
        top_population: largest population of the top level over the run
            (the truncation check for the oscillator).
        state: final state: populations ``(d,)`` or the rotating-frame
            ``rho~`` ``(d, d)`` (real symmetric); see :meth:`density_matrix`.
        populations: populations after every collision ``(K, d)`` when
            recorded, else ``None``.
        phase: the units' phase ``alpha`` (to rotate ``rho~`` back).
        mode: ``"populations"`` or ``"density"``.
        variance: energy fluctuation ``<n^2> - <n>^2`` after each collision ``(K,)``.
    """

    thetas: Float[Array, " K"]
    times: Float[Array, " K"]
    energy: Float[Array, " K"]
    top_population: Float[Array, ""]
    state: Array
    populations: Array | None
    phase: Array
    mode: str = eqx.field(static=True)
    variance: Float[Array, " K"] | None = None

    @property
    def final_energy(self):
        return self.energy[..., -1]

    @property
    def final_populations(self):
        return self.state if self.mode == "populations" else jnp.diagonal(self.state, axis1=-2, axis2=-1)

    def density_matrix(self):
        """The final ``rho_B`` in the lab (interaction-picture) frame of Eq. 3, complex ``(d, d)``."""
        if self.mode == "populations":
            return jnp.diag(self.state).astype(jnp.complex128)
        d = self.state.shape[-1]
        ph = phase_factors(d, self.phase)
        return ph[..., :, None] * self.state * jnp.conj(ph)[..., None, :]

    def ergotropy(self):
        """Ergotropy of the final battery state (``E - E_passive``, Sec. II)."""
        return ergotropy(self.state, self.mode)


def ergotropy(state, mode: str):
    """``tr(rho H_B) - E_passive``: sorted eigenvalues (populations if diagonal) on the ladder ``0, 1, ..``."""
    d = state.shape[-1]
    levels = jnp.arange(d, dtype=jnp.float64)
    if mode == "populations":
        p = state
        return jnp.sum(levels * p) - jnp.sum(levels * jnp.sort(p)[::-1])
    return jnp.sum(levels * jnp.diagonal(state)) - passive_energy(state, levels)


def resolve_mode(model: CollisionalModel, mode: str) -> str:
    if mode not in MODES:
        raise ParameterError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "auto":
        return "populations" if model.units.is_incoherent() else "density"
    if mode == "populations" and model.units.is_incoherent() is False:
        raise ParameterError("mode='populations' needs incoherent units (coherence 0 or q in {0, 1})")
    return mode


def initial_state(levels: int, mode: str):
    if mode == "populations":
        return jnp.zeros(levels).at[0].set(1.0)
    return jnp.zeros((levels, levels)).at[0, 0].set(1.0)


class Kernel(eqx.Module):
    """What a collision and a damping period need, without the battery's kind or the units' phase.

    Jitted propagators take a kernel rather than the model, so that one
    compilation serves every ladder (and every phase) of the same size.
    """

    coupling: Float[Array, " levels-1"]
    q: Float[Array, ""]
    drive: Float[Array, ""]
    loss: Float[Array, ""]
    damping_terms: int = eqx.field(static=True)

    @property
    def levels(self) -> int:
        return self.coupling.shape[-1] + 1

    @property
    def lossy(self) -> bool:
        return self.damping_terms > 0


def kernel(model: CollisionalModel) -> Kernel:
    return Kernel(jnp.asarray(model.battery.coupling), model.units.q, model.units.drive, model.loss,
                  model.damping_terms)


def damp_step(k: Kernel, mode: str):
    """The damping period after a collision (Eq. 21); the identity for a lossless model."""
    if not k.lossy:
        return lambda state: state
    b = damping_coefficients(k.loss, k.levels, k.damping_terms)
    damp = damp_populations if mode == "populations" else damp_density
    # A cond on a traced predicate keeps XLA from fusing the collision into the
    # damping's shifted reads (it would recompute it once per binomial term,
    # ~10x slower); optimization_barrier does not survive on CPU.
    return lambda state: jax.lax.cond(k.loss > 0, lambda x: damp(x, b), lambda x: x, state)


def step_function(k: Kernel, mode: str):
    """``state, theta -> state`` for one collision followed by the damping period."""
    damp = damp_step(k, mode)
    if mode == "populations":
        return lambda p, theta: damp(collide_populations(p, k.coupling, theta, k.q))
    return lambda r, theta: damp(collide_density(r, k.coupling, theta, k.q, k.drive))


def default_checkpoint(mode: str, k: int, levels: int) -> int | None:
    # Nest only where reverse-mode residuals (K d^2 doubles) would be large.
    if mode == "populations" or k * levels * levels < 2**22:
        return None
    return max(1, int(round(math.sqrt(k))))


@eqx.filter_jit
def _collide(k: Kernel, phase, thetas, mode: str, record: bool, checkpoint):
    levels = k.levels
    n = jnp.arange(levels, dtype=jnp.float64)
    step = step_function(k, mode)

    def body(state, theta):
        state = step(state, theta)
        p = state if mode == "populations" else jnp.diagonal(state)
        out = (jnp.dot(n, p), p[-1], jnp.dot(n * n, p))
        if record:
            out = out + (p,)
        return state, out

    state, ys = nested_scan(body, initial_state(levels, mode), thetas, checkpoint)
    energy, top = ys[0], ys[1]
    return CollisionTrajectory(
        thetas=thetas,
        times=jnp.cumsum(thetas),
        energy=energy,
        top_population=jnp.max(top),
        state=state,
        populations=ys[3] if record else None,
        variance=ys[2] - energy**2,
        phase=phase,
        mode=mode,
    )


def collide(model: CollisionalModel, thetas, *, mode: str = "auto", record_populations: bool = False,
            checkpoint: int | None | str = "auto", warn: bool = True) -> CollisionTrajectory:
    """Charge the battery with ``K = len(thetas)`` collisions (Eq. 3, 21).

    Arguments:
        model: a :class:`~qbjax.collisional.CollisionalModel`.
        thetas: swap angles ``theta_k = Omega t_k >= 0`` ``(K,)``; an array leaf
            (differentiable, vmappable).
        mode: ``"auto"`` (populations for incoherent units, else density),
            ``"populations"`` or ``"density"``.
        record_populations: also return the populations after every collision.
        checkpoint: chunk length of the nested, checkpointed scan (``None``:
            a flat scan; ``"auto"``: ``sqrt(K)`` for long density runs).
        warn: warn (:class:`~qbjax.TruncationWarning`) when the top level of a
            truncated oscillator holds more than :data:`TRUNCATION_TOL`.

    Returns:
        a :class:`CollisionTrajectory`.

    Raises:
        ParameterError: negative or non-finite angles, a bad ``mode``.
    """
    thetas = check_schedule(thetas)
    mode = resolve_mode(model, mode)
    if checkpoint == "auto":
        checkpoint = default_checkpoint(mode, thetas.shape[0], model.battery.levels)
    traj = _collide(kernel(model), model.units.phase, thetas, mode, record_populations, checkpoint)
    if warn and model.battery.truncated:
        warn_truncation(traj.top_population, model.battery.levels)
    return traj


def warn_truncation(top, levels: int, tol: float = TRUNCATION_TOL, stacklevel: int = 3):
    warn_top_population(top, tol, level=f"the top kept Fock level ({levels - 1})", advice="increase levels",
                        diverged="non-finite population: the collision map diverged", stacklevel=stacklevel + 1)


def stored_energy(model: CollisionalModel, thetas, mode: str = "auto", checkpoint: int | None | str = "auto"):
    """Final mean energy after the schedule: a differentiable scalar function of ``thetas`` and the model leaves."""
    thetas = check_schedule(thetas)
    mode = resolve_mode(model, mode)
    if checkpoint == "auto":
        checkpoint = default_checkpoint(mode, thetas.shape[0], model.battery.levels)
    return _collide(kernel(model), model.units.phase, thetas, mode, False, checkpoint).energy[-1]


@eqx.filter_jit
def _energy_and_grad(k: Kernel, thetas, mode: str, checkpoint):
    return jax.value_and_grad(lambda th: _collide(k, jnp.zeros(()), th, mode, False, checkpoint).energy[-1])(thetas)


def stored_energy_and_grad(model: CollisionalModel, thetas, mode: str = "auto",
                           checkpoint: int | None | str = "auto"):
    """``(E, dE/dtheta)``: the final energy and its gradient with respect to the schedule (reverse mode, jitted).

    One compilation per battery size, schedule length and mode (the optimiser uses it too).
    """
    thetas = check_schedule(thetas)
    mode = resolve_mode(model, mode)
    if checkpoint == "auto":
        checkpoint = default_checkpoint(mode, thetas.shape[0], model.battery.levels)
    return _energy_and_grad(kernel(model), thetas, mode, checkpoint)


def collisions_trajectory(model: CollisionalModel, method=None) -> Trajectory:
    """What ``qb.charge(model)`` returns for a collisional model: the common :class:`~qbjax.Trajectory`.

    ``ts = (0, cumsum(thetas))`` and ``energy = (0, E_1, ..., E_K)``, one point
    per collision; ``discrete`` (no derivatives between collisions: zeros),
    ``variance`` the energy fluctuation, ``top_population`` the top level's
    largest population (truncated oscillators).  ``method``: a
    :class:`qbjax.methods.Collisions` (its ``mode`` and ``checkpoint``).
    """
    if model.schedule is None:
        raise ValueError("a collisional model needs a schedule: qb.charge(model.with_schedule(thetas))")
    mode = "auto" if method is None else method.mode
    checkpoint = "auto" if method is None else method.checkpoint
    traj = collide(model, model.schedule, mode=mode, checkpoint=checkpoint, warn=False)
    zero = jnp.zeros((1,), traj.energy.dtype)
    ts = jnp.concatenate([zero, traj.times])
    energy = jnp.concatenate([zero, traj.energy])
    top = jnp.atleast_1d(traj.top_population) if model.battery.truncated else jnp.zeros(0)
    # the damping series was sized for the loss the model was built with; a loss replaced since (a sweep,
    # an optimiser, replace_params) may need more terms: flagged, never silently cut
    cut = flag(damping_tail(model.loss, model.battery.levels, model.damping_terms) > DAMPING_TAIL_TOL, DAMPING_CUT)
    return Trajectory(ts, energy, jnp.zeros_like(energy), jnp.zeros_like(energy),
                      jnp.concatenate([zero, traj.variance]), top,
                      jnp.asarray(model.battery.levels - 1, jnp.float64), "quantum", "collisions",
                      merge(finite_status(energy), cut), discrete=True)


#: Largest tolerated damping tail (``P[Binomial(d - 1, gamma) > terms]``) per collision.
DAMPING_TAIL_TOL = 1e-13


def _run_collisions(model: CollisionalModel, ts, method, options) -> Trajectory:
    if ts is not None:
        raise ValueError("a collisional battery's times are its schedule's: ts does not apply")
    return collisions_trajectory(model, method if method.key == "collisions" else None)


register_native("collisions", ("auto", "collisions"), _run_collisions)
