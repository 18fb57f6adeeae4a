"""Collisional charging (seed 003, Salvia et al.): what the physics and the paper promise.

Tolerances are float64: 1e-12 where the method is exact (collision map
against dense linear algebra, App. A exact generator, closed forms against
quadrature), looser only where an expansion or an integrator limits them,
and then stated.  Sizes are small; each jitted shape is compiled once.
"""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sl
from scipy.integrate import solve_ivp
from scipy.optimize import minimize_scalar

import qbjax  # noqa: F401  (float64)
from qbjax.charging import TruncationWarning
from qbjax.collisional import (
    R0,
    X0,
    CollisionalModel,
    LadderBattery,
    QubitUnits,
    bound_rhs,
    coherent_limit,
    collide,
    collisional_model,
    constant_schedule,
    damped_oscillator_bound,
    damped_oscillator_time,
    driving_limit,
    full_swap_schedule,
    full_swap_time,
    full_swap_time_asymptotic,
    full_swap_time_printed,
    greedy_schedule,
    incoherent_bound,
    lindblad_operators,
    master_collide,
    optimize_schedule,
    oscillator_advantage,
    oscillator_bound,
    spin_advantage,
    spin_battery,
    spin_bound,
    spin_bound_printed,
    spin_full_charge_time_bound,
    spin_full_charge_time_bound_printed,
    stored_energy,
    stored_energy_and_grad,
)
from qbjax.collisional._master import damping_kraus
from qbjax.dynamics.collisions import (
    collide_density,
    collide_density_autodiff,
    damp_density,
    damping_coefficients,
    energy_gain,
    nested_scan,
)
from qbjax.models import ParameterError

D = 9  # levels of the small batteries (spin j = 4)
KINDS = ("oscillator", "spin", "ladder")
RNG = np.random.default_rng(3)
THETAS = RNG.uniform(0.05, 0.7, 12)
UNITS = {True: QubitUnits(0.3, 0.8, 0.7), False: QubitUnits(0.1, 0.0)}  # coherent / incoherent


def padded(thetas, k=len(THETAS)):
    """Zero angles are identity collisions (lossless models): one compiled scan length for many runs."""
    return np.concatenate([thetas, np.zeros(k - len(thetas))])


def dense_collisions(battery, units, thetas, gamma=0.0):
    """Eq. 3 literally: U (rho_B x rho_Q) U^+, partial trace over the qubit; Eq. 21 by its Kraus sum."""
    d = battery.levels
    a = np.asarray(battery.ladder_operator())
    sigma = np.array([[0, 0], [1, 0]])  # |e><g|, basis (g, e)
    h = np.kron(a, sigma) + np.kron(a.T, sigma.T)
    rq = np.asarray(units.density_matrix())
    rho = np.zeros((d, d), complex)
    rho[0, 0] = 1
    kraus = damping_kraus(d, gamma) if gamma > 0 else None
    out = []
    for th in thetas:
        u = sl.expm(-1j * th * h)
        big = u @ np.kron(rho, rq) @ u.conj().T
        rho = np.einsum("iaja->ij", big.reshape(d, 2, d, 2))
        if kraus is not None:
            rho = sum(k @ rho @ k.conj().T for k in kraus)
        out.append(np.real(np.trace(np.diag(np.arange(d)) @ rho)))
    return np.array(out), rho


# ---------------------------------------------------------------- R0 and the headline ratios


def test_r0_and_the_advantages():
    assert abs(math.tan(X0) - 2 * X0) < 1e-12
    best = minimize_scalar(lambda x: -math.sin(x) ** 2 / x, bounds=(0.5, 1.5), method="bounded",
                           options={"xatol": 1e-12})
    assert abs(-best.fun - R0) < 1e-12
    assert round(R0, 3) == 0.725 and round(X0 / (math.pi / 2), 3) == 0.742  # Eq. 12
    assert round(oscillator_advantage(), 3) == 1.905  # "1.90", Sec. III C
    assert round(spin_advantage(), 3) == 1.380  # "1.38", Sec. IV C
    assert round(4 / (math.pi**2 * R0**2), 2) == 0.77  # full swap / bound, after Eq. 18
    assert round(2 / (math.pi * R0), 2) == 0.88  # after Eq. 30


