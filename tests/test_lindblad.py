"""Lindblad propagator: invariants and QuTiP."""

import jax.numpy as jnp
import numpy as np
import qutip
from helpers import qutip_dicke

import qbjax as qb
from qbjax.dynamics import mesolve


def damped_dicke_spec(n=2, g=0.4, kappa=0.3, gamma=0.1, cutoff=18):
    m = qb.DickeBattery(n, g, 1.0, cutoff=cutoff)
    spec = m.spec()
    import equinox as eqx

    diss = (qb.Dissipator(kappa, qb.term(1.0, "a.a")), qb.Dissipator(gamma, qb.term(1.0, "b.jm")))
    return eqx.tree_at(lambda s: s.dissipators, spec, diss), m


def test_trace_hermiticity_positivity():
    spec, m = damped_dicke_spec()
    from qbjax import representation as rep

    b = rep.basis(spec)
    H = rep.dense(spec.space, spec.charger + spec.battery + spec.coupling, b)
    jumps = [(d.rate, rep.dense(spec.space, d.operator, b)) for d in spec.dissipators]
    psi0 = rep.initial_vector(spec, b)
    ts = jnp.linspace(0, 6.0, 31)
    _, rhos = mesolve(H, jumps, jnp.outer(psi0, psi0.conj()), ts, save_states=True)
    tr = jnp.trace(rhos, axis1=1, axis2=2)
    np.testing.assert_allclose(tr, 1.0, atol=1e-9)
    np.testing.assert_allclose(rhos, jnp.conj(jnp.swapaxes(rhos, 1, 2)), atol=1e-12)
    assert float(jnp.min(jnp.linalg.eigvalsh(rhos))) > -1e-9


def test_against_qutip_mesolve():
    n, g, kappa, gamma, cutoff = 2, 0.4, 0.3, 0.1, 18
    spec, _ = damped_dicke_spec(n, g, kappa, gamma, cutoff)
    ts = jnp.linspace(0, 6.0, 31)
    tr = qb.charge(spec, ts)
    assert tr.method == "lindblad"
    ref = qutip_dicke(n, g, 1.0, cutoff)
    res = qutip.mesolve(ref.H, ref.psi0, np.asarray(ts), [np.sqrt(kappa) * ref.a, np.sqrt(gamma) * ref.jm],
                        e_ops=[ref.HB],
                        options={"atol": 1e-12, "rtol": 1e-10})
    np.testing.assert_allclose(tr.energy, res.expect[0], atol=1e-7)
    # the exact derivatives from the adjoint generator against differences of the series
    fine = jnp.linspace(0, 1.0, 2001)
    tf = qb.charge(spec, fine)
    np.testing.assert_allclose(tf.d_energy[1:-1], np.gradient(np.asarray(tf.energy), np.asarray(fine))[1:-1], atol=1e-5)


