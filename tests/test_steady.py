"""Stationary states that are right or refuse (issue 18): degenerate stationary spaces, untouched levels,
pure loss.  The answer is the state reached from the spec's initial state (QuTiP's propagator definition),
checked against the long-time trajectory and QuTiP's mesolve."""

import numpy as np
import pytest
import qutip

import qbjax as qb
from qbjax.model import Dissipator, Spec, Term, term
from qbjax.operators import Boson, Qubit
from qbjax.steady import steady_figures, steady_state


def _thermal_qubits_and_an_untouched_battery():
    """Two qubits with a thermal bath each; the battery qubit has no channel and starts excited: E_ss = 1."""
    baths = []
    for q in ("q1", "q2"):
        baths += [Dissipator(0.1, (term(1.0, f"{q}.sm"),)), Dissipator(0.05, (term(1.0, f"{q}.sp"),))]
    return Spec(space=(("q1", Qubit()), ("q2", Qubit()), ("b", Qubit())),
                charger=(term(0.5, "q1.sz"), term(0.5, "q2.sz")), battery=(term(0.5, "b.sz"), Term(0.5)),
                coupling=(), battery_dofs=("b",), classical_initial={}, initial=(("q1", 0), ("q2", 0), ("b", 1)),
                dissipators=tuple(baths))


def _qubit_and_cavity(two_way: bool, cutoff: int = 4):
    """QuTiP's degenerate test: an untouched qubit (populations 0.3, 0.7) beside a decaying cavity in |2>."""
    loss = [Dissipator(0.2, (term(1.0, "a.a"),))]
    if two_way:
        loss.append(Dissipator(0.05, (term(1.0, "a.adag"),)))
    return Spec(space=(("a", Boson(cutoff)), ("b", Qubit())), charger=(term(1.0, "a.n"),),
                battery=(term(0.5, "b.sz"), Term(0.5)), coupling=(), battery_dofs=("b",), classical_initial={},
                initial=(("a", 2), ("b", 0)), initial_populations={"b": np.array([0.3, 0.7])},
                dissipators=tuple(loss))


@pytest.mark.parametrize("method", ["auto", "lindblad"])
def test_an_untouched_excited_battery_stays_charged(method):
    spec = _thermal_qubits_and_an_untouched_battery()
    assert float(steady_figures(spec, method=method).energy) == pytest.approx(1.0, abs=1e-10)
    assert float(qb.charge(spec, np.linspace(0.0, 400.0, 5)).energy[-1]) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("two_way", [False, True])
@pytest.mark.parametrize("method", ["auto", "lindblad"])
def test_degenerate_stationary_space_keeps_the_untouched_populations(method, two_way):
    spec = _qubit_and_cavity(two_way)
    assert float(steady_figures(spec, method=method).energy) == pytest.approx(0.7, abs=1e-10)
    # QuTiP: mesolve to a long time on the same matrices (its steadystate() assumes a unique state)
    a = qutip.tensor(qutip.destroy(4), qutip.qeye(2))
    excited = qutip.tensor(qutip.qeye(4), qutip.fock_dm(2, 1))  # qbjax's order: index 1 is the excited level
    rho0 = qutip.tensor(qutip.fock_dm(4, 2), qutip.Qobj(np.diag([0.3, 0.7])))
    c_ops = [np.sqrt(0.2) * a] + ([np.sqrt(0.05) * a.dag()] if two_way else [])
    res = qutip.mesolve(a.dag() * a, rho0, [0.0, 300.0], c_ops, e_ops=[excited],
                        options={"atol": 1e-12, "rtol": 1e-10})
    assert float(np.real(res.expect[0][-1])) == pytest.approx(0.7, abs=1e-8)


@pytest.mark.parametrize("cutoff", [20, 40])
def test_degenerate_stationary_space_above_the_svd_size(cutoff):
    """The same degenerate case with 1600 and 6400 Liouvillian unknowns (above the SVD's 1024; the second
    on the sparse path): the null spaces by shift-invert Arnoldi, the projection of rho_0 on them."""
    spec = _qubit_and_cavity(True, cutoff)
    fig = steady_figures(spec, method="lindblad")
    assert float(fig.energy) == pytest.approx(0.7, abs=1e-9)
    assert "2-dimensional stationary space" in fig.how and "Arnoldi" in fig.how
    # a unique stationary state at that size: the bordered solve, its uniqueness checked the same way
    unique = steady_figures(_cavity_with_a_bath_on_the_qubit(cutoff), method="lindblad")
    assert "unique: checked by shift-invert Arnoldi" in unique.how
    assert float(unique.energy) == pytest.approx(0.0, abs=1e-9)  # the qubit decays to its ground state