# ---------------------------------------------------------------- the collision map


@pytest.mark.parametrize("kind", KINDS)
def test_collisions_match_dense_unitary_and_partial_trace(kind):
    gamma = 0.03 if kind == "oscillator" else 0.0
    model = CollisionalModel(LadderBattery(kind, D), UNITS[True], gamma)
    ref_e, ref_rho = dense_collisions(model.battery, model.units, THETAS, gamma)
    traj = collide(model, THETAS, warn=False)
    assert np.max(np.abs(np.asarray(traj.energy) - ref_e)) < 1e-12
    assert np.max(np.abs(np.asarray(traj.density_matrix()) - ref_rho)) < 1e-13


@pytest.mark.parametrize("kind", KINDS)
def test_exact_master_equation_path_agrees(kind):
    """App. A, Eq. A1 + A10-A11: rho + L rho is the channel exactly (an independent dense path)."""
    gamma = 0.03 if kind == "oscillator" else 0.0
    model = CollisionalModel(LadderBattery(kind, D), QubitUnits(0.3, 0.8, 0.7), gamma)
    energies, rho = master_collide(model, THETAS)
    traj = collide(model, THETAS, warn=False)
    assert np.max(np.abs(np.asarray(energies) - np.asarray(traj.energy))) < 1e-12
    assert np.max(np.abs(np.asarray(rho) - np.asarray(traj.density_matrix()))) < 1e-13


def test_eq_a9_lindblad_operators_are_the_unitary_blocks():
    sigma = np.array([[0, 0], [1, 0]])
    for kind in KINDS:
        b = LadderBattery(kind, D)
        a = np.asarray(b.ladder_operator())
        u = sl.expm(-0.37j * (np.kron(a, sigma) + np.kron(a.T, sigma.T))).reshape(D, 2, D, 2)
        ugg, uge, ueg, uee = u[:, 0, :, 0], u[:, 0, :, 1], u[:, 1, :, 0], u[:, 1, :, 1]
        lg, le, lm, lp = (np.asarray(x) for x in lindblad_operators(b, 0.37))
        for x, y in ((lg, ugg), (le, uee), (lm, 1j * ueg), (lp, 1j * uge)):
            assert np.max(np.abs(x - y)) < 1e-13, kind


def test_populations_path_is_the_diagonal_of_the_density_path():
    model = CollisionalModel(LadderBattery("oscillator", D), UNITS[False], 0.03)
    pops = collide(model, THETAS, warn=False)
    dens = collide(model, THETAS, mode="density", warn=False)
    assert pops.mode == "populations" and dens.mode == "density"
    assert np.asarray(pops.state).min() >= 0 and abs(np.sum(pops.state) - 1) < 1e-14
    assert np.max(np.abs(np.asarray(pops.state) - np.diag(np.asarray(dens.state)))) < 1e-15
    assert np.max(np.abs(np.asarray(dens.state) - np.diag(np.diag(np.asarray(dens.state))))) == 0.0


def test_energy_gain_needs_only_two_diagonals():
    model = collisional_model("spin", D, q=0.4, coherence=0.9)
    traj = collide(model, padded(THETAS[:5], 12))
    r = traj.state
    g = jnp.asarray(model.battery.coupling)
    after = collide(model, padded(np.append(THETAS[:5], 0.61), 12)).energy[-1]
    gain = energy_gain(0.61, jnp.diagonal(r), jnp.diagonal(r, 1), g, model.units.q, model.units.drive)
    assert abs(float(traj.energy[-1] + gain - after)) < 1e-13


def test_phase_only_rotates_the_state():
    a = collide(collisional_model("oscillator", D, 0.5, 1.0, 0.0), THETAS, warn=False)
    b = collide(collisional_model("oscillator", D, 0.5, 1.0, 1.3), THETAS, warn=False)
    assert np.max(np.abs(np.asarray(a.energy) - np.asarray(b.energy))) == 0.0
    ra, rb = np.asarray(a.density_matrix()), np.asarray(b.density_matrix())
    n = np.arange(D)
    rot = np.exp(1j * 1.3 * (n[:, None] - n[None, :]))
    assert np.max(np.abs(ra * rot - rb)) < 1e-14