def test_small_time_independent_systems_propagate_by_the_exact_exponential():
    """d <= 16 on an evenly spaced grid: rho(t_k) = exp(L dt)^k rho_0 (issue 18, item 2).  A window of
    2000 (about 600 relaxation times of the cavity, 2000/(2 pi) oscillations) costs one 144 x 144
    exponential: E_B(t) agrees with QuTiP's mesolve (rtol 1e-11) to 1e-10 over the whole window and with
    QuTiP on an uneven grid (the adaptive ODE) to 1e-9; dE/dt is exact (central differences of E agree to their own O(dt^2) error, dt = 0.05: 1.25e-3); the
    gradient through the exponential matches finite differences (1e-6 relative)."""
    import dataclasses

    import jax
    from helpers import cavity_qubit

    c = cavity_qubit(cutoff=6, g=0.4, kappa=0.3)
    spec = dataclasses.replace(c.spec, initial=(("a", 3),))
    psi0 = qutip.tensor(qutip.basis(6, 3), qutip.basis(2, 0))
    for T in (20.0, 2000.0):
        ts = np.linspace(0.0, T, 401)
        tr = qb.charge(spec, ts)
        ref = qutip.mesolve(c.H, psi0 * psi0.dag(), ts, c.c_ops, e_ops=[c.HB],
                            options={"atol": 1e-13, "rtol": 1e-11, "nsteps": 10**7})
        assert np.max(np.abs(np.asarray(tr.energy) - ref.expect[0])) < 1e-10
    uneven = np.concatenate([[0.0], np.linspace(0.0, 20.0, 401)[1:] * (1 + 1e-9 * np.arange(1, 401))])
    ode = qb.charge(spec, uneven)  # not evenly spaced: the adaptive ODE, against QuTiP on the same times
    ref = qutip.mesolve(c.H, psi0 * psi0.dag(), uneven, c.c_ops, e_ops=[c.HB],
                        options={"atol": 1e-13, "rtol": 1e-11, "nsteps": 10**7})
    assert np.max(np.abs(np.asarray(ode.energy) - ref.expect[0])) < 1e-9
    short = qb.charge(spec, np.linspace(0.0, 20.0, 401))
    E, dE, dt = np.asarray(short.energy), np.asarray(short.d_energy), 20.0 / 400
    assert np.max(np.abs((E[2:] - E[:-2]) / (2 * dt) - dE[1:-1])) < 0.5 * dt**2

    def energy(kappa):
        s = dataclasses.replace(spec, dissipators=(qb.Dissipator(kappa, qb.term(1.0, "a.a")),))
        return qb.charge(s, jnp.linspace(0.0, 5.0, 11)).energy[-1]

    g = float(jax.grad(energy)(0.3))
    h = 1e-5
    fd = (float(energy(0.3 + h)) - float(energy(0.3 - h))) / (2 * h)
    assert abs(g - fd) < 1e-6 * max(1.0, abs(fd))


def test_a_long_window_stops_once_proved_stationary():
    """d = 20 (above the exponential's 16), a window of 4000 = 1200 cavity lifetimes: the run stops once
    every later state is proved within 1e-10 (trace norm) of the stationary state (issue 18, item 2), and
    E_B(t) agrees with QuTiP's mesolve over the whole window to 1e-9.  With a degenerate stationary space
    (an untouched qubit beside the cavity) nothing is certified and the whole window is integrated."""
    import dataclasses

    from helpers import cavity_qubit

    c = cavity_qubit(cutoff=10, g=0.4, kappa=0.3)
    spec = dataclasses.replace(c.spec, initial=(("a", 3),))
    psi0 = qutip.tensor(qutip.basis(10, 3), qutip.basis(2, 0))
    ts = np.linspace(0.0, 4000.0, 401)
    tr = qb.charge(spec, ts)
    assert tr.stationary_from is not None and 20 < float(tr.stationary_from) < 400
    ref = qutip.mesolve(c.H, psi0 * psi0.dag(), ts, c.c_ops, e_ops=[c.HB],
                        options={"atol": 1e-13, "rtol": 1e-11, "nsteps": 10**7})
    assert np.max(np.abs(np.asarray(tr.energy) - ref.expect[0])) < 1e-9
    # no coupling: the qubit keeps its excitation forever, the cavity decays (two stationary directions)
    free = dataclasses.replace(cavity_qubit(cutoff=10, g=0.0, kappa=0.3).spec, initial=(("a", 3), ("b", 1)))
    tr = qb.charge(free, np.linspace(0.0, 400.0, 41))
    assert tr.stationary_from is None
    assert np.max(np.abs(np.asarray(tr.energy) - 1.0)) < 1e-12



def test_the_stationary_stop_is_not_taken_inside_a_users_jit():
    """A long window under the user's own jit (grid closed over): one compiled run, the same energies."""
    import dataclasses

    import jax
    from helpers import cavity_qubit

    spec = dataclasses.replace(cavity_qubit(cutoff=10, g=0.4, kappa=0.3).spec, initial=(("a", 3),))
    ts = jnp.linspace(0.0, 400.0, 41)
    inside = jax.jit(lambda s: s * qb.charge(spec, ts).energy)(1.0)
    assert np.max(np.abs(np.asarray(inside) - np.asarray(qb.charge(spec, ts).energy))) < 1e-9
