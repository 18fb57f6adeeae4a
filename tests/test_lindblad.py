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