@pytest.mark.parametrize("kind", KINDS)
def test_trace_hermiticity_positivity(kind):
    gamma = 0.05 if kind == "oscillator" else 0.0
    model = collisional_model(kind, D, q=0.35, coherence=1.0, loss=gamma)
    r = np.asarray(collide(model, THETAS, warn=False).state)
    assert np.max(np.abs(r - r.T)) < 1e-15  # real symmetric in the rotating frame (to rounding)
    assert abs(np.trace(r) - 1) < 1e-13
    assert np.linalg.eigvalsh(r).min() > -1e-14


def test_damping_channel_is_eq_21():
    d, gamma = 10, 0.13
    m = RNG.normal(size=(d, d))
    rho = m @ m.T
    rho /= np.trace(rho)
    ref = sum(k @ rho @ k.T for k in damping_kraus(d, gamma))
    coefficients = jax.jit(damping_coefficients, static_argnums=(1, 2))
    damp = jax.jit(damp_density)
    out = np.asarray(damp(jnp.asarray(rho), coefficients(gamma, d, d - 1)))
    assert np.max(np.abs(out - ref)) < 1e-15
    n = np.arange(d)
    assert abs(n @ np.diag(out) - (1 - gamma) * (n @ np.diag(rho))) < 1e-14  # <n> -> (1 - gamma) <n>
    # the truncated binomial sum drops less than 1e-18 of probability (differences: rounding only)
    model = collisional_model("oscillator", d, loss=1e-3)
    assert model.damping_terms < d - 1
    cut = np.asarray(damp(jnp.asarray(rho), coefficients(1e-3, d, model.damping_terms)))
    full = np.asarray(damp(jnp.asarray(rho), coefficients(1e-3, d, d - 1)))
    assert np.max(np.abs(cut - full)) < 1e-16


# ---------------------------------------------------------------- protocols


def test_full_swap_is_a_pure_staircase_eq_17():
    battery = LadderBattery("oscillator", D)
    model = CollisionalModel(battery, QubitUnits(0.0, 0.0))
    thetas = full_swap_schedule(battery, collisions=D - 1)
    assert np.allclose(thetas, np.pi / (2 * np.sqrt(np.arange(1, D))), rtol=0, atol=1e-15)
    with pytest.warns(TruncationWarning, match="top kept Fock level"):  # the staircase reaches the cutoff
        traj = collide(model, padded(thetas), record_populations=True)
    assert np.max(np.abs(np.asarray(traj.energy[: D - 1]) - np.arange(1, D))) < 1e-12
    assert abs(float(traj.ergotropy()) - (D - 1)) < 1e-12
    assert np.max(np.abs(np.asarray(traj.populations[: D - 1]) - np.eye(D)[1:])) < 1e-13
    # the time of K swaps: exact sum vs Eq. 17 (corrected constant (pi/2) zeta(1/2) = -2.2939)
    k = np.array([10, 100, 1000, 10000])
    exact = np.array([np.pi / 2 * np.sum(1 / np.sqrt(np.arange(1, n + 1))) for n in k])
    assert np.all(np.abs(full_swap_time_asymptotic(k) - exact) < 0.1 * k**-1.5)  # next term -pi/48 K^-3/2
    off = full_swap_time_printed(k) - exact  # as printed: off by -1.46 + (pi/2) 1.46 = 0.834 for K -> oo
    assert np.all(off > 0.5) and abs(off[-1] - (np.pi / 2 - 1) * 1.4603545) < 0.01
    assert abs(full_swap_time(LadderBattery("oscillator", 1001), 1000) - exact[2]) < 1e-12


