"""optax maximisation with bounds, norm constraints and vmapped restarts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qbjax as qb
from qbjax.optimize import Ball, Box, Simplex, Sphere, model_objective, optimize, optimize_model


@pytest.mark.parametrize("method", ["adam", "lbfgs"])
def test_bounds_and_norm_constraints_reach_the_analytic_optima(method):
    c = jnp.array([3.0, -1.0, 2.0])
    w = jnp.array([1.0, 2.0, 5.0])

    def objective(p):
        return (-(p["x"] - 2.0) ** 2                      # unconstrained optimum 2, outside the box [0, 1]
                + jnp.dot(c, p["s"])                       # on |s| = 2: s = 2 c / |c|
                + jnp.dot(w, jnp.log(p["q"]))              # on the simplex sum q = 4: q = 4 w / sum w
                + jnp.dot(c, p["b"]) - jnp.sum(p["b"] ** 2))   # inside |b| <= 10: b = c / 2

    start = {"x": 0.5, "s": jnp.ones(3), "q": jnp.ones(3), "b": jnp.zeros(3) + 0.1}
    cons = {"x": Box(0.0, 1.0), "s": Sphere(2.0), "q": Simplex(4.0), "b": Ball(10.0)}
    steps = 400 if method == "adam" else 40
    res = optimize(objective, start, constraints=cons, restarts=2, steps=steps, method=method, progress=False)
    p = res.params
    assert 0.98 < float(p["x"]) <= 1.0  # pushed against the bound, never beyond
    np.testing.assert_allclose(p["s"], 2 * c / jnp.linalg.norm(c), atol=1e-3)
    np.testing.assert_allclose(p["q"], 4 * w / jnp.sum(w), atol=1e-3)
    np.testing.assert_allclose(p["b"], c / 2, atol=1e-3)
    assert res.history.shape == (steps, 2)
    # every restart's iterates stay feasible
    np.testing.assert_allclose(jnp.linalg.norm(res.restart_params["s"], axis=-1), 2.0, rtol=1e-12)
    np.testing.assert_allclose(jnp.sum(res.restart_params["q"], axis=-1), 4.0, rtol=1e-12)
    assert np.all(np.diff(res.history[:, 0])[-10:] >= -1e-9)  # converged, not oscillating


def test_restart_zero_starts_at_the_given_point():
    res = optimize(lambda p: -jnp.sum((p["x"] - 1.0) ** 2), {"x": jnp.array([0.3, -0.2])}, restarts=4, steps=1,
                   method="adam", learning_rate=1e-9, progress=False)
    np.testing.assert_allclose(res.history[0, 0], -(0.7**2 + 1.2**2), rtol=1e-12)
    assert len(set(np.round(res.history[0], 6))) == 4  # the other restarts start elsewhere


def test_optimal_coupling_for_energy_at_fixed_time_is_analytic():
    # oscillator battery: E_B(tau) = N w0 sin^2(g sqrt(N) tau), maximal at g* = pi / (2 sqrt(N) tau)
    n, tau = 3, 2.0
    m = qb.OscillatorBattery(n, 0.2, 1.0)
    best, res = optimize_model(m, {"g": Box(0.05, 0.8)}, "energy_at", tau=tau, optimizer="lbfgs", restarts=2,
                               steps=25, progress=False)
    np.testing.assert_allclose(best.g, np.pi / (2 * np.sqrt(n) * tau), rtol=1e-6)
    np.testing.assert_allclose(res.value, n, rtol=1e-10)


def test_model_objective_gradient_against_finite_differences():
    m = qb.SpinBattery(2, 0.3, 1.0)
    f = jax.jit(model_objective(m, ["g", "omega0"], {"max_power": 1.0, "ergotropy": 0.5}))
    p = {"g": jnp.asarray(0.3), "omega0": jnp.asarray(1.1)}
    grad = jax.grad(f)(p)
    h = 1e-5
    for k in p:
        up, dn = dict(p), dict(p)
        up[k], dn[k] = p[k] + h, p[k] - h
        np.testing.assert_allclose(grad[k], (f(up) - f(dn)) / (2 * h), rtol=1e-5)
    with pytest.raises(ValueError, match="unknown figure 'power'"):
        model_objective(m, ["g"], "power")


def test_keep_best_and_patience():
    # Adam with a step far too large oscillates about the optimum x = 1: the last iterate is not the
    # best one, keep_best returns the best of the run, and patience stops once the best stalls
    def objective(p):
        return -((p["x"] - 1.0) ** 2)

    last = optimize(objective, {"x": 0.0}, steps=60, learning_rate=0.7, tol=None, progress=False)
    best = optimize(objective, {"x": 0.0}, steps=60, learning_rate=0.7, tol=None, keep_best=True, progress=False)
    assert float(best.value) >= np.max(best.history) and float(best.value) >= float(last.value)
    assert float(best.value) > np.max(last.history[-5:])  # the last steps were worse than the best point
    stalled = optimize(objective, {"x": 0.0}, steps=500, learning_rate=0.7, tol=1e-9, patience=10, keep_best=True,
                       progress=False)
    assert stalled.steps_run < 500
    h = stalled.history[: stalled.steps_run, 0]
    assert h.max() - h[: stalled.steps_run - 10].max() <= 1e-9 * abs(h.max())
    with pytest.raises(ValueError, match="patience"):
        optimize(objective, {"x": 0.0}, tol=None, patience=5, progress=False)


def test_bracketed_root_newton_with_a_bisection_safeguard():
    from qbjax.optimize import bracketed_root

    vg = jax.jit(jax.value_and_grad(lambda x: jnp.cos(x) - x))
    r = bracketed_root(vg, 0.0, 1.0, tol=1e-14)
    assert r["x"] == pytest.approx(0.7390851332151607, abs=1e-14) and r["steps"] <= 8  # |f| <= 1e-14, |f'| > 1.6
    # Newton from 0.9 on atan(x - 0.5) overshoots out of [-10, 10] at once: bisection keeps it inside
    vg = jax.jit(jax.value_and_grad(lambda x: jnp.arctan(x - 0.5)))
    r = bracketed_root(vg, -10.0, 10.0, x0=9.0, tol=1e-13)
    assert r["x"] == pytest.approx(0.5, abs=1e-12)
    assert all(-10.0 <= x <= 10.0 for x, _ in r["history"])
    with pytest.raises(ValueError, match="same sign"):
        bracketed_root(vg, 1.0, 2.0)


def test_restarts_from_given_starts():
    def objective(p):
        return -jnp.sum((p["x"] - 1.0) ** 2)

    res = optimize(objective, {"x": jnp.zeros(2)}, starts=[{"x": [0.0, 0.0]}, {"x": [3.0, -2.0]}], steps=300,
                   learning_rate=0.05, progress=False)
    assert res.restart_values.shape == (2,)
    np.testing.assert_allclose(np.asarray(res.restart_params["x"]), 1.0, atol=1e-3)
    first = optimize(objective, {"x": jnp.zeros(2)}, starts=[{"x": [3.0, -2.0]}], steps=1, learning_rate=1e-9,
                     tol=None, progress=False)
    assert first.history[0, 0] == pytest.approx(-(4.0 + 9.0))  # the first value is that of the given start
