"""Open batteries: steady state, its figures of merit, and the charging time.

For a dissipative spec with a unique stationary state (seed 001):

* :func:`steady_state`: the null space of the generator.  Rate equations
  (state provably diagonal): populations, by detailed balance along
  birth-death chains (exact, ``O(N)``, log space) or the dense null vector;
  otherwise the density matrix from the Liouvillian's null space (dense for
  small spaces, sparse LU above).
* :func:`steady_figures`: stored energy, its fluctuation ``sigma``, and the
  ergotropy of the battery's stationary state, both with unrestricted
  unitaries on the physical battery (seed 001, Eq. 16: for ``N`` qubits
  simulated in the symmetric sector the passive state may use all ``2^N``
  states) and with unitaries inside the simulated (symmetric) space.
* :func:`charging_time`: seed 001, Eq. 17, ``tau = min{t : (E_ss - E(t)) /
  E_ss < eps}``, found on the dense output (the quintic Hermite interpolant
  from the exact ``E, dE/dt, d^2E/dt^2`` at the grid nodes) by a safeguarded
  Newton iteration; its gradient follows from the implicit function theorem,
  ``d tau = -(dE(tau) - (1 - eps) dE_ss) / E'(tau)``.
* :func:`open_charging`: all of it for a model, extending the time window
  until the charging criterion is met.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from . import representation as rep
from .charging import charge
from .dynamics.rates import steady_with_method
from .dynamics.stationary import liouvillian_matrix
from .linalg import eigvalsh, solve
from .methods import resolve_method
from .metrics import hermite5, passive_energy_of_spectrum
from .model import AbstractBattery, Spec
from .representation.open import dense_lindblad
from .representation.rates import rate_generator
from .status import NONFINITE, NOT_REACHED, UNPHYSICAL, SolverError, check, flag, is_concrete, merge, settle
from .trajectory import Trajectory

__all__ = ["steady_state", "steady_figures", "charging_time", "charging_time_status", "open_charging", "OpenCharging",
           "SteadyFigures"]

#: Largest Liouvillian (``d^2``) whose null space is found densely (differentiable).
DENSE_LIOUVILLIAN_MAX = 4096


def _spec(model):
    return model.spec() if isinstance(model, AbstractBattery) else model


def steady_state(model: AbstractBattery | Spec, *, method: str = "auto"):
    """The stationary state reached from the spec's initial state.

    Returns ``("populations", p)`` with ``p`` a tensor of shape ``dims`` when
    the dynamics is a rate equation, else ``("density", rho)`` on the full
    product basis.
    """
    kind, state, flags, _ = _steady_state(_spec(model), method)
    return kind, settle(state, flags, "steady_state")


def _steady_state(spec: Spec, method: str):
    """``(kind, state, status, how)``: :func:`steady_state` with its failure flag returned, not raised,
    and a sentence saying how the state was obtained."""
    if not spec.dissipators:
        raise ValueError("steady_state needs a dissipative spec (closed systems have no unique steady state)")
    spec.require_static("steady_state")
    resolved = resolve_method(spec, method, False, None)
    if resolved == "rates":
        p0 = spec.initial_population_tensor()
        p, flags, how = steady_with_method(rate_generator(spec), p0)
        total = jnp.sum(p0)
        tol = float(np.sqrt(np.finfo(p.dtype).eps))  # 1.5e-8 in float64 (3e-4 when 64-bit mode is off)
        off = (jnp.min(p) < -tol * total) | (jnp.abs(jnp.sum(p) - total) > tol * total)
        return "populations", p, merge(flags, flag(off, UNPHYSICAL)), how
    rho, how = _lindblad_steady(spec)
    w = eigvalsh(rho)
    tol = float(np.sqrt(np.finfo(w.dtype).eps))
    off = (w[0] < -tol) | (jnp.abs(jnp.real(jnp.trace(rho)) - 1.0) > tol)
    return ("density", rho, merge(flag(~jnp.isfinite(rho), NONFINITE), flag(jnp.isfinite(w[0]) & off, UNPHYSICAL)),
            how)


def _lindblad_steady(spec: Spec):
    ops = dense_lindblad(spec)
    b, H, jumps = ops.basis, ops.H, ops.jumps
    d = b.dim
    traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(spec))
    if d * d <= DENSE_LIOUVILLIAN_MAX:
        eye = jnp.eye(d)
        # row-major vec: vec(A X B) = (A kron B^T) vec(X)
        Lv = -1j * (jnp.kron(H, eye) - jnp.kron(eye, H.T))
        for rate, L in jumps:
            LdL = L.conj().T @ L
            Lv = Lv + rate * (jnp.kron(L, L.conj()) - 0.5 * jnp.kron(LdL, eye) - 0.5 * jnp.kron(eye, LdL.T))
        projected = None if traced else _stationary_projection(np.asarray(Lv), np.asarray(ops.rho0))
        if projected is not None:
            rho = jnp.asarray(projected[0].reshape(d, d))
            how = (f"projection of rho_0 onto the {projected[1]}-dimensional stationary space "
                   "(right and left null spaces of the Liouvillian by "
                   + ("SVD)" if d * d <= PROJECTION_MAX else "shift-invert Arnoldi)"))
        else:
            M = Lv.at[0].set(jnp.eye(d).reshape(-1))  # replace one equation by tr(rho) = 1
            rho = solve(M, jnp.zeros(d * d, jnp.complex128).at[0].set(1.0)).reshape(d, d)
            how = ("null vector of the dense Liouvillian with tr rho = 1 (" + (
                "unique: checked by SVD)" if d * d <= PROJECTION_MAX else
                "unique: checked by shift-invert Arnoldi)") if not traced else
                "a unique stationary state assumed, checked)")
    else:
        if traced:
            raise ValueError(f"steady state of a {d}-dimensional Lindblad problem is found by sparse LU, "
                             "which is not differentiable; differentiate a smaller problem")
        Lv = liouvillian_matrix(H, jumps)
        projected = _stationary_projection(Lv, np.asarray(ops.rho0))
        if projected is not None:
            rho = jnp.asarray(projected[0].reshape(d, d))
            how = (f"projection of rho_0 onto the {projected[1]}-dimensional stationary space "
                   "(right and left null spaces of the sparse Liouvillian by shift-invert Arnoldi)")
        else:
            Lv = Lv.tolil()
            Lv[0, :] = np.eye(d).reshape(1, -1)
            rhs = np.zeros(d * d, complex)
            rhs[0] = 1.0
            rho = jnp.asarray(spla.spsolve(Lv.tocsc(), rhs).reshape(d, d))
            how = ("null vector of the sparse Liouvillian by LU with tr rho = 1 (unique: checked by shift-invert "
                   "Arnoldi)")
    rho = 0.5 * (rho + rho.conj().T)
    return _embed_density(b, rho), how


#: Largest Liouvillian whose stationary space is resolved by an SVD (any dimension, the initial state's
#: projection onto it); above it a unique stationary state is assumed and the result checked.
PROJECTION_MAX = 1024


def _stationary_projection(Lv, rho0: np.ndarray):
    """``(vec(rho_inf), k)`` with ``vec(rho_inf) = P_0 vec(rho_0)`` when the stationary space has dimension
    ``k > 1``, else ``None``.

    ``P_0 = R (L^+ R)^{-1} L^+`` projects onto the right null space ``R`` of the
    Liouvillian along its range, ``L`` spanning the left null space (the
    conserved quantities).  The zero eigenvalue of a Lindblad generator is
    semisimple (``exp(Lt)`` stays bounded), so ``P_0 vec(rho_0)`` is
    ``lim exp(Lt) rho_0`` (the time average, when purely imaginary
    eigenvalues keep coherences oscillating): the stationary state reached
    from ``rho_0``, as QuTiP's propagator defines it.

    Up to :data:`PROJECTION_MAX` unknowns the null spaces come from an SVD of
    the dense matrix; above it from the eigenvalues nearest zero of ``L`` and
    ``L^+`` by shift-invert Arnoldi (ARPACK, :data:`NULL_SEARCH` of them, one
    sparse LU each).  A null space as large as the search, or eigenvalues
    between the null tolerance and ``1e3`` times it (no clear gap), is
    refused: the stationary state would not be resolved.
    """
    n = Lv.shape[0]
    if n <= PROJECTION_MAX:
        U, S, Vh = np.linalg.svd(np.asarray(Lv))
        tol = max(S[0], 1.0) * n * np.finfo(float).eps * 100
        k = int(np.sum(S <= tol))
        if k <= 1:
            return None
        R = Vh[-k:].conj().T
        Lh = U[:, -k:]
    else:
        A = sp.csc_matrix(Lv)
        scale = max(float(abs(A).sum(axis=0).max()), 1.0)
        tol = 1e-9 * scale
        ask = min(NULL_SEARCH, n - 2)

        def null(M):
            vals, vecs = spla.eigs(M, k=ask, sigma=-1e-7 * scale, which="LM", tol=1e-13)
            size = np.abs(vals)
            k = int(np.sum(size <= tol))
            # a slow but nonzero rate beside a one-dimensional null space is fine (the bordered solve follows)
            if k == ask or (k > 1 and np.any((size > tol) & (size < 1e3 * tol))):
                raise ValueError(
                    f"the stationary space of this {n}-unknown Liouvillian is not resolved: {k} of the "
                    f"{ask} eigenvalues nearest 0 are below {tol:.1e} and the next are not clearly apart "
                    f"({np.sort(size)[:k + 2]}); the stationary state reached from the initial state cannot "
                    "be determined reliably (integrate to a long time instead)")
            return vecs[:, size <= tol], k

        R, k = null(A)
        if k <= 1:
            return None
        Lh, k_left = null(A.conj().T.tocsc())
        if k_left != k:
            raise ValueError(f"the right ({k}) and left ({k_left}) null spaces of the Liouvillian differ in "
                             "dimension: the stationary state is not resolved")
    return R @ np.linalg.solve(Lh.conj().T @ R, Lh.conj().T @ rho0.reshape(-1)), k


#: Eigenvalues nearest zero that the sparse null-space search computes (the largest stationary space it resolves
#: is one less).
NULL_SEARCH = 12


def _embed_density(b, rho):
    D = math.prod(b.dims)
    if b.dim == D:
        return rho
    full = jnp.zeros((D, D), rho.dtype)
    return full.at[np.ix_(b.indices, b.indices)].set(rho)


class SteadyFigures(eqx.Module):
    """Figures of merit of the battery's stationary state.

    Attributes:
        energy: ``tr(H_B rho_ss)``; variance: ``<H_B^2> - <H_B>^2``.
        ergotropy: with any unitary on the physical battery (seed 001, Eq. 16).
        ergotropy_sector: with unitaries on the simulated battery space only
            (for a collective spin: the symmetric sector).
        status: a :mod:`qbjax.status` flag (``0``: no failure); checked by
            :func:`steady_figures` when concrete.
        how: how the stationary state was obtained (a sentence).
    """

    energy: jax.Array
    variance: jax.Array
    ergotropy: jax.Array
    ergotropy_sector: jax.Array
    status: jax.Array = eqx.field(default_factory=lambda: jnp.zeros((), jnp.int32))
    how: str = eqx.field(static=True, default="")

    @property
    def fluctuation(self):
        return jnp.sqrt(jnp.maximum(self.variance, 0.0))


def steady_figures(model: AbstractBattery | Spec, *, method: str = "auto") -> SteadyFigures:
    """Energy, fluctuation and ergotropy of the battery in the stationary state."""
    spec = _spec(model)
    kind, state, flags, how = _steady_state(spec, method)
    check(flags, "steady_figures")
    if kind == "populations":
        e = rep.diagonal_tensor(spec.space, spec.battery)
        energy = jnp.sum(e * state)
        variance = jnp.sum(state * (e - energy) ** 2)  # centred: no cancellation at large N
        # diagonal state: eigenvalues = populations, the battery is every dof
        # carrying H_B; charger dofs (if any) are summed out first
        keep = [i for i, n in enumerate(spec.names) if n in spec.battery_dofs]
        rest = tuple(i for i in range(len(spec.dims)) if i not in keep)
        pb = jnp.sum(state, axis=rest) if rest else state
        eb = _battery_energies(spec)
        sector = passive_energy_of_spectrum(pb, jnp.sort(eb.reshape(-1)))
        physical = sector if spec.battery_levels is None else passive_energy_of_spectrum(
            pb, spec.battery_levels, spec.battery_degeneracies)
        return _checked(SteadyFigures(energy, variance, energy - physical, energy - sector, flags, how),
                        jnp.min(eb), jnp.max(eb), "rates")
    from .metrics import ergotropy
    from .states import battery_hamiltonian

    keep = [i for i, n in enumerate(spec.names) if n in spec.battery_dofs]
    rest = [i for i in range(len(spec.dims)) if i not in keep]
    dims = spec.dims
    db = math.prod(dims[i] for i in keep)
    perm = keep + rest
    x = jnp.transpose(state.reshape(dims + dims), perm + [len(dims) + i for i in perm])
    rho_b = jnp.einsum("iaja->ij", x.reshape(db, -1, db, math.prod(dims) // db))
    hb = battery_hamiltonian(spec)
    energy = jnp.real(jnp.trace(hb @ rho_b))
    variance = jnp.real(jnp.trace(hb @ hb @ rho_b)) - energy**2
    sector = ergotropy(rho_b, hb)
    physical = sector if spec.battery_levels is None else ergotropy(
        rho_b, hb, levels=spec.battery_levels, degeneracies=spec.battery_degeneracies)
    spectrum = eigvalsh(hb)
    return _checked(SteadyFigures(energy, variance, physical, sector, flags, how), spectrum[0], spectrum[-1],
                    "lindblad")


def figure_problems(values: dict, low, high) -> list[str]:
    """What is outside its physical range among the figures ``values`` of a battery with ``H_B`` in
    ``[low, high]`` (concrete numbers; ``[]`` when all is well).

    ``energy`` in ``[low, high]``; ``variance`` in ``[0, (high - low)^2 / 4]``
    (Popoviciu); ``ergotropy`` / ``ergotropy_sector`` in ``[0, energy - low]``;
    ``charging_time``, given as ``(tau, t_first, t_last)``, in the grid's
    ``[t_first, t_last]``.  Every value must be finite.  Tolerance: ``1e-8 (high - low)`` on
    energies (``1e-8 (high - low)^2`` on the variance), the accuracy of the
    steady solves.
    """
    low, high = float(low), float(high)
    span = max(high - low, 1e-300)
    tol = 1e-8 * span
    problems = []
    energy = values.get("energy")
    ranges = {"energy": (low, high, tol), "variance": (0.0, span**2 / 4, 1e-8 * span**2)}
    if energy is not None and math.isfinite(float(energy)):
        for name in ("ergotropy", "ergotropy_sector"):
            ranges[name] = (0.0, max(float(energy) - low, 0.0), tol)
    for name, value in values.items():
        if name == "charging_time":
            value, lo, hi = value
            rng = (float(lo), float(hi), 1e-12 * max(abs(float(hi)), 1.0))
        else:
            rng = ranges.get(name)
        v = float(value)
        if not math.isfinite(v):
            problems.append(f"{name} = {v} is not finite")
        elif rng is not None and not (rng[0] - rng[2] <= v <= rng[1] + rng[2]):
            problems.append(f"{name} = {v:.10g} is outside its physical range [{rng[0]:.10g}, {rng[1]:.10g}]")
    return problems


def _checked(fig: SteadyFigures, low, high, method: str) -> SteadyFigures:
    """``fig`` after the physical-range check: raised on the host when concrete, else ``UNPHYSICAL`` in status."""
    values = {"energy": fig.energy, "variance": fig.variance, "ergotropy": fig.ergotropy,
              "ergotropy_sector": fig.ergotropy_sector}
    if all(is_concrete(v) for v in (*values.values(), low, high)):
        problems = figure_problems(values, low, high)
        if problems:
            raise SolverError(f"steady_figures (method {method!r}): " + "; ".join(problems) +
                              f" (the stationary state was the {fig.how})", UNPHYSICAL)
        return fig
    span = high - low
    tol = 1e-8 * span
    bad = ~((fig.energy >= low - tol) & (fig.energy <= high + tol) & (fig.variance >= -tol * span)
            & (fig.variance <= span**2 / 4 + tol * span) & (fig.ergotropy >= -tol) & (fig.ergotropy_sector >= -tol)
            & (fig.ergotropy <= fig.energy - low + tol) & (fig.ergotropy_sector <= fig.energy - low + tol))
    return eqx.tree_at(lambda f: f.status, fig, merge(fig.status, flag(bad, UNPHYSICAL)))


def _energy_range(spec: Spec) -> tuple[float, float]:
    """``(min, max)`` of the spectrum of ``H_B`` (dense, on the battery dofs)."""
    from .states import battery_hamiltonian

    w = np.linalg.eigvalsh(np.asarray(battery_hamiltonian(spec)))
    return float(w[0]), float(w[-1])


def _battery_energies(spec: Spec):
    sub = tuple((n, d) for n, d in spec.space if n in spec.battery_dofs)
    return rep.diagonal_tensor(sub, spec.battery)


def charging_time(traj: Trajectory, steady_energy, eps: float = 1e-3):
    """Seed 001, Eq. 17: the first ``t`` with ``(E_ss - E(t)) / E_ss < eps``.

    Arguments:
        traj: the charging trajectory (``E``, ``E'``, ``E''`` exact at the nodes).
        steady_energy: ``E_ss`` (``N e_N^SS omega0`` in the paper).
        eps: the allowed deficit, ``0 < eps < 1``.

    Returns:
        ``tau`` (refined between grid nodes on the quintic Hermite interpolant;
        differentiable by the implicit function theorem).  Raises
        :class:`~qbjax.status.SolverError` when the grid never reaches the
        criterion (inside your own ``jit``: an equinox runtime error;
        :func:`open_charging` returns the flag in ``status`` instead).
    """
    tau, flags = charging_time_status(traj, steady_energy, eps)
    return settle(tau, flags, "charging_time")


def charging_time_status(traj: Trajectory, steady_energy, eps: float = 1e-3):
    """``(tau, status)``: :func:`charging_time` with the failure flag (``NOT_REACHED``) returned, not raised."""
    if not (0.0 < eps < 1.0):
        raise ValueError(f"eps must be in (0, 1), got {eps!r}")
    return _charging_time(traj.ts, traj.energy, traj.d_energy, traj.d2_energy, steady_energy, eps)


@jax.jit
def _charging_time(ts, E, dE, d2E, e_ss, eps):
    target = (1.0 - eps) * e_ss
    reached = (E - target) / e_ss > 0.0  # deficit < eps
    k = jnp.argmax(reached)
    found = jnp.any(reached) & (k > 0)
    k = jnp.clip(k, 1, ts.shape[0] - 1)
    sg = jax.lax.stop_gradient
    nodes = lambda i: (E[i], dE[i], d2E[i])  # noqa: E731
    t0, t1 = sg(ts[k - 1]), sg(ts[k])
    f0, f1 = jax.tree.map(sg, nodes(k - 1)), jax.tree.map(sg, nodes(k))
    tgt = sg(target)

    def value(t, a=f0, b=f1):
        """The interpolant and its slope at ``t``."""
        return jax.jvp(lambda x: hermite5(x, t0, t1, a, b), (t,), (jnp.ones_like(t),))

    def newton(i, state):
        lo, hi, t = state
        f = value(t)[0] - tgt
        fp = value(t)[1]
        lo = jnp.where(f < 0, t, lo)
        hi = jnp.where(f < 0, hi, t)
        step = t - f / jnp.where(fp != 0, fp, 1.0)
        inside = (step > lo) & (step < hi) & (fp > 0)
        return lo, hi, jnp.where(inside, step, 0.5 * (lo + hi))

    _, _, tau = jax.lax.fori_loop(0, 60, newton, (t0, t1, 0.5 * (t0 + t1)))
    # implicit function theorem: E(tau; theta) = (1 - eps) E_ss(theta)
    full = value(tau, nodes(k - 1), nodes(k))
    tau = tau - (full[0] - target) / sg(full[1])
    return tau, flag(~found, NOT_REACHED)


class OpenCharging(eqx.Module):
    """Seed 001's figures of merit for one open battery.

    ``steady`` holds totals for all ``N`` batteries; ``steady_energy_density``
    is ``e_N^SS = E_ss / (N omega0)``.  For the individual protocol
    ``trajectory`` is that of *one* battery (the unit that was simulated;
    multiply energy and variance by ``N`` for the totals).
    """

    n: int = eqx.field(static=True)
    steady: SteadyFigures
    steady_energy_density: jax.Array
    charging_time: jax.Array
    trajectory: Trajectory
    status: jax.Array = eqx.field(default_factory=lambda: jnp.zeros((), jnp.int32))


def open_charging(model: AbstractBattery, *, eps: float = 1e-3, t_max=None, num_times: int = 81,
                  method: str = "auto", options=None, max_doublings: int = 12) -> OpenCharging:
    """Steady state, fluctuation, ergotropy and charging time (seed 001, Eq. 13-17).

    The individual protocol of :class:`~qbjax.models.HeatEngineBattery` is
    ``N`` independent copies of one battery: computed from ``N = 1``
    (energy and variance times ``N``, the ergotropy too, since the passive
    state of ``rho^{(x)N}`` is the product of passive states for qubits),
    charging time that of one battery.

    ``t_max`` (default: the model's) is doubled until the criterion is met
    when the parameters are concrete; with traced parameters give a
    ``t_max`` that contains the charging time.  ``num_times`` output nodes
    suffice because ``tau`` is refined on the quintic Hermite interpolant
    (exact ``E, E', E''`` at the nodes); rate equations default to a local
    total-variation tolerance ``rtol = 1e-8``, which gives ``tau`` to
    ``~5e-9`` relative at ``N >= 1000`` and ``3-6e-8`` at ``N <= 100``
    (measured against ``rtol = 1e-12``); pass ``options`` for more.
    """
    from .dynamics import ODEOptions

    if options is None:
        options = ODEOptions(rtol=1e-8, atol=1e-14)
    if not (0.0 < eps < 1.0):
        raise ValueError(f"eps must be in (0, 1), got {eps!r}")
    n = getattr(model, "n", 1)
    unit, copies = model.independent_units()
    fig = steady_figures(unit, method=method)
    traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(model))
    T = unit.default_t_max() if t_max is None else t_max
    for _ in range(max_doublings + 1):
        ts = jnp.linspace(0.0, jax.lax.stop_gradient(jnp.asarray(T, jnp.float64)), num_times)
        traj = charge(unit, ts, method=method, options=options)
        if traced or t_max is not None:
            break
        deficit = (fig.energy - traj.energy) / fig.energy
        if bool(jnp.any(deficit[1:] < eps)):
            break
        T = 2.0 * float(T)
    tau, tau_flags = charging_time_status(traj, fig.energy, eps)
    flags = merge(fig.status, traj.status, tau_flags)
    check(flags, "open_charging")
    if is_concrete(tau) and is_concrete(traj.energy):
        e = _battery_energies(unit.spec()) if not traj.method == "lindblad" else None
        low, high = (float(jnp.min(e)), float(jnp.max(e))) if e is not None else _energy_range(unit.spec())
        problems = figure_problems({"charging_time": (tau, traj.ts[0], traj.ts[-1])}, low, high)
        energies = np.asarray(traj.energy)
        if not np.all(np.isfinite(energies)):
            problems.append("the energy E(t) is not finite")
        elif energies.min() < low - 1e-8 * (high - low) or energies.max() > high + 1e-8 * (high - low):
            problems.append(f"the energy E(t) leaves the spectrum of H_B [{low:.10g}, {high:.10g}] "
                            f"(range {energies.min():.10g} .. {energies.max():.10g})")
        if problems:
            raise SolverError(f"open_charging (method {traj.method!r}): " + "; ".join(problems), UNPHYSICAL)
    steady = SteadyFigures(fig.energy * copies, fig.variance * copies, fig.ergotropy * copies,
                           fig.ergotropy_sector * copies, fig.status, fig.how)
    omega0 = getattr(model, "omega0", 1.0)
    return OpenCharging(n, steady, steady.energy / (n * omega0), tau, traj, flags)