def _cavity_with_a_bath_on_the_qubit(cutoff):
    import dataclasses

    spec = _qubit_and_cavity(True, cutoff)
    return dataclasses.replace(spec, dissipators=spec.dissipators + (Dissipator(0.1, (term(1.0, "b.sm"),)),))


def test_pure_loss_reaches_the_ground_state_by_rates():
    # a one-way chain (pure loss) has no detailed-balanced state: the exact Markov limit, not a refusal
    spec = Spec(space=(("b", Boson(6)),), charger=(), battery=(term(1.0, "b.n"),), coupling=(), battery_dofs=("b",),
                classical_initial={}, initial=(("b", 4),), dissipators=(Dissipator(0.3, (term(1.0, "b.a"),)),))
    kind, p = steady_state(spec)
    assert kind == "populations"
    np.testing.assert_allclose(np.asarray(p), np.eye(6)[0], atol=1e-14)
    assert float(steady_figures(spec).energy) == pytest.approx(0.0, abs=1e-14)


def test_markov_limit_absorption_splits_between_closed_classes():
    """A transient state 1 between two absorbing states 0 and 2 (rates 1 and 3): 1/4 and 3/4 (closed form)."""
    from qbjax.dynamics.rates import markov_limit

    A = np.array([[0.0, 1.0, 0.0], [0.0, -4.0, 0.0], [0.0, 3.0, 0.0]])
    np.testing.assert_allclose(markov_limit(A, np.array([0.0, 1.0, 0.0])), [0.25, 0.0, 0.75], atol=1e-15)
    np.testing.assert_allclose(markov_limit(A, np.array([0.5, 0.5, 0.0])), [0.625, 0.0, 0.375], atol=1e-15)


def test_each_steady_state_says_how_it_was_obtained():
    assert "Markov-chain limit" in steady_figures(_thermal_qubits_and_an_untouched_battery()).how
    assert "projection of rho_0" in steady_figures(_qubit_and_cavity(True), method="lindblad").how
    from qbjax.models import HeatEngineBattery

    assert "detailed balance" in steady_figures(HeatEngineBattery(20, -0.8, 0.1)).how


def test_bad_rates_and_populations_are_refused_before_any_work():
    """Issue 20: Dissipator(-0.5) drove E_B to -33; populations summing to 9 gave a qubit E_B of 4.76."""
    with pytest.raises(ValueError, match="rate must be finite and >= 0"):
        Dissipator(-0.5, (term(1.0, "a.a"),))
    with pytest.raises(ValueError, match="rate must be finite and >= 0"):
        Dissipator(float("nan"), (term(1.0, "a.a"),))
    spec = _qubit_and_cavity(False)
    for bad in ([0.5, 0.7], [-0.2, 1.2], [np.nan, 1.0]):
        with pytest.raises(ValueError, match=r"initial_populations\['b'\] must be probabilities"):
            Spec(**{**{k: getattr(spec, k) for k in ("space", "charger", "battery", "coupling", "battery_dofs",
                                                       "classical_initial", "initial", "dissipators")},
                    "initial_populations": {"b": np.array(bad)}})


def test_figures_outside_their_physical_range_are_errors_naming_quantity_and_method(monkeypatch):
    """Never a number out of range (issue 18, item 3): a stationary state that came out wrong (injected
    here: populations that are not a state) is an error naming the quantity and the method."""
    import jax.numpy as jnp

    import qbjax.steady as st
    from qbjax.status import SolverError

    assert st.figure_problems({"energy": 0.5, "variance": 0.1, "ergotropy": 0.2}, 0.0, 1.0) == []
    problems = st.figure_problems({"energy": 6.25, "variance": -1.0, "ergotropy": float("nan"),
                                   "charging_time": (12.0, 0.0, 10.0)}, 0.0, 1.0)
    assert len(problems) == 4 and "energy = 6.25 is outside its physical range [0, 1]" in problems[0]
    assert "variance" in problems[1] and "not finite" in problems[2] and "charging_time" in problems[3]

    spec = _thermal_qubits_and_an_untouched_battery()
    real = st._steady_state

    def wrong(spec, method):
        kind, p, flags, how = real(spec, method)
        return kind, p * jnp.where(jnp.arange(p.size).reshape(p.shape) == p.size - 1, 6.25, 1.0), flags, how

    monkeypatch.setattr(st, "_steady_state", wrong)
    with pytest.raises(SolverError, match=r"steady_figures \(method 'rates'\): energy = .* outside its physical"):
        steady_figures(spec)