def test_full_swap_spin_eq_30():
    j = 4
    battery = spin_battery(j)
    model = CollisionalModel(battery, QubitUnits(0.0, 0.0))
    thetas = full_swap_schedule(battery, collisions=2 * j)
    fs = np.array([np.sqrt(j * (j + 1) - m * (m + 1)) for m in np.arange(-j, j)])  # f_+(j, m), Eq. 23
    assert np.allclose(thetas, np.pi / (2 * fs), rtol=0, atol=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)  # a spin's top level is physical: no warning
        traj = collide(model, padded(thetas), record_populations=True)
    assert abs(float(traj.energy[-1]) - 2 * j) < 1e-12 and float(traj.top_population) > 1 - 1e-12
    # Eq. 30: tau* -> pi^2/2 as j grows (slowly, O(j^-1/2))
    gaps = [abs(full_swap_time(spin_battery(jj), int(2 * jj)) - np.pi**2 / 2) for jj in (50, 5000, 500000)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.01


def test_greedy_definition():
    model = collisional_model("oscillator", D, q=0.0, coherence=0.0)
    thetas = greedy_schedule(model, 5.0)
    assert abs(thetas[0] - X0) < 1e-10  # first step: argmax sin^2(x)/x (Eq. 12 at n = 0)
    assert abs(np.sum(thetas) - 5.0) < 1e-12
    traj = collide(model, padded(thetas), record_populations=True)
    e, t = np.asarray(traj.energy), np.asarray(traj.times)
    # each angle is a local maximum of the cumulative power E_k(theta)/(T_{k-1} + theta)
    gain = jax.jit(energy_gain)
    for k in (2, len(thetas) - 2):
        p = traj.populations[k - 1]

        def power(th, p=p, k=k):
            return (e[k - 1] + float(gain(th, p, jnp.zeros(D - 1), model.battery.coupling, 0.0, 0.0))) / (t[k - 1] + th)

        for h in (1e-4, -1e-4):
            assert power(thetas[k]) > power(thetas[k] + h)
    fs = full_swap_schedule(model.battery, time=5.0)
    assert e[-1] > len(fs) + 1  # greedy beats full swap (Sec. III B) ...
    assert e[-1] < float(oscillator_bound(5.0))  # ... but not the bound


@pytest.mark.parametrize("coherent", [True, False])
def test_optimized_schedules_beat_their_starts(coherent):
    model = CollisionalModel(LadderBattery("oscillator", D), UNITS[coherent], 0.03)
    total = float(np.sum(THETAS))
    res = optimize_schedule(model, total, init=THETAS, steps=40, learning_rate=0.05, verbose=False)
    assert abs(float(res.initial_energy) - float(stored_energy(model, THETAS))) < 1e-13
    assert float(res.energy) > float(res.initial_energy) + 0.1
    assert abs(float(jnp.sum(res.thetas)) - total) < 1e-12 and float(jnp.min(res.thetas)) >= 0
    assert abs(float(stored_energy(model, res.thetas)) - float(res.energy)) < 1e-12
    if not coherent:
        assert float(res.energy) < float(damped_oscillator_bound(total, 0.03))


# ---------------------------------------------------------------- bounds, derived vs printed


def _integrate(f, t_end, y0=0.0):
    ts = np.linspace(0, t_end, 9)
    sol = solve_ivp(lambda t, y: np.asarray(f(y)), (0, t_end), [y0], t_eval=ts, rtol=1e-12, atol=1e-12,
                    method="DOP853")
    return ts, sol.y[0]


def test_oscillator_bound_eq_15_is_eq_14_integrated():
    ts, e = _integrate(bound_rhs("oscillator"), 30.0)
    assert np.max(np.abs(e - np.asarray(oscillator_bound(ts)))) < 1e-9


@pytest.mark.parametrize("gamma", [1e-3, 2e-2])
def test_damped_bound_closed_form_is_c4_integrated(gamma):
    ts, e = _integrate(bound_rhs("oscillator", gamma=gamma), 30.0)
    assert np.max(np.abs(e - damped_oscillator_bound(ts, gamma))) < 1e-8
    assert np.max(np.abs(damped_oscillator_time(e[1:], gamma) - ts[1:])) < 1e-9
    assert np.all(damped_oscillator_bound(ts[1:], gamma) < np.asarray(oscillator_bound(ts[1:])))


@pytest.mark.parametrize("j", [4, 49.5])
def test_spin_bound_corrected_eq_28_is_eq_27_integrated(j):
    t_full = spin_full_charge_time_bound(j)
    ts, e = _integrate(bound_rhs("spin", j=j), 0.98 * t_full)
    assert np.max(np.abs(e - np.asarray(spin_bound(ts, j)))) < 1e-8
    assert abs(float(spin_bound(t_full, j)) - 2 * j) < 1e-9
    # printed Eq. 28: its left side is already positive at tau = 0 ...
    lhs0 = math.atan((1 - 2 * j) / (2 * math.sqrt(2 * j))) - math.atan((1 - 2 * j) / 2)
    assert lhs0 > 0.15
    # ... so the "bound" starts below zero and stays below the true one (Eq. 29 likewise)
    assert float(spin_bound_printed(0.0, j)) < -0.5
    assert np.all(np.asarray(spin_bound_printed(ts, j)) < np.asarray(spin_bound(ts, j)))
    assert spin_full_charge_time_bound_printed(j) > t_full


def test_greedy_beats_the_printed_spin_bound_but_not_the_derived_one():
    j = 4
    model = CollisionalModel(spin_battery(j), QubitUnits(0.0, 0.0))
    traj = collide(model, padded(greedy_schedule(model, spin_full_charge_time_bound(j))), record_populations=True)
    e, t = np.asarray(traj.energy), np.asarray(traj.times)
    assert np.max(e - np.asarray(spin_bound_printed(t, j))) > 1.0  # the printed Eq. 28 is violated
    assert np.max(e - np.asarray(spin_bound(t, j))) < -0.05


def test_incoherent_protocols_respect_their_bounds():
    for kind in KINDS:
        battery = LadderBattery(kind, D)
        model = CollisionalModel(battery, QubitUnits(0.1, 0.0))
        traj = collide(model, THETAS, warn=False)
        bound = np.asarray(incoherent_bound(battery, traj.times))
        assert np.all(np.asarray(traj.energy) <= bound + 1e-12), kind


# ---------------------------------------------------------------- coherent limits


def test_driving_limit_closed_forms_eq_19_20_31_32():
    ts = np.array([0.5, 2.0, 5.0])
    assert np.max(np.abs(np.asarray(driving_limit(LadderBattery("oscillator", 120), ts)) - ts**2 / 4)) < 1e-11
    j = 7.5
    assert np.max(np.abs(np.asarray(driving_limit(spin_battery(j), ts)) - j * (1 - np.cos(ts)))) < 1e-11
    # Eq. 32 with the i: exp(-i tau J_x) |j, -j> carries the energy; without it the operator is not unitary
    g = np.asarray(spin_battery(j).coupling)
    jx = 0.5 * (np.diag(g, 1) + np.diag(g, -1))
    u = sl.expm(-1j * 2.0 * jx)
    assert np.max(np.abs(u.conj().T @ u - np.eye(16))) < 1e-12
    v = sl.expm(2.0 * jx)
    assert np.max(np.abs(v.T @ v - np.eye(16))) > 1.0


def _richardson(model, t_end, h, k):
    """E(t_end) at constant angles h, h/2, h/4 (padded to k collisions), extrapolated to theta -> 0."""
    e = [float(collide(model, padded(np.full(int(round(t_end / th)), th), k), warn=False).energy[-1])
         for th in (h, h / 2, h / 4)]
    r1 = [2 * e[1] - e[0], 2 * e[2] - e[1]]  # errors O(theta) + O(theta^2)
    return e, (4 * r1[1] - r1[0]) / 3


def test_small_theta_reaches_the_coherent_limit_and_the_advantages():
    j = 19.5  # 40 levels, like the oscillator below: one compiled scan for both
    h_spin = 0.02 / math.sqrt(j)
    k = int(round(4 * np.pi / h_spin))
    t_end = 6.0
    osc = collisional_model("oscillator", 40, q=0.5, coherence=1.0)
    e, e0 = _richardson(osc, t_end, 0.04, k)
    assert abs(e[-1] - t_end**2 / 4) > 1e-2  # finite theta is not the limit ...
    assert abs(e0 / (t_end**2 / 4) - 1) < 1e-4  # ... the theta -> 0 limit is E = (Omega tau)^2/4 (Eq. 20)
    # over the bound's asymptote R0^2 tau^2/4 (Eq. 15): the 90% advantage
    assert round((e0 / t_end**2) / (R0**2 / 4), 3) == 1.905
    spin = CollisionalModel(spin_battery(j), QubitUnits(0.5, 1.0))
    e, e0 = _richardson(spin, np.pi, h_spin, k)
    assert abs(e[-1] - 2 * j) > 1e-2 and abs(e0 - 2 * j) < 1e-5 * 2 * j  # full charge at Omega tau = pi (Eq. 31-32)
    assert round((np.pi / R0) / np.pi, 3) == 1.380 and spin_full_charge_time_bound(j) < np.pi / R0


def test_expansion_a12_a13_is_second_order():
    model = collisional_model("oscillator", D, q=0.5, coherence=1.0)
    errors, lim_errors = [], []
    exact_limit = float(driving_limit(model.battery, [1.5])[0])
    for th in (0.05, 0.025):
        thetas = padded(np.full(int(round(1.5 / th)), th), 60)
        e_exp, _ = master_collide(model, thetas, expansion=True)
        e = float(collide(model, thetas, warn=False).energy[-1])
        errors.append(abs(float(e_exp[-1]) - e))
        lim_errors.append(abs(e - exact_limit))
    assert 3.6 < errors[0] / errors[1] < 4.4  # O(theta^3) per collision, O(theta^2) after Omega tau / theta
    assert 1.7 < lim_errors[0] / lim_errors[1] < 2.3  # the continuous limit: O(theta)


def test_coherent_limit_helper():
    assert abs(float(coherent_limit("oscillator", 6.0)) - 9.0) < 1e-14
    assert abs(float(coherent_limit("spin", np.pi, j=3)) - 6.0) < 1e-14


# ---------------------------------------------------------------- gradients, vmap


@pytest.mark.parametrize("coherent", [True, False])
def test_gradient_of_stored_energy_matches_finite_differences(coherent):
    model = CollisionalModel(LadderBattery("oscillator", D), UNITS[coherent], 0.03)
    thetas = jnp.asarray(THETAS)
    value, grad = stored_energy_and_grad(model, thetas)
    assert abs(float(value) - float(stored_energy(model, thetas))) < 1e-14
    h = 1e-3
    fd = []
    for k in range(len(THETAS)):
        e = np.zeros(len(THETAS))
        e[k] = h
        vals = [float(stored_energy(model, thetas + c * e)) for c in (-2, -1, 1, 2)]
        fd.append((vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h))  # O(h^4) ~ 1e-12
    assert np.max(np.abs(np.asarray(grad) - np.array(fd))) < 1e-9


def test_hand_written_reverse_mode_of_a_collision_is_autodiffs():
    """``collide_density``'s custom VJP (adjoint map + matvecs) against JAX's own rule, for every input."""
    r = RNG.random((D, D))
    r, lam = jnp.asarray(r + r.T), jnp.asarray(RNG.random((D, D)))
    args = (r, jnp.asarray(RNG.random(D - 1) + 0.5), 0.37, 0.3, 0.41)

    @jax.jit
    def both(args, lam):
        return jax.vjp(collide_density, *args)[1](lam), jax.vjp(collide_density_autodiff, *args)[1](lam)

    mine, ref = both(args, lam)
    for a, b in zip(mine, ref):
        assert np.max(np.abs(np.asarray(a) - np.asarray(b))) < 1e-13 * max(1.0, float(np.max(np.abs(b))))


def test_nested_checkpointed_scan_is_the_flat_scan():
    def body(c, x):
        c = jnp.sin(c * x) + c * jnp.cos(x)
        return c, c.sum()

    def run(xs, chunk):
        c, ys = nested_scan(body, jnp.linspace(0.1, 0.9, 4), xs, chunk)
        return c.sum() + ys.sum()

    xs = jnp.asarray(np.tile(THETAS, 2)[:23])
    flat = jax.jit(jax.value_and_grad(lambda x: run(x, None)))(xs)
    nested = jax.jit(jax.value_and_grad(lambda x: run(x, 5)))(xs)  # 3 leftover steps + 4 chunks of 5
    assert abs(float(flat[0] - nested[0])) < 1e-13
    assert np.max(np.abs(np.asarray(flat[1] - nested[1]))) < 1e-13


def test_vmap_over_units_and_schedules():
    def energy(q, thetas):
        return stored_energy(CollisionalModel(LadderBattery("ladder", D), QubitUnits(q, 1.0)), thetas, "density")

    qs = jnp.array([0.1, 0.5, 0.9])
    scheds = jnp.stack([jnp.asarray(THETAS), jnp.asarray(THETAS[::-1]), jnp.asarray(THETAS) ** 2])
    batched = jax.vmap(energy)(qs, scheds)
    looped = [float(energy(q, th)) for q, th in zip(qs, scheds)]
    assert np.max(np.abs(np.asarray(batched) - looped)) < 1e-14


# ---------------------------------------------------------------- ergotropy, truncation, bad input


def test_ergotropy():
    model = collisional_model("oscillator", D, q=0.3, coherence=0.6, phase=0.4)
    traj = collide(model, THETAS, warn=False)
    rho = np.asarray(traj.density_matrix())
    p = np.sort(np.linalg.eigvalsh(rho))[::-1]
    assert abs(float(traj.ergotropy()) - (np.real(np.trace(np.diag(np.arange(D)) @ rho)) - p @ np.arange(D))) < 1e-13
    inc = collide(collisional_model("oscillator", D, q=0.0, coherence=0.0),
                  padded([np.pi / 2, np.pi / (2 * np.sqrt(2)), 0.3]), record_populations=True)
    p = np.asarray(inc.state)
    assert abs(float(inc.ergotropy()) - (np.arange(D) @ p - np.arange(D) @ np.sort(p)[::-1])) < 1e-14
    assert 0 < float(inc.ergotropy()) < float(inc.energy[-1])


def test_no_truncation_warning_below_the_tolerance():
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        traj = collide(collisional_model("oscillator", D, 0.5, 1.0), np.full(12, 0.05))
    assert 0 < float(traj.top_population) < 1e-6


@pytest.mark.parametrize("make,needle", [
    (lambda: QubitUnits(q=1.5), r"q must be in \[0.0, 1.0\]"),
    (lambda: QubitUnits(q=-0.1), r"q must be in \[0.0, 1.0\]"),
    (lambda: QubitUnits(coherence=1.2), r"coherence must be in \[0.0, 1.0\]"),
    (lambda: QubitUnits(phase=float("nan")), "phase must be finite"),
    (lambda: LadderBattery("oscillator", 1), "levels must be an integer >= 2"),
    (lambda: LadderBattery("oscillator", -3), "levels must be an integer >= 2"),
    (lambda: LadderBattery("rotor", 5), "battery must be one of"),
    (lambda: spin_battery(1.25), "j must be a positive integer or half-integer"),
    (lambda: collisional_model(loss=1.0), "loss must be in \\[0, 1\\)"),
    (lambda: collisional_model(loss=-0.1), "loss must be >= 0"),
    (lambda: collisional_model("spin", 5, loss=0.1), "loss must be 0 for the spin battery"),
    (lambda: collide(collisional_model("ladder", 5), [0.1, -0.2]), "thetas must be >= 0"),
    (lambda: collide(collisional_model("ladder", 5), [0.1, float("inf")]), "thetas must be finite"),
    (lambda: collide(collisional_model("ladder", 5), np.ones((2, 2))), "1-d array"),
    (lambda: collide(collisional_model("ladder", 5, 0.5, 1.0), [0.1], mode="populations"), "needs incoherent"),
    (lambda: constant_schedule(0.0, 1.0), "theta must be > 0"),
    (lambda: constant_schedule(0.1, -1.0), "time must be > 0"),
    (lambda: full_swap_schedule(LadderBattery("oscillator", 5), collisions=5), "collisions must be <= 4"),
    (lambda: optimize_schedule(collisional_model("ladder", 5, 0.5, 1.0), 1.0), "collisions must be given"),
])
def test_bad_input_names_the_parameter(make, needle):
    with pytest.raises(ParameterError, match=needle):
        make()
