"""Matrix-free operators against dense matrices, on every path they take.

:class:`qbjax.representation.MatrixFree` has three ways to apply a sum of
terms: one zero-padded copy with shifted slices when every factor is banded
(bosons, spins, levels), flips of a viewed state for qubit spaces, and
axis-by-axis application otherwise.  Each must equal the dense matrix the
same terms build, to rounding, for real and complex states.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from qbjax import representation as rep
from qbjax.model import term
from qbjax.operators import Boson, Levels, Qubit, Spin

TOL = 1e-12

SPACES = {
    # Dicke: boson x spin, a merged (a + a^+) J_x coupling
    "dicke": ((("a", Boson(9)), ("b", Spin(2))),
              (term(1.0, "a.n"), term(1.0, "b.jz"), term(0.7, "a.a", "b.jx"), term(0.7, "a.adag", "b.jx"))),
    # two large spins (spin battery of seed 000), with complex J_y and products on one dof
    "spins": ((("a", Spin(3)), ("b", Spin(1.5))),
              (term(0.3, "a.jx", "b.jx"), term(0.2, "a.jy", "b.jy"), term(0.5, "a.jz", "a.jz"),
               term(0.1 + 0.2j, "a.jp", "b.jm"), term(0.1 - 0.2j, "a.jm", "b.jp"))),
    # a boson, a three-level system and a qubit: mixed sizes, a single-entry |k><l|
    "mixed": ((("c", Boson(6)), ("e", Levels(3)), ("q", Qubit())),
              (term(0.4, "c.a", "e.0,2"), term(0.4, "c.adag", "e.2,0"), term(1.1, "q.sx", "c.x"),
               term(0.25, "e.1,1"), term(0.6, "q.sz"))),
    # qubits only: the flip path
    "qubits": ((("q0", Qubit()), ("q1", Qubit()), ("q2", Qubit())),
               (term(0.5, "q0.sx", "q1.sx"), term(0.5, "q1.sy", "q2.sy"), term(0.3, "q2.sz"),
                term(0.2, "q0.sz", "q2.sz"))),
}


def _dense(space, terms):
    b = rep.Basis(space, rep.basis_indices(tuple(d.dim for _, d in space), None, None),
                  (tuple(d.dim for _, d in space), None, None))
    return np.asarray(rep.dense(space, terms, b))


@pytest.mark.parametrize("name", sorted(SPACES))
def test_matrix_free_equals_dense(name):
    space, terms = SPACES[name]
    dims = tuple(d.dim for _, d in space)
    H = _dense(space, terms)
    op = rep.MatrixFree(space, terms)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(dims) + 1j * rng.standard_normal(dims)
    got = np.asarray(op(jnp.asarray(x))).reshape(-1)
    want = H @ x.reshape(-1)
    assert np.max(np.abs(got - want)) <= TOL * np.max(np.abs(want))
    if rep.is_real(space, terms):
        xr = rng.standard_normal(dims)
        got = np.asarray(op(jnp.asarray(xr)))
        assert not np.iscomplexobj(got)
        assert np.max(np.abs(got.reshape(-1) - (H @ xr.reshape(-1)).real)) <= TOL * np.max(np.abs(H @ xr.reshape(-1)))


def test_banded_path_choice():
    """The padded-slice path serves banded non-qubit spaces and declines qubit-only ones
    and spaces whose padding would grow the state too much."""
    space, terms = SPACES["dicke"]
    assert rep.banded_plan(space, terms) is not None
    space, terms = SPACES["qubits"]
    assert rep.banded_plan(space, terms) is None
    # six qubits and a small boson: padding every qubit axis would grow the state 2^6-fold
    space = (("c", Boson(3)),) + tuple((f"q{i}", Qubit()) for i in range(6))
    terms = tuple(term(0.5, "c.a", f"q{i}.sx") for i in range(6))
    assert rep.banded_plan(space, terms) is None
    H = _dense(space, terms)
    x = np.random.default_rng(2).standard_normal(tuple(d.dim for _, d in space))
    got = np.asarray(rep.MatrixFree(space, terms)(jnp.asarray(x + 0j))).reshape(-1)
    assert np.max(np.abs(got - H @ x.reshape(-1))) <= TOL * np.max(np.abs(H @ x.reshape(-1)))


@pytest.mark.parametrize("cutoff,j,value", [(9, 2, 0), (9, 2, 1), (8, 1.5, 1), (10, 0.5, 0)])
def test_parity_layout_operator(cutoff, j, value):
    """The compact parity-sector operator equals the full one restricted to the sector
    (odd and even axis lengths, both sectors), and the layout round-trips."""
    from qbjax.model import Charge

    space = (("a", Boson(cutoff)), ("b", Spin(j)))
    terms = (term(0.7, "a.a", "b.jx"), term(0.7, "a.adag", "b.jx"), term(0.3, "a.n"), term(0.4, "a.x", "b.jx"),
             term(0.5, "a.n", "b.jz"), term(0.2, "a.a", "a.a"), term(0.2, "a.adag", "a.adag"))
    dims = tuple(d.dim for _, d in space)
    layout = rep.ParityLayout.of(dims, Charge((1, 1), modulus=2), value)
    assert layout.shape == (2, -(-cutoff // 2), -(-dims[1] // 2))
    rng = np.random.default_rng(3)
    x = rng.standard_normal(dims) + 1j * rng.standard_normal(dims)
    k = np.add.outer(np.arange(dims[0]), np.arange(dims[1]))
    x = np.where(k % 2 == value, x, 0.0)  # a state in the sector
    y = layout.compact(jnp.asarray(x))
    assert np.array_equal(np.asarray(layout.expand(y)), x)
    op = rep.compact_operator(space, terms, layout)
    want = layout.compact(rep.MatrixFree(space, terms)(jnp.asarray(x)))
    got = op(y)
    assert np.max(np.abs(np.asarray(got - want))) <= TOL * np.max(np.abs(np.asarray(want)))
    # a parity-changing term (a J_z) has no compact form
    assert rep.compact_operator(space, (term(1.0, "a.a", "b.jz"),), layout) is None
