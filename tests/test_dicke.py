"""Dicke battery (seed 000, Sec. VI, Fig. 3)."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
import qutip
from helpers import qutip_dicke

import qbjax as qb
from qbjax import representation as rep
from qbjax.dynamics import hamilton_flow


def qutip_dicke_energy(n, g, w, cutoff, ts):
    ref = qutip_dicke(n, g, w, cutoff)
    res = qutip.sesolve(ref.H, ref.psi0, np.asarray(ts), e_ops=[ref.HB], options={"atol": 1e-12, "rtol": 1e-12})
    return res.expect[0]


@pytest.mark.parametrize("n,g", [(1, 0.5), (4, 0.3), (5, 0.6)])
def test_against_qutip(n, g):
    m = qb.DickeBattery(n, g, 1.0)
    ts = qb.time_grid(m, num_times=81)
    tr = qb.charge(m, ts)
    np.testing.assert_allclose(tr.energy, qutip_dicke_energy(n, g, 1.0, m.cutoff, ts), atol=1e-8 * n)


def test_spectral_and_ode_agree():
    m = qb.DickeBattery(5, 0.5, 1.0)
    ts = qb.time_grid(m, num_times=101)
    a = qb.charge(m, ts, method="spectral")
    b = qb.charge(m, ts, method="ode")
    np.testing.assert_allclose(a.energy, b.energy, atol=1e-8 * 5)
    np.testing.assert_allclose(a.d_energy, b.d_energy, atol=1e-6)
    np.testing.assert_allclose(a.variance, b.variance, atol=1e-7)


def test_cutoff_convergence_and_warning():
    n, g = 4, 0.5
    ts = qb.time_grid(qb.DickeBattery(n, g, 1.0), num_times=101)
    ref = qb.charge(qb.DickeBattery(n, g, 1.0, cutoff=120), ts).energy
    auto = qb.DickeBattery(n, g, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", qb.TruncationWarning)
        tr = qb.charge(auto, ts)
    np.testing.assert_allclose(tr.energy, ref, atol=1e-9)
    assert float(tr.top_population.max()) < 1e-10
    errors = []
    for cutoff in (8, 12, 20, 30):
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            energy = qb.charge(qb.DickeBattery(n, g, 1.0, cutoff=cutoff), ts).energy
            errors.append(float(jnp.max(jnp.abs(energy - ref))))
    assert errors[-1] < errors[0] and errors[-1] < 1e-2
    with pytest.warns(qb.TruncationWarning, match="highest kept Fock level"):
        qb.charge(qb.DickeBattery(n, g, 1.0, cutoff=8), ts)


def test_cutoff_below_initial_state_rejected():
    with pytest.raises(ValueError, match="cutoff must be > n"):
        qb.DickeBattery(10, 0.5, 1.0, cutoff=10)


def test_classical_energy_conservation_and_printed_eq24():
    n, g, w = 4, 0.5, 1.0
    m = qb.DickeBattery(n, g, w)
    spec = m.spec()
    h = rep.classical_hamiltonian(spec.space, spec.charger + spec.battery + spec.coupling)
    ts = qb.time_grid(m, num_times=101)
    xs = hamilton_flow(h, rep.classical_kinds(spec.space), rep.classical_state(spec), ts)
    energies = np.array([h(x) for x in xs])
    np.testing.assert_allclose(energies, energies[0], rtol=1e-9)
    # Our classical H matches Eq. 23 term by term.
    q, p, s = xs[7][0], xs[7][1], xs[7][2:]
    theta, phi = np.arccos(s[2] / (n / 2)), np.arctan2(s[1], s[0])
    eq23 = (w / 2 * (p**2 + q**2) + n * w * (np.cos(theta) + 1) / 2
            + g * np.sqrt(2) * n * q * np.sin(theta) * np.cos(phi))
    np.testing.assert_allclose(h(xs[7]), eq23, rtol=1e-9)  # |S| drifts ~1e-11 under the integrator

    # Eq. 24 as printed (dp/dt carries a spurious q factor) does not conserve Eq. 23's energy.
    def printed(x):
        q, p, c, ph = x
        s = np.sqrt(max(1 - c * c, 1e-300))
        return np.array([w * p, -w * q - np.sqrt(2) * n * g * q * s * np.cos(ph),
                         2 * np.sqrt(2) * g * q * s * np.sin(ph), w - 2 * np.sqrt(2) * g * q * np.cos(ph) * c / s])

    def energy(x):
        q, p, c, ph = x
        return w / 2 * (p * p + q * q) + n * w * (c + 1) / 2 + g * np.sqrt(2) * n * q * np.sqrt(1 - c * c) * np.cos(ph)

    x = np.array([np.sqrt(n), np.sqrt(n), -0.9, 0.3])
    dE = np.dot(np.array([_num_grad(energy, x, k) for k in range(4)])[[1, 0, 3, 2]] * np.array([1, 1, 1, 1]),
                printed(x)[[1, 0, 3, 2]])
    # the exact flow has dE/dt = 0 for any point; the printed one does not
    assert abs(dE) > 1e-3


def _num_grad(f, x, k, h=1e-6):
    e = np.zeros_like(x)
    e[k] = h
    return (f(x + e) - f(x - e)) / (2 * h)


def test_classical_gamma_scaling_and_ratio_window():
    from qbjax.analysis import advantage

    adv = advantage(qb.DickeBattery(4, 0.5, 1.0))
    # Fig. 3(a-c) at N = 4, g = 0.5: both close to sqrt(4) = 2, R slightly below 1
    assert 1.8 < adv["quantum"]["gamma"] < 2.2
    assert 1.8 < adv["classical"]["gamma"] < 2.2
    assert 0.95 < adv["ratio"] < 1.0


@pytest.mark.parametrize("n", [4, 3])
def test_chebyshev_matches_spectral_to_rounding(n):
    """Chebyshev on the compact parity sector (even sector for N = 4, odd for N = 3) against the dense block."""
    from qbjax.representation import closed

    m = qb.DickeBattery(n, 0.5, 1.0, cutoff=50)
    layout = closed.sector_layout(m.spec())
    assert layout is not None and layout.shape == (2, 25, (n + 2) // 2)
    ts = qb.time_grid(m, num_times=201)
    a = qb.charge(m, ts, method="spectral")
    b = qb.charge(m, ts, method="chebyshev")
    assert b.method == "chebyshev"
    np.testing.assert_allclose(b.energy, a.energy, atol=1e-12)
    np.testing.assert_allclose(b.d_energy, a.d_energy, atol=1e-11)
    np.testing.assert_allclose(b.d2_energy, a.d2_energy, atol=1e-9)
    np.testing.assert_allclose(b.variance, a.variance, atol=1e-11)
    np.testing.assert_allclose(b.top_population, a.top_population, rtol=1e-6, atol=1e-14)
    if n == 3:
        return
    # a non-uniform grid falls back to adaptive steps
    with pytest.warns(UserWarning, match="using adaptive steps"):
        c = qb.charge(m, ts**1.01 / ts[-1] ** 0.01, method="chebyshev")
    assert c.method == "ode"


def test_working_cutoff_window():
    """A generous cutoff: Chebyshev runs in the model's working Fock window, checked by a leakage bound,
    and gives the full-cutoff result; a window too small for the dynamics falls back to the full cutoff."""
    import qbjax.expansions as ex
    from qbjax.model import Spec, term
    from qbjax.operators import Boson, Spin
    from qbjax.representation import closed

    m = qb.DickeBattery(4, 0.05, 1.0, cutoff=60)
    assert m.working_cutoffs() == (("a", 16 * -(-qb.models.default_cutoff(4, 0.05) // 16)),)
    assert qb.DickeBattery(4, 0.05, 1.0).working_cutoffs() == ()  # the default cutoff is the working one
    spec, ts = m.spec(), qb.time_grid(m, num_times=201)
    full = ex.expansion(spec, ts, "chebyshev", ())
    seen = []
    run = ex.chebyshev_run
    try:
        ex.chebyshev_run = lambda s, *a, **k: seen.append(s.dims) or run(s, *a, **k)
        win = qb.charge(m, ts, method="chebyshev")
    finally:
        ex.chebyshev_run = run
    assert seen == [(m.working_cutoffs()[0][1], 5)]  # one run, in the window
    np.testing.assert_allclose(win.energy, full.energy, atol=1e-11)
    np.testing.assert_allclose(win.d_energy, full.d_energy, atol=1e-10)
    np.testing.assert_allclose(win.variance, full.variance, atol=1e-10)
    assert float(win.top_population[0]) < 1e-20  # the leakage bound, squared

    # a window of 7 levels (3 above the initial Fock state): the bound exceeds the tolerance, the
    # full cutoff runs; the bound is an upper bound of the actual difference
    assert ex.windowed(spec, ts, (("a", 7),)) is None
    spec_w, axis, G = closed.fock_window(spec, (("a", 7),))
    traj, _, top = ex.chebyshev_run(spec_w, ts, ex.chebyshev_plan(spec_w, ts), series=True)
    leak = ex.leakage(G, ts, np.asarray(top)[:, 0]) / ex.WINDOW_SAFETY
    norm_b = closed.operator_norm(spec.space, spec.battery)
    err = np.abs(np.asarray(traj.energy) - np.asarray(full.energy))
    assert np.all(err <= 2 * norm_b * leak + norm_b * leak**2 + 1e-12)
    assert err.max() > 1e-9  # a case where the window matters

    # a product through the window's top level (a a^+) has no exact window
    space = (("a", Boson(40)), ("b", Spin(1)))
    spec = Spec(space=space, charger=(term(1.0, "a.a", "a.adag"),), battery=(term(1.0, "b.jz"),),
                coupling=(term(0.1, "a.a", "b.jp"), term(0.1, "a.adag", "b.jm")), battery_dofs=("b",),
                initial=(("a", 2), ("b", -1)), classical_initial={})
    assert closed.fock_window(spec, (("a", 10),)) is None
