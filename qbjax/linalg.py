"""Dense linear algebra that is safe under ``vmap`` on the CPU.

Why this module exists.  jaxlib 0.10's CPU LAPACK kernels (``eigh``, LU,
triangular and tridiagonal solves, ...) split a *batched* call into chunks,
schedule the chunks on XLA's intra-op thread pool and block the calling
thread until they finish (``ParallelBatchMap`` in
``jaxlib/cpu/lapack_kernels.cc``; later jaxlib releases switched it off in
open-source builds).  The calling thread is usually a worker of that same
pool.  When every worker is inside such a call (two batched ``eigh`` running
concurrently on a 2-core machine, whose pool has two workers), nobody is
left to run the chunks: the compiled program deadlocks, with zero CPU use.
``jax.vmap`` over anything that diagonalises or solves produces exactly
such batched calls (restarts of an optimiser, points of a sweep).

The functions here never hand LAPACK a batch on the CPU: under ``vmap`` they
loop over the batch (``lax.map``) and call the unbatched kernel, which runs
inline on the calling thread.  A batched LAPACK call is itself a loop over
the matrices, so nothing is lost but the chunk parallelism.  On a GPU the
batched kernels are used unchanged.

Derivatives: ``custom_vmap`` is not differentiable in reverse mode, so the
primal kernels sit inside ``custom_jvp`` (``eigh``) or
``lax.custom_linear_solve`` (the solves) whose tangents are plain array
operations; ``grad``, ``jvp`` and ``vmap`` compose in any order.

Use these instead of ``jnp.linalg`` everywhere in qbjax's traced code.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jax.scipy.linalg
from jax.custom_batching import sequential_vmap

__all__ = ["eigh", "eigvalsh", "solve", "lu_solver", "tridiagonal_solver", "tridiagonal_matvec"]


def _sequential_on_cpu(core_ndim: int):
    """Decorator: ``fn(*arrays)``, looping over any batch when tracing for the CPU.

    Both kinds of batch are looped over: a ``vmap`` axis (through
    ``custom_vmap``) and explicit leading axes beyond the ``core_ndim``
    trailing ones (every argument carries the same leading axes).
    """

    def decorate(fn):
        def looped(*args):
            lead = args[0].shape[: args[0].ndim - core_ndim]
            if not lead:
                return fn(*args)
            flat = [x.reshape((-1,) + x.shape[len(lead):]) for x in args]
            out = jax.lax.map(lambda xs: fn(*xs), flat)
            return jax.tree.map(lambda y: y.reshape(lead + y.shape[1:]), out)

        seq = sequential_vmap(looped)

        @functools.wraps(fn)
        def wrapper(*args):
            if jax.default_backend() == "cpu":
                return seq(*args)
            return fn(*args)

        return wrapper

    return decorate


@_sequential_on_cpu(2)
def _eigh_kernel(a):
    return jax.lax.linalg.eigh(a, symmetrize_input=False)


@jax.custom_jvp
def _eigh(a):
    v, w = _eigh_kernel(a)
    return w, v


@_eigh.defjvp
def _eigh_jvp(primals, tangents):
    (a,), (da,) = primals, tangents
    w, v = _eigh(a)
    # first-order perturbation theory (as jax.lax.linalg's eigh JVP)
    vh = jnp.conj(jnp.swapaxes(v, -1, -2))
    m = vh @ da @ v
    n = w.shape[-1]
    eye = jnp.eye(n, dtype=w.dtype)
    f = 1.0 / (eye + w[..., None, :] - w[..., :, None]) - eye
    return (w, v), (jnp.real(jnp.diagonal(m, axis1=-2, axis2=-1)), v @ (f * m))


def eigh(a):
    """``(w, v)`` of a Hermitian matrix (symmetrised first), like ``jnp.linalg.eigh``."""
    a = jnp.asarray(a)
    a = 0.5 * (a + jnp.conj(jnp.swapaxes(a, -1, -2)))
    return _eigh(a)


def eigvalsh(a):
    """Eigenvalues of a Hermitian matrix, ascending, like ``jnp.linalg.eigvalsh``.

    Its derivative involves no eigenvector derivative, so it stays finite when
    eigenvalues are degenerate (a symmetric function of them, an entropy or a
    trace norm, then has a well-defined gradient).
    """
    a = jnp.asarray(a)
    return _eigvalsh(0.5 * (a + jnp.conj(jnp.swapaxes(a, -1, -2))))


@jax.custom_jvp
def _eigvalsh(a):
    return _eigh(a)[0]


@_eigvalsh.defjvp
def _eigvalsh_jvp(primals, tangents):
    (a,), (da,) = primals, tangents
    w, v = _eigh(a)
    return w, jnp.real(jnp.einsum("...ji,...jk,...ki->...i", jnp.conj(v), da, v))


@_sequential_on_cpu(2)
def _lu_kernel(a):
    return jax.scipy.linalg.lu_factor(a)


@_sequential_on_cpu(2)
def _lu_solve_kernel(lu, piv, b):
    return jax.scipy.linalg.lu_solve((lu, piv), b, trans=0)


@_sequential_on_cpu(2)
def _lu_solve_t_kernel(lu, piv, b):
    return jax.scipy.linalg.lu_solve((lu, piv), b, trans=1)


def lu_solver(a):
    """``b -> a^{-1} b`` (``b``: a vector or a matrix of columns), factorised once.

    Differentiable with respect to ``a`` and ``b`` (the factorisation is
    not differentiated: ``lax.custom_linear_solve`` differentiates the
    linear system itself).
    """
    a = jnp.asarray(a)
    lu, piv = _lu_kernel(jax.lax.stop_gradient(a))

    def apply(b):
        return jax.lax.custom_linear_solve(
            lambda x: a @ x, b,
            solve=lambda _, r: _lu_solve_kernel(lu, piv, r),
            transpose_solve=lambda _, r: _lu_solve_t_kernel(lu, piv, r))

    return apply


def solve(a, b):
    """``a^{-1} b`` like ``jnp.linalg.solve`` for a square ``a`` and ``b`` of shape ``(n,)`` or ``(n, k)``."""
    return lu_solver(a)(b)


def tridiagonal_matvec(dl, d, du, x):
    """``T x`` for the tridiagonal ``T`` with sub-, main and super-diagonals ``dl, d, du`` along the last axis.

    ``dl[..., 0]`` and ``du[..., -1]`` are ignored (LAPACK's convention, as
    ``jax.lax.linalg.tridiagonal_solve``); ``x`` has shape ``(..., n)``.
    """
    zero = jnp.zeros_like(x[..., :1])
    below = jnp.concatenate([zero, x[..., :-1]], axis=-1)
    above = jnp.concatenate([x[..., 1:], zero], axis=-1)
    return dl * below + d * x + du * above


@_sequential_on_cpu(1)
def _tridiagonal_kernel(dl, d, du, b):
    return jax.lax.linalg.tridiagonal_solve(dl, d, du, b[..., None])[..., 0]


def tridiagonal_solver(dl, d, du):
    """``b -> T^{-1} b`` for the tridiagonal ``T`` (bands along the last axis, leading axes batched).

    ``b`` has the bands' shape.  Differentiable with respect to the bands
    and ``b``.
    """
    # the transpose of T: sub- and super-diagonals swap (shifted by one place)
    zero = jnp.zeros_like(d[..., :1])
    dl_t = jnp.concatenate([zero, du[..., :-1]], axis=-1)
    du_t = jnp.concatenate([dl[..., 1:], zero], axis=-1)
    kdl, kd, kdu = (jax.lax.stop_gradient(x) for x in (dl, d, du))
    kdl_t, kdu_t = jax.lax.stop_gradient(dl_t), jax.lax.stop_gradient(du_t)

    def apply(b):
        return jax.lax.custom_linear_solve(
            lambda x: tridiagonal_matvec(dl, d, du, x), b,
            solve=lambda _, r: _tridiagonal_kernel(kdl, kd, kdu, r),
            transpose_solve=lambda _, r: _tridiagonal_kernel(kdl_t, kd, kdu_t, r))

    return apply
