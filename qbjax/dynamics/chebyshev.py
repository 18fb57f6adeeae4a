"""Chebyshev propagation with dense output: exact closed dynamics for large spaces.

For a time-independent ``H`` with spectrum inside ``[c - r, c + r]``::

    exp(-i H tau) = exp(-i c tau) sum_k (2 - delta_k0) (-i)^k J_k(r tau) T_k(Ht),   Ht = (H - c)/r

The Chebyshev vectors ``phi_k = T_k(Ht) psi`` obey ``phi_{k+1} = 2 Ht phi_k - phi_{k-1}``
and do not depend on ``tau``: one chunk of ``K`` matrix-vector products serves
every save time inside it, each as a linear combination of the stored
``phi_k``.  ``J_k(z)`` decays faster than exponentially once ``k > z``, so
truncating where ``|J_k| < 1e-17`` makes the expansion exact to machine
precision (no step-size control, no error growth beyond rounding).

``H psi`` and ``H^2 psi`` at the save times come free: ``Ht phi_k = (phi_{k+1} +
phi_{k-1})/2`` shifts coefficients instead of costing products.

The bounds ``c, r`` are numbers (any valid enclosure works; the expansion is
exact for each), so gradients flow through ``H`` alone.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special as sps

#: Recursion steps per loop iteration.  XLA's CPU loops pay a fixed cost per
#: iteration (and per stacked output) that is comparable to a product on a
#: ~10^4-entry state: two steps per iteration took 99 products of a 20-spin
#: Dicke battery (cutoff 330) from 12.2 ms to 6.8 ms; four gained nothing more.
_UNROLL = 2


@functools.lru_cache(maxsize=4096)
def chebyshev_terms(z: float, tol: float = 1e-17) -> int:
    """Number of terms ``K`` with ``|J_k(z)| < tol`` for every ``k >= K``."""
    k = int(math.ceil(z)) + 1
    while abs(sps.jv(k, z)) > tol or abs(sps.jv(k + 1, z)) > tol:
        k += 1
    return k + 1


def chebyshev_coefficients(c: float, r: float, taus: np.ndarray, K: int, phase: bool = True):
    """Matrices ``A, A1, A2`` (``(len(taus), K + 3)``) giving ``psi, Ht psi, Ht^2 psi`` from ``phi_0..phi_{K+2}``.

    With ``phase=False`` the global phase ``exp(-i c tau)`` is left out (the
    states are ``exp(i c tau) psi(tau)``: every expectation value is the
    same).  Each column of ``A`` and ``A2`` is then real for even ``k`` and
    imaginary for odd ``k``, and the reverse for ``A1``, with exact zeros:
    :func:`chebyshev_moments` uses that to combine real vectors with real
    matrix products.
    """
    k = np.arange(K + 3)
    # (-i)^k exactly (a complex power leaves ~1e-16 where the parts vanish)
    unit = np.array([1.0, -1j, -1.0, 1j])[k % 4]
    a = np.where(k == 0, 1.0, 2.0) * unit * sps.jv(k[None, :], r * taus[:, None])
    a[:, K + 1 :] = 0.0
    if phase:
        a = a * np.exp(-1j * c * taus)[:, None]
    def times_ht(x):
        # coefficients of Ht psi from those of psi: Ht phi_0 = phi_1,
        # Ht phi_k = (phi_{k+1} + phi_{k-1}) / 2 (k = 1 .. K + 1; the last column is zero)
        out = np.zeros_like(x)
        out[:, 1] += x[:, 0]
        out[:, 2 : K + 3] += 0.5 * x[:, 1 : K + 2]
        out[:, 0 : K + 1] += 0.5 * x[:, 1 : K + 2]
        return out

    a1 = times_ht(a)
    return a, a1, times_ht(a1)


def evaluation_costs(S: int, K3: int, op_terms: int, real: bool = False,
                     h_ops: int | None = None, paired: bool = False) -> dict[str, float]:
    """Rough cost per state entry of one chunk in each evaluation mode.

    ``"states"`` forms ``psi, H psi, H^2 psi`` at each of the ``S`` save
    times (``3 S K3`` multiply-adds) and applies ``B`` (or ``C``) twice per
    save time; ``"moments"`` builds two ``K3 x K3`` Gram matrices
    (``2 K3^2``, at matrix-multiply speed, counted at a third) and applies
    the operator once per Chebyshev vector.  Many save times per chunk (a
    spin chain's 200 in one chunk) favour moments; long windows with sparse
    saves (a Dicke sweep's 8 per chunk) favour states.

    Units are those of a complex chunk.  With ``real`` (a real ``H`` and a
    real chunk-initial state: real Chebyshev vectors) a Gram matrix costs a
    quarter (one real product instead of a complex one), and the states
    (complex coefficients times real vectors) and operator applications half.

    ``"states_matvec"`` (given ``h_ops``, the cost of one product in units
    of ``3``) forms only ``psi`` from the expansion and ``H psi``,
    ``H^2 psi`` by two products per save time: cheaper than two more
    combinations of ``K3`` vectors when ``H`` is sparse (a Dicke battery).

    With ``paired`` (a real ``H``, ``B`` and ``C``: the states modes run in
    real arithmetic, :func:`_real_states`) a combination takes half the
    arithmetic of a complex one, but end to end it costs more than that:
    the stored vectors are written by the scan and read back by the product
    from beyond the cache.  The factors (1.5 complex chunk, 0.75 real chunk)
    are fitted to a 20-spin Dicke battery with a 330-photon cavity, where
    they pick 5-10 save times per chunk; the measured optimum lies there
    (0.08-0.10 s per trajectory, against 0.14-0.17 s at the 40-50 save
    times that the bare arithmetic count prefers).
    """
    gram, comb, apply = (0.25, 0.5, 0.5) if real else (1.0, 1.0, 1.0)
    if paired:
        comb = 0.75 if real else 1.5
    costs = {"states": S * (3 * K3 * comb + 2 * 3 * op_terms * apply),
             "moments": 2 * K3 * K3 / 3 * gram + K3 * 3 * op_terms * apply}
    if h_ops is not None:
        # psi from the expansion, H psi and H^2 psi by two products (complex: the
        # save-time states are complex even in a real chunk)
        costs["states_matvec"] = S * (K3 * comb + 2 * 3 * h_ops + 2 * 3 * op_terms)
    return costs


def quadratic_moments(A, hA, h2A, V, BV, masks=()):
    """``<B>``, ``d<B>/dt``, ``d^2<B>/dt^2``, ``var B`` and mask weights as quadratic forms.

    The states are ``psi = A V``, ``H psi = hA V``, ``H^2 psi = h2A V`` (rows of
    coefficients over the basis rows of ``V``), and ``BV`` is ``B`` applied to
    each basis vector; the Gram matrices ``M1 = V^* BV^T`` and ``M2 = BV^* BV^T``
    give every quantity at every save time.
    """
    def quad(u, M, v):
        return jnp.einsum("sk,kl,sl->s", jnp.conj(u), M, v)

    M1 = jnp.conj(V) @ BV.T
    M2 = jnp.conj(BV) @ BV.T
    E = jnp.real(quad(A, M1, A))
    dE = -2 * jnp.imag(quad(hA, M1, A))
    d2E = 2 * jnp.real(quad(hA, M1, hA)) - 2 * jnp.real(quad(h2A, M1, A))
    var = jnp.real(quad(A, M2, A)) - E**2
    if masks:
        w = jnp.stack([jnp.real(quad(A, jnp.conj(V) @ (m.reshape(-1) * V).T, A)) for m in masks], axis=-1)
    else:
        w = jnp.zeros((A.shape[0], 0))
    return E, dE, d2E, var, w


def chebyshev_moments(apply_H, apply_B, psi0, n_chunks: int, coeffs, c: float, r: float, masks=(),
                      apply_C=None, mode: str = "moments", real_operators: bool = False):
    """``<B>``, ``d<B>/dt``, ``d^2<B>/dt^2``, ``var B`` on a uniform grid.

    Two ways to evaluate a chunk (``mode``, see :func:`evaluation_costs`):

    ``"moments"``: every quantity is a quadratic form in the expansion
    coefficients.  With ``psi(t) = sum_k a_k(t) phi_k`` and the chunk's
    moment matrices ``M1 = <phi_k|B|phi_l>``, ``M2 = <B phi_k|B phi_l>``::

        <B>(t) = a^+ M1 a,   <B^2>(t) = a^+ M2 a,   <H psi|B psi> = h^+ M1 a, ...

    where ``h`` and ``h2`` are the coefficients of ``H psi`` and ``H^2 psi``
    (shifted Chebyshev coefficients, no extra products).  A chunk costs its
    ``K`` products plus two ``K x K`` Gram matrices (BLAS), however many
    save times it holds, and no state is formed at the save times.

    ``"states"``: ``psi, H psi, H^2 psi`` at the chunk's save times are formed
    as linear combinations of the ``phi_k`` (one stacked product) and the
    expectation values taken directly.  ``"states_matvec"``: ``psi`` as a
    combination, ``H psi`` and ``H^2 psi`` by two products per save time.

    A real ``H`` and a real initial state keep the first chunk's vectors
    real (half the arithmetic and memory of complex ones).

    Arguments:
        apply_H: ``psi -> H psi`` on state tensors.
        apply_B: ``psi -> B psi`` (any Hermitian ``B``; a diagonal is one multiply).
        psi0: initial state tensor (complex, or real when ``H`` is real).
        n_chunks: chunks of ``S`` save intervals each (``S = coeffs[0].shape[0]``).
        coeffs: ``(A, A1, A2)`` from :func:`chebyshev_coefficients`.
        c, r: centre and half-width of the spectral enclosure.
        masks: real tensors; returns ``sum m |psi|^2`` per save time for each.
        apply_C: optional ``C = H - B``; then ``B x = H x - C x`` with ``H x``
            taken from the expansion (neighbouring Chebyshev vectors, or the
            ``H psi`` it gives): cheaper when ``B`` has many more terms than
            ``C``, as for a spin chain's interactions.
        mode: ``"moments"``, ``"states"`` or ``"states_matvec"``.
        real_operators: ``H``, ``B`` and ``C`` are real matrices.  A complex
            state's real and imaginary parts are then propagated as a pair of
            real tensors: on a CPU, XLA's complex elementwise arithmetic costs
            about four times two real passes (a Dicke battery's product:
            78 us complex, 18 us as a real pair).

    Returns:
        ``(E, dE, d2E, var, weights)`` at ``1 + n_chunks * S`` times (``t = 0`` first),
        and ``growth = max_k |phi_k|^2 / |phi_0|^2`` over all chunks: at most 1
        (up to rounding) exactly when ``[c - r, c + r]`` encloses the spectrum
        the state sees; larger means the enclosure was too narrow.
        With ``z = <H psi|B psi>``: ``dE = -2 Im z``, ``d2E = 2 <H psi|B|H psi> - 2 Re <H^2 psi|B psi>``.
    """
    if mode not in ("moments", "states", "states_matvec"):
        raise ValueError(f"mode must be 'moments', 'states' or 'states_matvec', got {mode!r}")
    A, A1, A2 = (jnp.asarray(x) for x in coeffs)
    S, K3 = A.shape
    shape = psi0.shape
    # coefficients of psi, H psi and H^2 psi on phi_0 .. phi_{K+2}
    hA = c * A + r * A1
    h2A = c * c * A + 2 * c * r * A1 + r * r * A2
    dot = lambda x, y: jnp.sum(jnp.conj(x) * y)  # noqa: E731

    def ht_real(x):
        return (apply_H(x) - c * x) / r

    def paired(psi):
        return real_operators and jnp.iscomplexobj(psi)

    def to_pair(x):
        return jnp.stack([jnp.real(x), jnp.imag(x)])

    def from_pairs(P):
        # (K, 2, size) real -> (K, size) complex
        return jax.lax.complex(P[:, 0], P[:, 1])

    def complex_op(op):
        # a real operator on a complex tensor as two real passes
        if not real_operators:
            return op
        return lambda x: jax.lax.complex(op(jnp.real(x)), op(jnp.imag(x))) if jnp.iscomplexobj(x) else op(x)

    ht_pair = jax.vmap(ht_real)
    apply_Hc, apply_Bc = complex_op(apply_H), complex_op(apply_B)
    apply_Cc = None if apply_C is None else complex_op(apply_C)

    def vectors(psi):
        pair = paired(psi)
        ht = ht_pair if pair else ht_real
        p0 = to_pair(psi) if pair else psi

        # T_{-1} = T_1: starting from (phi_{-1}, phi_0) = (Ht psi, psi), the
        # recursion's first step gives phi_1 = Ht psi, and the scan emits
        # phi_0 .. phi_{K3-1} straight into its output (no concatenated copy)
        def gen(carry, _):
            q0, q1 = carry
            q2 = 2 * ht(q1) - q0
            return (q1, q2), q1

        _, out = jax.lax.scan(gen, (ht(p0), p0), None, length=K3, unroll=_UNROLL)
        return from_pairs(out.reshape(K3, 2, -1)) if pair else out.reshape(K3, -1)

    def batched(op, X):
        # a few vectors at a time: vmapped over all of them, XLA's temporaries for
        # a 20-spin chain's 40 flip groups reached 8 GB
        out = jax.lax.map(op, X.reshape((X.shape[0],) + shape), batch_size=min(4, X.shape[0]))
        return out.reshape(X.shape[0], -1)

    def growth_of(Phi):
        # |T_k(Ht) psi| <= |psi| for all k exactly when the enclosure holds the spectrum psi sees
        norms = jnp.sum(jnp.abs(Phi) ** 2, axis=1)
        return jnp.broadcast_to(jnp.max(norms) / norms[0], (S,))

    def moments(psi, hpsi, h2psi):
        if apply_C is None:
            Bp, BHp = apply_Bc(psi), apply_Bc(hpsi)
        else:
            Bp, BHp = hpsi - apply_Cc(psi), h2psi - apply_Cc(hpsi)
        E = jnp.real(dot(psi, Bp))
        dE = -2 * jnp.imag(dot(hpsi, Bp))
        d2E = 2 * jnp.real(dot(hpsi, BHp)) - 2 * jnp.real(dot(h2psi, Bp))
        var = jnp.real(dot(Bp, Bp)) - E**2
        w = jnp.stack([jnp.sum(m * jnp.abs(psi) ** 2) for m in masks]) if masks else jnp.zeros(0)
        return E, dE, d2E, var, w

    def chunk_states(psi):
        Phi = vectors(psi)
        stacked = jnp.concatenate([A, A1, A2], axis=0)
        combos = (stacked @ Phi).reshape((3, S) + shape)
        psis, hts, ht2s = combos[0], combos[1], combos[2]
        hpsis = c * psis + r * hts
        h2psis = c * c * psis + 2 * c * r * hts + r * r * ht2s
        out = jax.vmap(moments)(psis, hpsis, h2psis)
        return psis[-1], (*out, growth_of(Phi))

    def chunk_states_matvec(psi):
        Phi = vectors(psi)
        psis = (A @ Phi).reshape((S,) + shape)
        flat = psis.reshape(S, -1)
        hpsis = batched(apply_Hc, flat)
        h2psis = batched(apply_Hc, hpsis)
        out = jax.vmap(moments)(psis, hpsis.reshape(psis.shape), h2psis.reshape(psis.shape))
        return psis[-1], (*out, growth_of(Phi))

    def chunk_moments(psi):
        # phi_k and B phi_k in one pass (2 K3 stored vectors): with C = H - B,
        # B phi_k = c phi_k + r Ht phi_k - C phi_k, and Ht phi_k comes from the recursion
        pair = paired(psi)
        ht = ht_pair if pair else ht_real
        apply_b = jax.vmap(apply_B) if pair else apply_B
        apply_c = None if apply_C is None else (jax.vmap(apply_C) if pair else apply_C)
        flat = (lambda x: x.reshape(2, -1)) if pair else (lambda x: x.reshape(-1))

        def b_of(p, htp):
            return apply_b(p) if apply_c is None else c * p + r * htp - apply_c(p)

        def gen(carry, _):
            q0, q1 = carry
            h = ht(q1)
            q2 = 2 * h - q0
            return (q1, q2), (flat(q1), flat(b_of(q1, h)))

        p0 = to_pair(psi) if pair else psi
        # from (phi_{-1}, phi_0) = (Ht psi, psi), as in vectors(): no concatenated copies
        _, (Phi, BPhi) = jax.lax.scan(gen, (ht(p0), p0), None, length=K3, unroll=_UNROLL)
        if pair:
            Phi, BPhi = from_pairs(Phi), from_pairs(BPhi)
        moments_ = quadratic_moments(A, hA, h2A, Phi, BPhi, masks)
        return (A[-1] @ Phi).reshape(shape), (*moments_, growth_of(Phi))

    if real_operators and mode != "moments":
        return _real_states(apply_H, apply_B, apply_C, psi0, n_chunks, (A, A1, A2), c, r, masks, mode)
    chunk = {"moments": chunk_moments, "states": chunk_states, "states_matvec": chunk_states_matvec}[mode]
    hpsi = apply_Hc(psi0)
    first = (*moments(psi0, hpsi, apply_Hc(hpsi)), jnp.ones(()))
    if jnp.iscomplexobj(psi0):
        _, outs = jax.lax.scan(lambda p, _: chunk(p), psi0, None, length=n_chunks)
    else:
        # the first chunk in real arithmetic, the rest (complex states) in one scan
        psi, out0 = chunk(psi0)
        outs = jax.tree.map(lambda o: o[None], out0)
        if n_chunks > 1:
            _, more = jax.lax.scan(lambda p, _: chunk(p), psi, None, length=n_chunks - 1)
            outs = jax.tree.map(lambda o, m: jnp.concatenate([o, m]), outs, more)
    *series, growth = (jnp.concatenate([f[None], o.reshape((o.shape[0] * o.shape[1],) + o.shape[2:])])
                       for f, o in zip(first, outs, strict=True))
    return (*series, jnp.max(growth))


def _parity_split(M):
    """Real matrices giving ``Re`` and ``Im`` of ``M Phi`` from the stacks ``P`` and ``Q``.

    With ``phi_k = U_k + i V_k``, ``P_k`` is ``U_k`` for even ``k`` and ``V_k``
    for odd ``k``, ``Q_k`` the other part.  Then ``Re(M Phi) = cP_re P + cQ_re Q``
    and ``Im(M Phi) = cP_im P + cQ_im Q``; for a phase-free coefficient matrix
    two of the four vanish exactly (:func:`chebyshev_coefficients`).
    """
    even = (jnp.arange(M.shape[1]) % 2 == 0)[None, :]
    Mr, Mi = jnp.real(M), jnp.imag(M)
    return {"P_re": jnp.where(even, Mr, -Mi), "Q_re": jnp.where(even, -Mi, Mr),
            "P_im": jnp.where(even, Mi, Mr), "Q_im": jnp.where(even, Mr, Mi)}


def _real_states(apply_H, apply_B, apply_C, psi0, n_chunks, coeffs, c, r, masks, mode):
    """The ``"states"`` modes for real ``H``, ``B`` (and ``C``) in real arithmetic throughout.

    The state is carried as the pair ``(Re psi, Im psi)``.  A chunk's scan
    takes two recursion steps per iteration and emits the stacks ``P`` and
    ``Q`` (:func:`_parity_split`), so that with phase-free coefficients
    (``Re``, ``Im`` of ``A`` each touch one parity) the save-time states are
    two real matrix products, ``Re psi = cP P`` and ``Im psi = cQ Q``: half the
    arithmetic of a complex product, and no complex temporaries (XLA's CPU
    complex arithmetic costs about twice two real passes).  The first chunk
    from a real state emits the even and odd vectors alone (``V = 0``).

    The coefficients must be phase free (``chebyshev_coefficients(...,
    phase=False)``): a column with both parts nonzero would be dropped here.
    """
    A, A1, A2 = coeffs
    S, K3 = A.shape
    shape = psi0.shape
    K3e = K3 + K3 % 2  # an even number of vectors: one more (zero-weight) product at most
    pad = lambda M: jnp.pad(M, ((0, 0), (0, K3e - K3)))  # noqa: E731
    mats = [pad(A)] if mode == "states_matvec" else [pad(A), pad(A1), pad(A2)]
    split = [_parity_split(M) for M in mats]
    # rows giving (Re psi, Ht psi, Ht^2 psi) from P, and their other parts from Q:
    # A and A2 are real on even k (Re from P), A1 imaginary there (Re from Q)
    CP = jnp.concatenate([sp["P_re"] if i != 1 else sp["P_im"] for i, sp in enumerate(split)])
    CQ = jnp.concatenate([sp["Q_im"] if i != 1 else sp["Q_re"] for i, sp in enumerate(split)])
    ht1 = lambda x: (apply_H(x) - c * x) / r  # noqa: E731
    ht_pair = jax.vmap(ht1)
    # operators on (Re, Im) pairs
    apply_Hp, apply_Bp = jax.vmap(apply_H), jax.vmap(apply_B)
    apply_Cp = None if apply_C is None else jax.vmap(apply_C)

    def moments(x, hx, h2x):
        # x, hx, h2x: (2, *shape) pairs of psi, H psi, H^2 psi
        if apply_Cp is None:
            bx, bhx = apply_Bp(x), apply_Bp(hx)
        else:
            bx, bhx = hx - apply_Cp(x), h2x - apply_Cp(hx)
        E = jnp.sum(x * bx)
        dE = -2 * (jnp.sum(hx[0] * bx[1]) - jnp.sum(hx[1] * bx[0]))
        d2E = 2 * jnp.sum(hx * bhx) - 2 * jnp.sum(h2x * bx)
        var = jnp.sum(bx * bx) - E**2
        w = jnp.stack([jnp.sum(m * (x[0] ** 2 + x[1] ** 2)) for m in masks]) if masks else jnp.zeros(0)
        return E, dE, d2E, var, w

    def evaluate(re, im):
        # re, im: (rows, size) real parts of the stacked combinations
        # P gave Re(A), Im(A1), Re(A2); Q the other parts
        rows = [(re, im), (im, re), (re, im)]
        parts = [jnp.stack([a[i * S:(i + 1) * S], b[i * S:(i + 1) * S]], axis=1).reshape((S, 2) + shape)
                 for i, (a, b) in zip(range(len(mats)), rows)]
        x = parts[0]
        if mode == "states_matvec":
            hx = jax.vmap(apply_Hp)(x)
            h2x = jax.vmap(apply_Hp)(hx)
        else:
            hx = c * x + r * parts[1]
            h2x = c * c * x + 2 * c * r * parts[1] + r * r * parts[2]
        return x[-1], jax.vmap(moments)(x, hx, h2x)

    def chunk_real(psi):
        def gen(carry, _):
            q0, q1 = carry
            q2 = 2 * ht1(q1) - q0
            return (q2, 2 * ht1(q2) - q1), (q1.reshape(-1), q2.reshape(-1))

        _, (Ev, Od) = jax.lax.scan(gen, (ht1(psi), psi), None, length=K3e // 2)
        # P = (U_0, 0, U_2, 0, ...), Q = (0, U_1, 0, U_3, ...)
        re, im = CP[:, 0::2] @ Ev, CQ[:, 1::2] @ Od
        norms = jnp.concatenate([jnp.sum(Ev**2, axis=1), jnp.sum(Od**2, axis=1)])
        last, out = evaluate(re, im)
        return last, (*out, jnp.broadcast_to(jnp.max(norms) / norms[0], (S,)))

    def chunk_pair(p):
        def gen(carry, _):
            q0, q1 = carry
            q2 = 2 * ht_pair(q1) - q0
            # P gets U_k, V_{k+1}; Q gets V_k, U_{k+1}
            return (q2, 2 * ht_pair(q2) - q1), (jnp.stack([q1[0], q2[1]]).reshape(2, -1),
                                                jnp.stack([q1[1], q2[0]]).reshape(2, -1))

        _, (P, Q) = jax.lax.scan(gen, (ht_pair(p), p), None, length=K3e // 2)
        P, Q = P.reshape(K3e, -1), Q.reshape(K3e, -1)
        re, im = CP @ P, CQ @ Q
        norms = jnp.sum(P**2, axis=1) + jnp.sum(Q**2, axis=1)
        last, out = evaluate(re, im)
        return last, (*out, jnp.broadcast_to(jnp.max(norms) / norms[0], (S,)))

    if jnp.iscomplexobj(psi0):
        pair0 = jnp.stack([jnp.real(psi0), jnp.imag(psi0)])
        first = moments(pair0, apply_Hp(pair0), apply_Hp(apply_Hp(pair0)))
        _, outs = jax.lax.scan(lambda p, _: chunk_pair(p), pair0, None, length=n_chunks)
    else:
        h = apply_H(psi0)
        zero = jnp.zeros_like(psi0)
        pair = lambda x: jnp.stack([x, zero])  # noqa: E731
        first = moments(pair(psi0), pair(h), pair(apply_H(h)))
        p, out0 = chunk_real(psi0)
        outs = jax.tree.map(lambda o: o[None], out0)
        if n_chunks > 1:
            _, more = jax.lax.scan(lambda q, _: chunk_pair(q), p, None, length=n_chunks - 1)
            outs = jax.tree.map(lambda o, m: jnp.concatenate([o, m]), outs, more)
    first = (*first, jnp.ones(()))
    *series, growth = (jnp.concatenate([f[None], o.reshape((o.shape[0] * o.shape[1],) + o.shape[2:])])
                       for f, o in zip(first, outs, strict=True))
    return (*series, jnp.max(growth))


def chunk_plan(n: int, dt: float, c: float, r: float, size: int, h_ops: int, eval_ops: int, *, real: bool,
               max_argument: float = 250.0, memory: float = 2**32, loop_overhead: float = 1.5e5,
               coeff_cost: float = 2.0e4, coeff_max_size: int = 2**14):
    """The cheapest chunking of a Chebyshev run: ``(coeffs, n_chunks, mode, cost)`` (numbers only).

    A uniform grid of ``n`` intervals of ``dt``, the spectral enclosure
    ``[c - r, c + r]``, a state of ``size`` entries, ``h_ops`` products per
    ``H`` application and ``eval_ops`` per evaluation of the observable.
    Each chunk of ``s`` save intervals (``s`` divides ``n``, ``r s dt`` at most
    ``max_argument``) costs its recursion, loop overhead (``loop_overhead``
    state-entry operations per step), the evaluation (``"moments"``,
    ``"states"`` or ``"states_matvec"``, :func:`evaluation_costs`) and, for
    small states, the host's Bessel coefficients; chunks whose stored vectors
    exceed ``memory`` bytes are skipped.  ``real``: a real ``H`` keeps the
    first chunk in real arithmetic (a basis initial state).
    """
    best = None
    for s in range(1, n + 1):
        if n % s or r * s * dt > max(max_argument, r * dt):
            continue
        # terms rounded up to a multiple of 8: nearby parameters often share one
        # compiled shape, and the extra terms only add coefficients below 1e-17
        K3 = 8 * math.ceil(chebyshev_terms(r * s * dt) / 8) + 3
        # bytes per entry: real vectors when the whole run is one real chunk
        entry = 8 if real and s == n else 16
        need = {"moments": (2 * K3 + 8) * size * entry, "states": (K3 + 5 * s + 8) * size * entry}
        need["states_matvec"] = need["states"]
        first = evaluation_costs(s, K3, eval_ops, real=real, h_ops=h_ops, paired=real)
        for mode, ops in evaluation_costs(s, K3, eval_ops, h_ops=h_ops, paired=real).items():
            if need[mode] > memory and s > 1:
                continue
            loop = K3 * loop_overhead / size
            # moments: ~6 quadratic forms of S x K3^2 per chunk (at matrix-product speed), whatever the
            # state size: they decide small states (a 10-spin Dicke sector of 825 entries: 0.044 s with
            # moments at S = 100, 0.015 s by states)
            quad = 8 * s * K3 * K3 / size if mode == "moments" else 0.0
            coef = coeff_cost * s * K3 / size if size <= coeff_max_size else 0.0
            cost = (n // s) * (K3 * 3 * h_ops + loop + ops + quad) + coef
            if real:  # the first chunk at real-arithmetic cost
                cost -= K3 * 3 * h_ops / 2 + ops - first[mode]
            if best is None or cost < best[0]:
                best = (cost, s, K3 - 3, mode)
    cost, s, K, mode = best
    taus = dt * np.arange(1, s + 1)
    # phase free: observables do not see exp(-i c t), and real H then combines in real arithmetic
    return chebyshev_coefficients(c, r, taus, K, phase=False), n // s, mode, cost


#: Miller's backward recurrence for ``J_0 .. J_K`` starts this many orders above ``K``,
#: and rescales its values whenever they exceed ``_MILLER_BIG``.
_MILLER_EXTRA, _MILLER_BIG = 48, 1e200


def bessel_sequence(z, K: int):
    """``J_0(z) .. J_K(z)`` (shape ``z.shape + (K + 1,)``) for ``z >= 0``, traceable (Miller's algorithm).

    The recurrence ``J_{k-1} = (2k/z) J_k - J_{k+1}`` is run downwards from
    order ``M = K + 48`` (where ``J_M`` is negligible whenever ``J_k < 1e-17``
    for ``k >= K``, which is how :func:`chebyshev_terms` picks ``K``), the
    values are rescaled as they grow (no overflow for small ``z``) and
    normalised by ``J_0 + 2 sum_k J_2k = 1``.  Used where the arguments are
    traced (a sweep's couplings); :func:`chebyshev_coefficients` uses scipy.
    ``z < 1e-12`` gives ``(1, z/2, 0, ...)`` (the next term is below 1e-25).
    """
    z = jnp.asarray(z, jnp.float64)
    M = K + _MILLER_EXTRA
    tiny = z < 1e-12
    zs = jnp.where(tiny, 1.0, z)

    def step(carry, k):
        f1, f0, count = carry  # f_{k+1}, f_k
        f = (2.0 * k / zs) * f0 - f1
        big = jnp.abs(f) > _MILLER_BIG
        scale = jnp.where(big, 1.0 / _MILLER_BIG, 1.0)
        count = count + big.astype(jnp.int32)
        return (f0 * scale, f * scale, count), (f * scale, count)

    init = (jnp.zeros_like(zs), jnp.full_like(zs, 1e-30), jnp.zeros(zs.shape, jnp.int32))
    (_, _, final), (vals, counts) = jax.lax.scan(step, init, jnp.arange(M, 0, -1, dtype=jnp.float64))
    # vals[i] is f_{M-1-i}: reverse to orders 0 .. M-1; f_M itself is negligible
    vals, counts = vals[::-1], counts[::-1]
    # values written before a later rescaling are too large by _MILLER_BIG per rescaling since
    lag = final[None] - counts
    vals = jnp.where(lag == 0, vals, jnp.where(lag == 1, vals / _MILLER_BIG, 0.0))
    norm = vals[0] + 2.0 * jnp.sum(vals[2::2], axis=0)
    J = jnp.moveaxis(vals[: K + 1] / norm, 0, -1)
    k = jnp.arange(K + 1)
    small = jnp.where(k == 0, 1.0, jnp.where(k == 1, 0.5 * z[..., None], 0.0))
    return jnp.where(tiny[..., None], small, J)


def traced_coefficients(r, taus, K: int):
    """:func:`chebyshev_coefficients` with ``phase=False`` for a traced half-width ``r`` and times ``taus``."""
    k = np.arange(K + 3)
    unit = np.array([1.0, -1j, -1.0, 1j])[k % 4] * np.where(k == 0, 1.0, 2.0) * (k <= K)
    J = bessel_sequence(r * taus, K + 2)
    a = J * jnp.asarray(unit)

    def times_ht(x):
        out = jnp.zeros_like(x)
        out = out.at[:, 1].add(x[:, 0])
        out = out.at[:, 2: K + 3].add(0.5 * x[:, 1: K + 2])
        return out.at[:, 0: K + 1].add(0.5 * x[:, 1: K + 2])

    a1 = times_ht(a)
    return a, a1, times_ht(a1)


def chebyshev_state(apply_H, psi0, c, r, t, K: int):
    """``exp(-i H t) psi0`` by ``K`` Chebyshev terms (``r t`` at most the plan's argument), traceable in ``t``, ``c``, ``r``."""
    coef = jnp.asarray(np.array([1.0, -1j, -1.0, 1j])[np.arange(K + 1) % 4] * np.where(np.arange(K + 1) == 0, 1.0, 2.0))
    coef = coef * bessel_sequence(r * t, K)
    psi0 = psi0.astype(jnp.complex128)

    def ht(x):
        return (apply_H(x) - c * x) / r

    def gen(carry, a):
        q0, q1, acc = carry
        q2 = 2 * ht(q1) - q0
        return (q1, q2, acc + a * q1), None

    # (phi_{-1}, phi_0) = (Ht psi, psi): the first step gives phi_1 = Ht psi
    (_, _, acc), _ = jax.lax.scan(gen, (ht(psi0), psi0, jnp.zeros_like(psi0)), coef)
    return jnp.exp(-1j * c * t) * acc
