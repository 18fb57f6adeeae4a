"""The general engine (issue 17): observables, initial states, saved states, quantum information, QuTiP in and out.

References are independent: QuTiP's ``sesolve``/``mesolve``/``ptrace``/``entropy_vn``
on the same matrices, and exact numpy diagonalisation.  Tolerances: 1e-9 against
exact references for the exact propagators, 1e-8 for the adaptive ones (rtol 1e-12).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import qutip
from helpers import cavity_qubit, exact_kets

import qbjax as qb
from qbjax.steady import steady_state

TS = np.linspace(0.5, 6.0, 23)  # ts[0] = 0.5 is the initial time for every method
TIGHT = {"atol": 1e-12, "rtol": 1e-12}
N = 10


@pytest.fixture(scope="module")
def jc():
    return cavity_qubit(N, g=0.4)


def _ket(alpha=0.8):
    with pytest.warns(qb.TruncationWarning) if abs(alpha) > 1.5 else _nothing():
        return np.asarray(qb.tensor(qb.coherent(N, alpha), qb.basis(2, 0)))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _observables(sys):
    # a Term, a tuple of Terms, a dense array, a Qobj; one non-Hermitian (<a>)
    return {"a": qb.term(1.0, "a.a"), "x": (qb.term(0.5, "a.a"), qb.term(0.5, "a.adag")),
            "n": np.asarray((sys.a.dag() * sys.a).full()), "sz": sys.sz}


@pytest.mark.parametrize("method", ["spectral", "ode", "dense-ode", "chebyshev", "krylov"])
def test_closed_observables_every_method_from_half(jc, method):
    psi0 = _ket()
    traj = qb.charge(jc.spec, TS, method=method, observables=_observables(jc), initial_state=psi0, save_states=True)
    kets = exact_kets(jc.H.full(), psi0, TS)
    ref = {k: np.einsum("ti,ij,tj->t", kets.conj(), op, kets)
           for k, op in {"a": jc.a.full(), "x": (0.5 * (jc.a + jc.a.dag())).full(), "n": (jc.a.dag() * jc.a).full(),
                         "sz": jc.sz.full()}.items()}
    tol = 1e-9 if method in ("spectral", "chebyshev", "krylov") else 1e-8
    assert np.iscomplexobj(traj.expect["a"]) and not np.iscomplexobj(traj.expect["n"])
    assert not np.iscomplexobj(traj.expect["x"]) and not np.iscomplexobj(traj.expect["sz"])
    for k, v in ref.items():
        np.testing.assert_allclose(traj.expect[k], v if k == "a" else v.real, atol=tol)
    np.testing.assert_allclose(traj.energy, 0.5 * ref["sz"].real + 0.5, atol=tol)
    np.testing.assert_allclose(traj.states, kets, atol=tol)
    np.testing.assert_allclose(traj.final_state, kets[-1], atol=tol)
    assert traj.ts[0] == 0.5 and traj.dims == (N, 2) and traj.dof_names == ("a", "b")


def test_coherent_ket_under_loss_against_mesolve():
    sys = cavity_qubit(N, g=0.4, kappa=0.1)
    psi0 = qutip.Qobj(_ket()[:, None], dims=[[N, 2], [1, 1]])
    ref = qutip.mesolve(sys.H, psi0, TS, c_ops=sys.c_ops, e_ops=[sys.a, sys.a.dag() * sys.a, sys.sz], options=TIGHT)
    traj = qb.charge(sys.spec, TS, observables=_observables(sys), initial_state=psi0, save_states=True)
    assert traj.method == "lindblad"  # auto: a coherent superposition leaves the rate equation
    for k, r in zip(["a", "n", "sz"], ref.expect):
        np.testing.assert_allclose(traj.expect[k], r, atol=1e-9)
    rho = traj.states
    np.testing.assert_allclose(np.einsum("tii->t", rho), 1.0, atol=1e-10)
    np.testing.assert_allclose(rho, np.conj(np.swapaxes(rho, 1, 2)), atol=1e-12)
    assert np.min(np.linalg.eigvalsh(rho)) > -1e-9  # positive within the solver's tolerance
    np.testing.assert_allclose(traj.final_state, rho[-1], atol=1e-14)


def test_mixed_closed_state(jc):
    rho0 = np.asarray(qb.tensor(qb.thermal(N, 0.4), qb.ket2dm(qb.basis(2, 0))))
    w, V = np.linalg.eigh(jc.H.full())
    for method in ("spectral", "ode"):
        traj = qb.charge(jc.spec, TS, method=method, initial_state=rho0, save_states=True,
                         observables={"n": qb.term(1.0, "a.n")})
        U = [V @ np.diag(np.exp(-1j * w * (t - TS[0]))) @ V.conj().T for t in TS]
        rhos = np.stack([u @ rho0 @ u.conj().T for u in U])
        np.testing.assert_allclose(traj.states, rhos, atol=1e-8)
        n = np.einsum("ij,tji->t", (jc.a.dag() * jc.a).full(), rhos).real
        np.testing.assert_allclose(traj.expect["n"], n, atol=1e-8)
        np.testing.assert_allclose(traj.energy, np.einsum("ij,tji->t", jc.HB.full(), rhos).real, atol=1e-8)


def test_reduced_state_entropy_purity_against_qutip(jc):
    psi0 = _ket(1.0)
    traj = qb.charge(jc.spec, TS, initial_state=psi0, save_states=True)
    ref = qutip.sesolve(jc.H, qutip.Qobj(psi0[:, None], dims=[[N, 2], [1, 1]]), TS, options=TIGHT)
    rb = qb.reduced_state(traj, "b")
    assert rb.shape == (len(TS), 2, 2)
    for k, s in enumerate(ref.states):
        np.testing.assert_allclose(rb[k], s.ptrace(1).full(), atol=1e-9)
        np.testing.assert_allclose(qb.entropy(rb[k]), qutip.entropy_vn(s.ptrace(1)), atol=1e-8)
        np.testing.assert_allclose(qb.purity(rb[k]), (s.ptrace(1) ** 2).tr(), atol=1e-9)
    # a pure global state: both halves have the same entropy
    np.testing.assert_allclose(qb.entropy(qb.reduced_state(traj, "a")), qb.entropy(rb), atol=1e-8)
    # the ergotropy of the battery's reduced state at every saved time is within [0, E_B]
    erg = jax.vmap(lambda r: qb.ergotropy(r, jnp.diag(jnp.array([0.0, 1.0]))))(rb)
    assert np.all(erg >= -1e-12) and np.all(erg <= np.asarray(traj.energy) + 1e-12)


def test_log_negativity_and_entropy_closed_forms():
    bell = np.asarray(qb.superposition(qb.tensor(qb.basis(2, 0), qb.basis(2, 0)),
                                       qb.tensor(qb.basis(2, 1), qb.basis(2, 1))))
    np.testing.assert_allclose(qb.log_negativity(bell, (2, 2), 0), np.log(2), atol=1e-12)
    np.testing.assert_allclose(qb.log_negativity(qb.ket2dm(bell), (2, 2), 1), np.log(2), atol=1e-12)
    np.testing.assert_allclose(qb.entropy(qb.ptrace(bell, (2, 2), [0])), np.log(2), atol=1e-12)
    product = qb.tensor(qb.thermal(3, 0.7), qb.ket2dm(qb.basis(2, 1)))
    np.testing.assert_allclose(qb.log_negativity(product, (3, 2), 0), 0.0, atol=1e-12)
    rho = qutip.rand_dm([3, 2], seed=4)
    np.testing.assert_allclose(qb.log_negativity(rho.full(), (3, 2), 0),
                               np.log2(2 * qutip.negativity(rho, 0) + 1) * np.log(2), atol=1e-10)
    # gradients stay finite where eigenvalues vanish or are degenerate
    g = jax.grad(lambda p: qb.entropy(jnp.diag(jnp.array([p, 1 - p, 0.0, 0.0]))))(0.3)
    np.testing.assert_allclose(g, np.log(0.7 / 0.3), rtol=1e-10)
    g = jax.grad(lambda x: qb.log_negativity(x * qb.ket2dm(bell) + (1 - x) * jnp.eye(4) / 4, (2, 2), 0))(0.9)
    assert np.isfinite(g)


def test_state_helpers_against_qutip():
    c = qutip.coherent(30, 0.7 - 0.4j, method="analytic").full()[:, 0]
    np.testing.assert_allclose(qb.coherent(30, 0.7 - 0.4j), c / np.linalg.norm(c), atol=1e-14)
    np.testing.assert_allclose(qb.thermal(12, 0.8), qutip.thermal_dm(12, 0.8).full(), atol=1e-14)
    for j, th, ph in [(2, 0.7, 0.3), (1.5, 2.0, -1.1), (3, 0.0, 0.0), (3, np.pi, 0.0)]:
        ours = np.asarray(qb.spin_coherent(j, th, ph))
        theirs = qutip.spin_coherent(j, th, ph).full()[::-1, 0]  # QuTiP orders m = +j .. -j
        assert abs(abs(np.vdot(theirs, ours)) - 1) < 1e-12
        jz = np.diag(np.arange(-j, j + 1))
        np.testing.assert_allclose(np.vdot(ours, jz @ ours).real, j * np.cos(th), atol=1e-12)
    with pytest.warns(qb.TruncationWarning, match="increase dim"):
        qb.coherent(5, 2.0)
    psi = qb.superposition(qb.basis(3, 0), qb.basis(3, 2), weights=[1.0, 1j])
    np.testing.assert_allclose(psi, np.array([1, 0, 1j]) / np.sqrt(2), atol=1e-15)


def test_to_qutip_round_trip(jc):
    psi0 = _ket()
    traj = qb.charge(jc.spec, TS, observables={"a": jc.a, "n": qb.term(1.0, "a.n")}, initial_state=psi0,
                     save_states=True)
    res = traj.to_qutip()
    np.testing.assert_array_equal(res.times, TS)
    assert res.states[0].dims[0] == [N, 2] and res.final_state.isket and len(res.states) == len(TS)
    # QuTiP's own analysis on qbjax's states gives qbjax's expectation values
    np.testing.assert_allclose([qutip.expect(jc.a, s) for s in res.states], res.expect[0], atol=1e-12)
    np.testing.assert_allclose(res.e_data["n"], traj.expect["n"])
    np.testing.assert_allclose(res.e_data["energy"], traj.energy)
    # a Qobj final state starts the next run: two halves equal one run
    half = qb.charge(jc.spec, TS[:12], initial_state=psi0)
    rest = qb.charge(jc.spec, TS[11:], initial_state=half.to_qutip().final_state)
    np.testing.assert_allclose(rest.energy, traj.energy[11:], atol=1e-9)


def test_rates_take_diagonal_requests_and_auto_moves_on():
    sys = cavity_qubit(6, g=0.0, kappa=0.3)  # diagonal H and loss: the rate equation's ground
    rho0 = np.asarray(qb.tensor(qb.thermal(6, 0.5), qb.ket2dm(qb.basis(2, 1))))
    diag_obs = {"n": qb.term(1.0, "a.n"), "pop": np.diag(np.arange(12.0))}
    traj = qb.charge(sys.spec, TS, initial_state=rho0, observables=diag_obs, save_states=True)
    assert traj.method == "rates"
    ref = qutip.mesolve(sys.H, qutip.Qobj(rho0, dims=[[6, 2], [6, 2]]), TS, c_ops=sys.c_ops,
                        e_ops=[sys.a.dag() * sys.a, qutip.Qobj(np.diag(np.arange(12.0)), dims=[[6, 2], [6, 2]])],
                        options=TIGHT)
    np.testing.assert_allclose(traj.expect["n"], ref.expect[0], atol=1e-9)
    np.testing.assert_allclose(traj.expect["pop"], ref.expect[1], atol=1e-8)
    assert traj.states.shape == (len(TS), 12, 12) and traj.final_state.shape == (12, 12)
    moved = qb.charge(sys.spec, TS, initial_state=rho0, observables={"a": qb.term(1.0, "a.a")})
    assert moved.method == "lindblad"
    with pytest.raises(ValueError, match="not diagonal"):
        qb.charge(sys.spec, TS, method="rates", observables={"a": qb.term(1.0, "a.a")})


def test_classical_observables_are_symbols():
    m = qb.OscillatorBattery(4, 0.2)
    traj = qb.charge(m, classical=True, observables={"E": m.spec().battery, "a": qb.term(1.0, "b.a")})
    np.testing.assert_allclose(traj.expect["E"], traj.energy, atol=1e-12)
    assert np.iscomplexobj(traj.expect["a"])
    np.testing.assert_allclose(np.abs(traj.expect["a"]) ** 2, traj.energy / float(m.spec().battery[0].coeff),
                               rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="classical"):
        qb.charge(m, classical=True, initial_state=np.eye(1, 25, 0)[0])


def test_gradients_through_state_observable_and_model(jc):
    ts = jnp.linspace(0.0, 3.0, 7)

    def n_at(alpha, c):
        traj = qb.charge(jc.spec, ts, initial_state=qb.tensor(qb.coherent(N, alpha), qb.basis(2, 0)),
                         observables={"n": qb.term(c, "a.n")})
        return traj.expect["n"][-1] + traj.energy[-1]

    g = jax.grad(n_at, argnums=(0, 1))(0.6, 1.3)
    h = 1e-5
    fd0 = (n_at(0.6 + h, 1.3) - n_at(0.6 - h, 1.3)) / (2 * h)
    fd1 = (n_at(0.6, 1.3 + h) - n_at(0.6, 1.3 - h)) / (2 * h)
    np.testing.assert_allclose(g, [fd0, fd1], rtol=1e-6)
    # jit and vmap over the initial state's parameter
    f = jax.jit(jax.vmap(lambda a: n_at(a, 1.0)))
    np.testing.assert_allclose(f(jnp.array([0.3, 0.6])), [n_at(0.3, 1.0), n_at(0.6, 1.0)], rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"initial_state": np.ones(20)}, "normalised ket"),
        ({"initial_state": np.ones(7) / np.sqrt(7)}, r"ket \(20,\)"),
        ({"initial_state": np.triu(np.ones((20, 20))) / 20}, "Hermitian"),
        ({"initial_state": np.diag(np.r_[1.5, -0.5, np.zeros(18)])}, "positive semidefinite"),
        ({"initial_state": qutip.basis([5, 4], [0, 0])}, "dims"),
        ({"observables": {"n": qb.term(1.0, "c.n")}}, "unknown dof 'c'"),
        ({"observables": {"n": qb.term(1.0, "a.sz")}}, "unknown boson operator"),
        ({"observables": {"n": np.eye(3)}}, r"\(20, 20\)"),
        ({"observables": {"n": qutip.qeye([5, 4])}}, "dims"),
        ({"observables": [qb.term(1.0, "a.n")]}, "mapping"),
        ({"save_states": "yes"}, "save_states"),
    ],
)
def test_bad_requests_are_refused_before_work(kwargs, match):
    sys = cavity_qubit(N, g=0.4)
    with pytest.raises(ValueError, match=match):
        qb.charge(sys.spec, TS, **kwargs)


def test_native_families_refuse_general_requests():
    from qbjax.models import ReservoirBattery

    with pytest.raises(ValueError, match="own solver"):
        qb.charge(ReservoirBattery(2, 1, 1, 1.0), observables={"x": qb.term(1.0, "b.n")})


# --- time-dependent terms and dissipators (modulation=) ------------------------------------------


def _driven(sys, f):
    return dataclasses.replace(sys.spec, charger=sys.spec.charger + (qb.term(1.0, "a.x", modulation=f),))


def test_modulated_term_and_dissipator_against_qutip():
    sys = cavity_qubit(8, g=0.4)
    ts = np.linspace(0.0, 6.0, 25)
    x = (sys.a + sys.a.dag()) / np.sqrt(2)
    H = [sys.H, [x, lambda t: 0.5 * np.cos(1.3 * t)]]
    psi0 = qutip.tensor(qutip.basis(8, 0), qutip.basis(2, 0))
    spec = _driven(sys, lambda t: 0.5 * jnp.cos(1.3 * t))
    ref = qutip.sesolve(H, psi0, ts, e_ops=[sys.HB, sys.a], options=TIGHT)
    for method in ("auto", "dense-ode"):
        traj = qb.charge(spec, ts, method=method, observables={"a": sys.a})
        np.testing.assert_allclose(traj.energy, ref.expect[0], atol=1e-9)
        np.testing.assert_allclose(traj.expect["a"], ref.expect[1], atol=1e-9)
    lossy = dataclasses.replace(spec, dissipators=(
        qb.Dissipator(0.2, qb.term(1.0, "a.a"), modulation=lambda t: 1.0 + 0.5 * jnp.sin(t)),))
    ref = qutip.mesolve(H, psi0, ts, c_ops=[[np.sqrt(0.2) * sys.a, lambda t: np.sqrt(1.0 + 0.5 * np.sin(t))]],
                        e_ops=[sys.HB, sys.a], options=TIGHT)
    traj = qb.charge(lossy, ts, observables={"a": sys.a})
    assert traj.method == "lindblad"
    np.testing.assert_allclose(traj.energy, ref.expect[0], atol=1e-9)
    np.testing.assert_allclose(traj.expect["a"], ref.expect[1], atol=1e-9)


@pytest.mark.parametrize("open_system", [False, True])
def test_modulated_derivatives_are_exact(open_system):
    # dE/dt and d2E/dt2 include <i[dH/dt, B]> and the modulated generator: compare with differences of
    # the series on a fine grid (their error is O(dt^2) ~ 1e-6 here)
    sys = cavity_qubit(6, g=0.4, kappa=0.1 if open_system else 0.0)
    spec = _driven(sys, lambda t: 0.7 * jnp.sin(2.0 * t))
    ts = np.linspace(1.0, 1.4, 81)
    traj = qb.charge(spec, ts, initial_state=_ket6())
    fd1 = np.gradient(np.asarray(traj.energy), ts, edge_order=2)
    fd2 = np.gradient(np.asarray(traj.d_energy), ts, edge_order=2)
    np.testing.assert_allclose(traj.d_energy[2:-2], fd1[2:-2], atol=2e-5)
    np.testing.assert_allclose(traj.d2_energy[2:-2], fd2[2:-2], atol=2e-5)


def _ket6():
    return np.asarray(qb.tensor(qb.coherent(6, 0.3), qb.basis(2, 0)))


def test_gradient_through_a_piecewise_modulation():
    sys = cavity_qubit(6, g=0.4)
    ts = jnp.linspace(0.0, 3.0, 13)

    def energy(values):
        f = qb.PiecewiseConstant(jnp.array([0.0, 1.0, 2.0, 3.5]), values)
        return qb.charge(_driven(sys, f), ts).energy[-1]

    v = jnp.array([0.3, -0.2, 0.5])
    g = jax.grad(energy)(v)
    h = 1e-5
    fd = [(energy(v.at[i].add(h)) - energy(v.at[i].add(-h))) / (2 * h) for i in range(3)]
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-10)
    assert abs(float(g[0])) > 1e-4  # the drive matters


def test_bad_modulations_are_refused():
    sys = cavity_qubit(6, g=0.4)
    with pytest.raises(ValueError, match="H_B defines the stored energy"):
        dataclasses.replace(sys.spec, battery=(qb.term(0.5, "b.sz", modulation=jnp.cos),))
    with pytest.raises(ValueError, match="real scalar"):
        qb.charge(_driven(sys, lambda t: jnp.exp(1j * t)), TS)
    lossy = dataclasses.replace(sys.spec, dissipators=(qb.Dissipator(0.2, qb.term(1.0, "a.a"), modulation=jnp.sin),))
    with pytest.raises(ValueError, match="must be >= 0"):
        qb.charge(lossy, np.linspace(0, 6, 13))
    with pytest.raises(ValueError, match="time-independent H"):
        qb.charge(_driven(sys, jnp.cos), TS, method="spectral")
    with pytest.raises(ValueError, match="callable"):
        qb.term(1.0, "a.x", modulation=3.0)
    lossy = dataclasses.replace(sys.spec, dissipators=(
        qb.Dissipator(0.2, qb.term(1.0, "a.a"), modulation=lambda t: 1.0 + 0 * t),))
    with pytest.raises(ValueError, match="time-independent spec"):
        steady_state(lossy)


def test_per_dof_initial_states_in_the_spec_and_a_coherent_charger_classically():
    sys = cavity_qubit(N, g=0.4)
    alpha = 0.9
    spec = dataclasses.replace(sys.spec, initial_states={"a": qb.coherent(N, alpha)})
    full = qb.charge(sys.spec, TS, initial_state=qb.tensor(qb.coherent(N, alpha), qb.basis(2, 0)))
    np.testing.assert_allclose(qb.charge(spec, TS).energy, full.energy, atol=1e-13)
    mixed = dataclasses.replace(sys.spec, initial_states={"a": qb.thermal(N, 0.3)})
    ref = qb.charge(sys.spec, TS, initial_state=qb.tensor(qb.thermal(N, 0.3), qb.ket2dm(qb.basis(2, 0))))
    np.testing.assert_allclose(qb.charge(mixed, TS).energy, ref.energy, atol=1e-13)
    with pytest.raises(ValueError, match="normalised ket"):
        dataclasses.replace(sys.spec, initial_states={"a": np.ones(N)})
    with pytest.raises(ValueError, match="unknown dof"):
        dataclasses.replace(sys.spec, initial_states={"c": qb.basis(2, 0)})
    with pytest.raises(ValueError, match="starts from a basis state"):
        steady_state(dataclasses.replace(spec, dissipators=(qb.Dissipator(0.1, qb.term(1.0, "a.a")),)))
    # the classical counterpart of |alpha>: <a> = alpha <-> (q + i p)/sqrt 2
    q, p = qb.classical_coherent(0.6 - 0.2j)
    np.testing.assert_allclose((q + 1j * p) / np.sqrt(2), 0.6 - 0.2j, atol=1e-15)
    # a displaced charger: the quantum <a>(t) of a coherent state follows the classical flow at g = 0
    free = cavity_qubit(N, g=0.0)
    spec = dataclasses.replace(free.spec, initial_states={"a": qb.coherent(N, 0.5)},
                               classical_initial={"a": qb.classical_coherent(0.5), "b": jnp.array([0.0, 0.0, -0.5])})
    quantum = qb.charge(spec, TS, observables={"a": qb.term(1.0, "a.a")})
    classical = qb.charge(spec, TS, classical=True, observables={"a": qb.term(1.0, "a.a")})
    np.testing.assert_allclose(quantum.expect["a"], classical.expect["a"], atol=1e-8)


def test_review_regressions_states_and_hermiticity():
    import equinox as eqx

    from qbjax.operators import Levels

    # a coupling pair sharing one PiecewiseConstant stays Hermitian through pytree round trips
    sys = cavity_qubit(6, g=0.4)
    f = qb.PiecewiseConstant(jnp.array([0.0, 2.0]), jnp.array([1.0]))
    spec = dataclasses.replace(sys.spec, coupling=(qb.term(0.4, "a.adag", "b.sm", modulation=f),
                                                   qb.term(0.4, "a.a", "b.sp", modulation=f)))
    psi = qb.tensor(qb.coherent(6, 0.5), qb.basis(2, 0))
    ts = jnp.linspace(0.0, 3.0, 7)
    e = eqx.filter_jit(lambda s: qb.charge(s, ts, initial_state=psi).energy)(spec)
    assert np.all(np.isfinite(e))
    # level operators in any spelling
    qb.Spec(space=(("q", Levels(3)),), charger=(), battery=(qb.term(1.0, "q.1, 1"), qb.term(0.5, "q.0, 1"),
                                                             qb.term(0.5, "q.1,0")),
            coupling=(), battery_dofs=("q",), initial=(), classical_initial={})
    # kets (T, D) with T == D are kets
    m = qb.SpinBattery(2, 0.3)
    tr = qb.charge(m.spec(), np.linspace(0, 3, 9), save_states=True)
    assert tr.states.shape == (9, 9) and qb.reduced_state(tr, "b").shape == (9, 3, 3)
    with pytest.raises(ValueError, match="distinct"):
        qb.log_negativity(np.eye(4) / 4, (2, 2), [0, 0])
    # the classical method value ignores a spec's quantum initial_states, as classical=True does
    osc = qb.OscillatorBattery(2, 0.2)
    s2 = dataclasses.replace(osc.spec(), initial_states={"a": qb.basis(3, 2)})
    a = qb.charge(s2, ts, method=qb.methods.Hamilton()).energy
    b = qb.charge(s2, ts, classical=True).energy
    np.testing.assert_allclose(a, b, atol=1e-14)


def test_grid_resolution_keeps_valid_runs_certified():
    m = qb.DickeBattery(4, 0.5)
    switched = qb.max_power(qb.charge(m, switch=qb.PiecewiseConstant(jnp.array([0.0, 0.6]), jnp.array([1.0]))))
    assert bool(switched.certified)  # the switch-off kink at a grid node is not held against the grid
    osc = qb.OscillatorBattery(4, 0.2)
    ts = np.concatenate([[0.0], np.geomspace(1e-6, float(osc.default_t_max()), 2000)])
    assert bool(qb.max_power(qb.charge(osc, ts)).certified)  # tiny steps: rounding is not a beat
