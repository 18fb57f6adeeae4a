"""Seed 001 (Ito & Watanabe): heat engines charging N two-level batteries.

Closed forms (Eq. 13-16), the rate-equation path against the dense Lindblad
path, the symmetric-sector reduction against the 2^N product space, the
charging time (Eq. 17) and its gradients, the full engine model against the
effective master equation (Eq. 7-8).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qbjax as qb
from qbjax import Dissipator, Qubit, Spec, Term, term
from qbjax.analysis import replace_params
from qbjax.dynamics import ODEOptions
from qbjax.dynamics.rates import rate_steady_state
from qbjax.models.heat_engine import HeatEngineBattery, HeatEngineFull, closed_form_steady
from qbjax.representation.rates import not_diagonal_reason, rate_generator
from qbjax.steady import charging_time, open_charging, steady_figures, steady_state

TIGHT = ODEOptions(rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n", [1, 10, 1000])
def test_steady_state_matches_closed_forms(n):
    fig = steady_figures(HeatEngineBattery(n))
    cf = closed_form_steady(n, -0.8)
    assert abs(fig.energy / n - cf["energy_density"]) <= 1e-10 * cf["energy_density"]  # Eq. 14
    assert abs(fig.fluctuation - cf["fluctuation"]) <= 1e-10 * cf["fluctuation"]  # exact variance of Eq. 13
    assert abs(fig.ergotropy - cf["ergotropy"]) <= 1e-10 * fig.energy  # Eq. 16, any unitary
    assert abs(fig.ergotropy_sector - cf["ergotropy_symmetric"]) <= 1e-10 * fig.energy
    assert fig.ergotropy_sector <= fig.ergotropy + 1e-12


def test_eq15_is_only_the_large_n_form():
    small = closed_form_steady(2, -0.8)
    assert abs(small["fluctuation_eq15"] - small["fluctuation"]) > 0.5  # 1.339 vs 0.703
    large = closed_form_steady(200, -0.8)
    assert abs(large["fluctuation_eq15"] - large["fluctuation"]) < 1e-10
    limit = 0.5 / math.sinh(0.4)  # (omega0/2) csch(-beta omega0/2)
    assert abs(steady_figures(HeatEngineBattery(300)).fluctuation - limit) < 1e-10


def test_individual_protocol_is_n_copies():
    r1 = open_charging(HeatEngineBattery(1))
    r = open_charging(HeatEngineBattery(7, protocol="individual"))
    assert abs(r.steady_energy_density - r1.steady_energy_density) < 1e-14
    assert abs(r.steady.fluctuation - math.sqrt(7) * r1.steady.fluctuation) < 1e-12
    assert abs(r.charging_time - r1.charging_time) < 1e-12
    x = math.exp(0.8)
    assert abs(r1.steady_energy_density - x / (1 + x)) < 1e-14
    assert abs(r1.steady.ergotropy / r1.steady.energy - (1 - math.exp(-0.8))) < 1e-12  # E_1 / e_1 = 1 - e^{beta omega}


def test_individual_spec_equals_independent_qubits():
    """The explicit N-qubit individual spec (dense-LU rate path, 2^N states) vs N copies of one."""
    m = HeatEngineBattery(3, protocol="individual")
    ts = jnp.linspace(0.0, 40.0, 41)
    tr = qb.charge(m, ts, options=TIGHT)
    one = qb.charge(m.single(), ts, options=TIGHT)
    assert tr.method == "rates"
    np.testing.assert_allclose(tr.energy, 3 * one.energy, rtol=0, atol=1e-9)
    np.testing.assert_allclose(tr.variance, 3 * one.variance, rtol=0, atol=1e-9)


def test_symmetric_sector_against_product_space():
    """Collective channels on N = 3 explicit qubits (dense Lindblad, 8 states) vs the spin-3/2 rate equation."""
    n, down, up = 3, 0.1, 0.1 * math.exp(0.8)
    space = tuple((f"q{k}", Qubit()) for k in range(n))
    battery = tuple(t for k in range(n) for t in (term(0.5, f"q{k}.sz"), Term(0.5)))
    spec = Spec(space=space, charger=(), battery=battery, coupling=(), battery_dofs=tuple(s for s, _ in space),
                initial=(), classical_initial={},
                dissipators=(Dissipator(down, tuple(term(1.0, f"q{k}.sm") for k in range(n))),
                             Dissipator(up, tuple(term(1.0, f"q{k}.sp") for k in range(n)))))
    assert not_diagonal_reason(spec) is not None  # S^- mixes shifts on different qubits
    ts = jnp.linspace(0.0, 20.0, 21)
    full = qb.charge(spec, ts, options=ODEOptions(rtol=1e-11, atol=1e-13))
    sector = qb.charge(HeatEngineBattery(n), ts, options=TIGHT)
    assert full.method == "lindblad" and sector.method == "rates"
    np.testing.assert_allclose(full.energy, sector.energy, rtol=0, atol=1e-8)
    np.testing.assert_allclose(full.variance, sector.variance, rtol=0, atol=1e-8)


@pytest.mark.parametrize("n", [2, 20])
def test_rate_equation_matches_dense_lindblad(n):
    m = HeatEngineBattery(n)
    ts = jnp.linspace(0.0, float(m.default_t_max()), 41)
    rates = qb.charge(m, ts, options=TIGHT)
    dense = qb.charge(m, ts, method="lindblad", options=ODEOptions(rtol=1e-12, atol=1e-13))
    assert rates.method == "rates" and dense.method == "lindblad"
    for a, b in [(rates.energy, dense.energy), (rates.variance, dense.variance),
                 (rates.d_energy, dense.d_energy)]:
        assert float(jnp.max(jnp.abs(a - b))) <= 1e-8 * n


def test_steady_state_null_space_paths_agree():
    m = HeatEngineBattery(6)
    kind, p = steady_state(m)
    assert kind == "populations"
    gen = rate_generator(m.spec())
    assert float(jnp.max(jnp.abs(gen(p)))) < 1e-13  # stationary
    dense = gen.dense()
    q = jnp.linalg.solve(dense.at[-1].set(1.0), jnp.zeros(7).at[-1].set(1.0))
    np.testing.assert_allclose(p, q, atol=1e-13)
    kind, rho = steady_state(m, method="lindblad")  # Liouvillian null space
    assert kind == "density"
    np.testing.assert_allclose(jnp.real(jnp.diag(rho)), p, atol=1e-12)
    assert float(jnp.max(jnp.abs(rho - jnp.diag(jnp.diag(rho))))) < 1e-13


def test_steady_state_at_large_n_does_not_overflow():
    m = HeatEngineBattery(100_000)
    p = rate_steady_state(rate_generator(m.spec()), m.spec().initial_population_tensor())
    assert bool(jnp.all(jnp.isfinite(p))) and abs(float(jnp.sum(p)) - 1) < 1e-12
    cf = closed_form_steady(100_000, -0.8)
    e = float(jnp.sum(jnp.arange(100_001) * p)) / 100_000
    assert abs(e - cf["energy_density"]) < 1e-12


def test_charging_time_grid_independent_and_scales_with_rate():
    m = HeatEngineBattery(50)
    a = open_charging(m, num_times=81, options=TIGHT)
    b = open_charging(m, num_times=321, t_max=float(a.trajectory.ts[-1]), options=TIGHT)
    assert abs(a.charging_time - b.charging_time) <= 1e-8 * b.charging_time  # interpolant error ~2e-9
    # Eq. 8: every rate is proportional to Gamma_e, so tau_N Gamma_e depends on beta_e omega0 alone
    c = open_charging(replace_params(m, rate=0.25), options=TIGHT)
    assert abs(c.charging_time * 0.25 - a.charging_time * 0.1) <= 1e-8 * a.charging_time * 0.1
    # the deficit at tau is eps
    e = open_charging(m, eps=1e-2, options=TIGHT)
    assert e.charging_time < a.charging_time


def test_charging_time_eq20_scaling():
    """tau_1 / tau_N grows like N / log N (Eq. 20): the ratio stays O(1) from N = 10 to 1000."""
    t1 = open_charging(HeatEngineBattery(1)).charging_time
    ratios = [float(t1 / open_charging(HeatEngineBattery(n)).charging_time) / (n / math.log(n)) for n in (10, 1000)]
    assert all(0.5 < r < 2.5 for r in ratios), ratios


def test_gradients_against_finite_differences():
    m = HeatEngineBattery(20)
    T = float(open_charging(m).trajectory.ts[-1])

    def figures(rate, beta_omega):
        r = open_charging(replace_params(m, rate=rate, beta_omega=beta_omega), t_max=T, options=TIGHT)
        return jnp.stack([r.charging_time, r.steady_energy_density, r.steady.ergotropy])

    jac = jax.jacrev(figures, argnums=(0, 1))(jnp.asarray(0.1), jnp.asarray(-0.8))
    tau = figures(0.1, -0.8)[0]
    assert abs(jac[0][0] + tau / 0.1) <= 1e-6 * tau / 0.1  # exact: tau ~ 1 / Gamma_e
    h = 1e-5
    fd = (figures(0.1, -0.8 + h) - figures(0.1, -0.8 - h)) / (2 * h)
    np.testing.assert_allclose(jac[1], fd, rtol=1e-5, atol=1e-9)


def test_environment_folds_into_effective_parameters():
    m = HeatEngineBattery(5, rate=0.1, beta_omega=-0.8, env_rate=0.05, env_beta_omega=2.0)
    down, ratio = m.effective_rates()
    assert abs(down - 0.15) < 1e-15
    assert abs(ratio - (0.1 * math.exp(0.8) + 0.05 * math.exp(-2.0)) / 0.15) < 1e-15
    b = float(m.effective_beta_omega())
    fig = steady_figures(m)
    assert abs(fig.energy / 5 - closed_form_steady(5, b)["energy_density"]) < 1e-12


def test_full_engine_model_steady_state_and_validity():
    """Full three-level engines (Eq. 1-6) vs the effective equation (Eq. 8).

    The battery's stationary state is exactly thermal at beta_e for any g;
    the transient approaches the effective one as g / Gamma -> 0 (Eq. 7).
    """
    devs = []
    for g in (0.08, 0.04):
        full = HeatEngineFull(1, g=g)
        eff = full.effective()
        t_eff = jnp.linspace(0.0, 30.0, 31)  # in units of 1 / Gamma_e
        ts = t_eff / eff.rate
        a = qb.charge(full, ts, options=ODEOptions(rtol=1e-10, atol=1e-12))
        b = qb.charge(eff, ts, options=TIGHT)
        devs.append(float(jnp.max(jnp.abs(a.energy - b.energy))))
        if g == 0.04:
            sf, se = steady_figures(full), steady_figures(eff)
            assert abs(sf.energy - se.energy) < 1e-10 and abs(sf.fluctuation - se.fluctuation) < 1e-10
    assert devs[1] < 0.6 * devs[0] and devs[1] < 0.02, devs


def test_full_engine_collective_n2_runs_lindblad():
    full = HeatEngineFull(2, g=0.04)
    spec = full.spec()
    assert spec.dims == (3, 3, 3)
    fig = steady_figures(full)
    cf = closed_form_steady(2, float(full.effective_parameters()[0]))
    assert abs(fig.energy / 2 - cf["energy_density"]) < 1e-9


def test_bad_parameters():
    from qbjax.models import ParameterError

    with pytest.raises(ParameterError, match="rate"):
        HeatEngineBattery(3, rate=0.0)
    with pytest.raises(ParameterError, match="n must be"):
        HeatEngineBattery(0)
    with pytest.raises(ParameterError, match="protocol"):
        HeatEngineBattery(3, protocol="both")
    with pytest.raises(ParameterError, match="omega_h"):
        HeatEngineFull(1, omega_h=0.5)
    with pytest.raises(ValueError, match="eps"):
        open_charging(HeatEngineBattery(2), eps=1.5)


def test_charging_time_refuses_a_short_window():
    m = HeatEngineBattery(4)
    short = qb.charge(m, jnp.linspace(0.0, 0.1, 11))
    with pytest.raises(Exception, match="never falls below eps"):
        jax.block_until_ready(charging_time(short, steady_figures(m).energy))
    with pytest.raises(ValueError, match="eps"):
        charging_time(short, 1.0, eps=0.0)


def test_cascade_time_is_eq_20():
    from qbjax.models.heat_engine import cascade_time

    # N = 3: (1/2 + 1/2) / (Gamma (e^{0.8} - 1))
    assert cascade_time(3, -0.8, 0.1) == pytest.approx(1.0 / (0.1 * (math.exp(0.8) - 1.0)), rel=1e-14)
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        cascade_time(1, -0.8, 0.1)
    with pytest.raises(ValueError, match="beta_omega must be < 0"):
        cascade_time(4, 0.5, 0.1)
