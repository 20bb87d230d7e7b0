"""Exact chain (matrix-product-state) simulation for ansatzes built from channel-local blocks and
controlled gates between neighbouring channels -- HQConv's structure.

The qubits are split into groups (HQConv: the three 4-qubit channels). The state is kept as one
tensor per group, ``(C, B, D_left, D_right, 2^k)``. A block inside a group is one small matrix
product on that tensor alone; a run of controlled gates with control in group s and target in a
neighbouring group t is ``P0 (x) I + P1 (x) R``, which splits group s by the control bit and group t
into (unchanged, rotated): the bond between them doubles. HQConv's last B block is not applied but
read out in the Heisenberg picture (:func:`simulate_chain`), so the bonds stop at 4 and the exact
state holds 64 + 256 + 64 amplitudes instead of 4096. <Z_q> comes from the diagonal of each group's
reduced density matrix (left and right environments). :func:`chain_probabilities` applies every block
instead (bonds up to 8) and contracts the sites into all 2^n Born probabilities, for shot sampling. No
truncation: the results are exact, and checked against PennyLane and the statevector. The same
computation, from the same op list (:func:`chain_program`), runs compiled in float32 on the CPU
(:mod:`nisqdiff.circuits.native`, forward and backward); the torch code here is its reference and
the path for float64, CUDA and machines without a C compiler.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache

import torch

from . import native
from .ansatz import Gate, get_spec
from .simulator import _z_signs, block_matrices, embed, encode, fuse, gate_matrix


@lru_cache(maxsize=None)
def supports(ansatz: str) -> bool:
    """True if every gate of ``ansatz`` is inside one group or a controlled gate between neighbours."""
    groups = get_spec(ansatz).groups
    if not groups:
        return False
    where = {q: i for i, g in enumerate(groups) for q in g}
    for block in fuse(ansatz):
        if len({where[q] for q in block.qubits}) == 1:
            continue
        for g in block.gates:
            if len({where[q] for q in g.wires}) > 1 and not (
                g.name.startswith("C") and len(g.wires) == 2 and abs(where[g.wires[0]] - where[g.wires[1]]) == 1
            ):
                return False
    return True


def _target_rotation(gate: Gate, weights: torch.Tensor) -> torch.Tensor:
    """The 2x2 operation a controlled gate applies to its target, (C, 2, 2)."""
    return gate_matrix(gate, weights)[:, 2:, 2:]


def _permute(t: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``t.permute(dims)`` made contiguous through a real view: torch 2.13's strided copy of a complex
    tensor on CPU is 4-6x slower than the same bytes as float pairs (and so is its backward)."""
    return torch.view_as_complex(torch.view_as_real(t).permute(*dims, t.dim()).contiguous())


def _local(site: torch.Tensor, mat: torch.Tensor) -> torch.Tensor:
    """site (C, B, Dl, Dr, P) times a (C, P, P) matrix on its physical axis."""
    c, b, dl, dr, p = site.shape
    return torch.matmul(site.reshape(c, -1, p), mat.transpose(-1, -2)).reshape(c, b, dl, dr, p)


def _controlled(sites: list, s: int, t: int, mask: int, rot: torch.Tensor) -> None:
    """Apply |0><0|_ctrl (x) I + |1><1|_ctrl (x) rot across neighbouring sites s (control: the bit
    ``mask`` of its physical index) and t (``rot`` (C, P, P) on its physical axis); their bond doubles."""
    ts, tt = sites[s], sites[t]
    bit = ((torch.arange(ts.shape[-1], device=ts.device) & mask) != 0).to(ts.real.dtype)
    halves = torch.stack([ts * (1 - bit), ts * bit], dim=-2)  # (C, B, Dl, Dr, 2, P)
    pair = torch.stack([tt, _local(tt, rot)], dim=-2)
    c, b = ts.shape[:2]
    if s < t:  # the control bit becomes the fastest index of the s|t bond
        sites[s] = halves.reshape(c, b, ts.shape[2], ts.shape[3] * 2, -1)
        sites[t] = _permute(pair, (0, 1, 2, 4, 3, 5)).reshape(c, b, tt.shape[2] * 2, tt.shape[3], -1)
    else:
        sites[s] = _permute(halves, (0, 1, 2, 4, 3, 5)).reshape(c, b, ts.shape[2] * 2, ts.shape[3], -1)
        sites[t] = pair.reshape(c, b, tt.shape[2], tt.shape[3] * 2, -1)


def _env_product(site: torch.Tensor, env: torch.Tensor, side: str) -> torch.Tensor:
    """site (C, B, L, R, P) with an environment (C, B, D, D) contracted into its left or right bond."""
    if side == "left":  # sum_l env[l, l'] site[l, r, p] -> [l', r, p]
        c, b, dl, dr, p = site.shape
        return torch.matmul(env.transpose(-1, -2), site.reshape(c, b, dl, dr * p)).reshape(site.shape)
    return torch.matmul(env.transpose(-1, -2).unsqueeze(2), site)  # sum_r env[r, r'] site[l, r, p]


def _overlap(a: torch.Tensor, b: torch.Tensor, keep: str) -> torch.Tensor:
    """sum over all but one bond of a * conj(b), for (C, B, L, R, P) tensors: (C, B, D, D)."""
    if keep == "right":  # [r, r'] = sum_l (a[l] b[l]^H)[r, r'], batched over l: no transposed copies
        return torch.matmul(a, b.conj().transpose(-1, -2)).sum(2)
    c, bb, dl, dr, p = a.shape
    am, bm = a.reshape(c, bb, dl, dr * p), b.reshape(c, bb, dl, dr * p)
    return torch.matmul(am, bm.conj().transpose(-1, -2))


def _marginals(sites: list) -> list[torch.Tensor]:
    """Diagonal of every site's reduced density matrix: list of (C, B, P) real probabilities.

    Left environments E_i = sum over sites < i, right ones F_i over sites > i; the diagonal of site
    i's density is Re sum_{l', r'} conj(T[l', r', p]) (E^T T F)[l', r', p].
    """
    n = len(sites)
    c, b = sites[0].shape[:2]
    one = torch.ones(c, b, 1, 1, dtype=sites[0].dtype, device=sites[0].device)
    left, right = [one], [one]
    for i in range(n - 1):
        left.append(_overlap(_env_product(sites[i], left[-1], "left"), sites[i], "right"))
        j = n - 1 - i
        right.append(_overlap(_env_product(sites[j], right[-1], "right"), sites[j], "left"))
    right.reverse()
    probs = []
    for site, e, f in zip(sites, left, right):
        v = _env_product(_env_product(site, e, "left"), f, "right")
        probs.append((site.real * v.real + site.imag * v.imag).sum((2, 3)))
    return probs


def _open_density(sites: list, groups, open_qubits: list[tuple[int, ...]]) -> torch.Tensor:
    """Reduced density matrix of the chosen qubits (``open_qubits[i]`` of site i, in group order):
    (C, B, d, d) with d = 2^(number of open qubits), rows in site-then-group order.

    Site by site: the gram g[l, (r o), m, (s q)] = sum_x t[l, r, o, x] conj(t[m, s, q, x]) of the
    site (o its open qubits, x the others), then acc[(l m), (I J)] contracted with g over both bonds
    in one product; acc's rows are the bonds (ket, bra) to the right, its columns the open indices."""
    c, b = sites[0].shape[:2]
    n = c * b
    acc = None  # (n, r, s, I, J)
    for site, group, opened in zip(sites, groups, open_qubits):
        k, dl, dr = len(group), site.shape[2], site.shape[3]
        keep = [group.index(q) for q in opened]
        order = keep + [i for i in range(k) if i not in keep]
        t = site.reshape(n, dl, dr, *([2] * k))
        if order != list(range(k)):
            t = _permute(t, (0, 1, 2, *(3 + i for i in order)))
        o = 2 ** len(keep)
        flat = t.reshape(n, dl * dr * o, -1)
        g = torch.matmul(flat, flat.conj().transpose(-1, -2)).reshape(n, dl, dr * o, dl, dr * o)
        if acc is None:  # dl = 1
            acc = _permute(g.reshape(n, dr, o, dr, o), (0, 1, 3, 2, 4))
            continue
        di, dj = acc.shape[-2:]
        lm = acc.reshape(n, dl * dl, di * dj).transpose(-1, -2)  # (n, IJ, lm)
        gm = _permute(g, (0, 1, 3, 2, 4)).reshape(n, dl * dl, (dr * o) ** 2)  # (n, lm, (r o)(s q))
        y = torch.matmul(lm, gm).reshape(n, di, dj, dr, o, dr, o)  # I J r o s q
        acc = _permute(y, (0, 3, 5, 1, 4, 2, 6)).reshape(n, dr, dr, di * o, dj * o)
    return acc.reshape(c, b, acc.shape[-2], acc.shape[-1])


def chain_program(ansatz: str, weights: torch.Tensor, defer_final: bool):
    """The fused blocks of ``ansatz`` as operations on the chain: (groups, ops, final). ``ops`` in order:
    ``(s, None, None, mat)`` a (C, 2^k, 2^k) matrix on site s's physical axis, or ``(s, t, mask, rot)``
    a controlled gate with its control the bit ``mask`` of site s and ``rot`` (C, 2^k, 2^k) on
    neighbouring site t (consecutive controlled gates on one pair merged). With ``defer_final``, a last
    block that crosses groups (HQConv's B block) is returned as ``final`` = (block, matrix) instead."""
    groups = [tuple(g) for g in get_spec(ansatz).groups]
    where = {q: i for i, g in enumerate(groups) for q in g}
    blocks, mats = fuse(ansatz), block_matrices(ansatz, weights)
    final = None
    if defer_final and len({where[q] for q in blocks[-1].qubits}) > 1 and len(blocks[-1].qubits) <= 4:
        final, blocks, mats = (blocks[-1], mats[-1]), blocks[:-1], mats[:-1]
    ops: list[tuple] = []

    def controlled(ctrl: int, tgt: int, rot: torch.Tensor) -> None:
        s, t = where[ctrl], where[tgt]
        mask = 1 << (len(groups[s]) - 1 - groups[s].index(ctrl))
        ops.append((s, t, mask, embed([(rot, (tgt,))], groups[t])))

    for block, mat in zip(blocks, mats):
        owners = {where[q] for q in block.qubits}
        if len(owners) == 1:
            s = owners.pop()
            ops.append((s, None, None, embed([(mat, block.qubits)], groups[s])))
            continue
        run = None  # (ctrl, tgt, accumulated 2x2) for consecutive controlled gates on one pair
        for gate in block.gates:
            if len({where[q] for q in gate.wires}) == 1:
                if run:
                    controlled(*run)
                    run = None
                s = where[gate.wires[0]]
                ops.append((s, None, None, embed([(gate_matrix(gate, weights), gate.wires)], groups[s])))
                continue
            rot = _target_rotation(gate, weights)
            if run and run[:2] == gate.wires:
                run = (run[0], run[1], rot @ run[2])
            else:
                if run:
                    controlled(*run)
                run = (gate.wires[0], gate.wires[1], rot)
        if run:
            controlled(*run)
    return groups, ops, final


def _evolve_chain(ansatz: str, inputs: torch.Tensor, weights: torch.Tensor, defer_final: bool):
    """Run :func:`chain_program` on the chain: (sites, groups, final), sites a list of (C, B, Dl, Dr,
    2^k) tensors with qubits in group order."""
    groups, ops, final = chain_program(ansatz, weights, defer_final)
    sites = _product_sites(inputs, groups)
    for s, t, mask, mat in ops:
        if t is None:
            sites[s] = _local(sites[s], mat)
        else:
            _controlled(sites, s, t, mask, mat)
    return sites, groups, final


def _product_sites(inputs: torch.Tensor, groups) -> list[torch.Tensor]:
    """The encoded product state of each group, (C, B, 1, 1, 2^k), qubits in group order."""
    c, b, _ = inputs.shape
    single = encode(inputs)
    sites = []
    for g in groups:
        amp = single[:, :, g[0], :]
        for q in g[1:]:
            amp = (amp.unsqueeze(-1) * single[:, :, q, :].unsqueeze(-2)).reshape(c, b, -1)
        sites.append(amp.reshape(c, b, 1, 1, -1))
    return sites


def chain_probabilities(ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Born probabilities of every basis state, (C, B, 2^n) real, qubit 0 the most significant bit,
    for inputs (C, B, n) and weights (C, n_weights): the chain with every block applied (bonds up
    to 8 for HQConv), contracted site by site into the full state; in float32 on the CPU the compiled
    kernel builds the state with the last block deferred and applies it to the open qubits per input.
    Exact; requires :func:`supports`. For shot sampling (not differentiated)."""
    c, b = inputs.shape[:2]
    if _native_fits(ansatz, inputs, weights):  # the compiled kernel: psi and the deferred block per input
        groups, ops, final, masks = _native_program(ansatz, weights)
        probs = native.chain_probabilities(inputs, ops, _packed_patterns(ansatz), masks, _final_matrix(final, groups)[2])
        probs = probs.reshape(c, b, *([2] * inputs.shape[-1]))
    else:
        probs = _torch_probabilities(ansatz, inputs, weights).reshape(c, b, *([2] * inputs.shape[-1]))
        groups = [tuple(g) for g in get_spec(ansatz).groups]
    order = [q for g in groups for q in g]
    perm = [order.index(q) for q in range(len(order))]
    return probs.permute(0, 1, *(2 + i for i in perm)).reshape(c, b, -1)


def _torch_probabilities(ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """:func:`chain_probabilities` in torch, (C, B, 2^n) with the qubits in group order."""
    sites, groups, _ = _evolve_chain(ansatz, inputs, weights, defer_final=False)
    c, b = inputs.shape[:2]
    state = sites[0].reshape(c, b, sites[0].shape[3], -1).transpose(-1, -2)  # (C, B, P, D)
    for site in sites[1:]:
        dl, dr, p = site.shape[2:]
        state = torch.matmul(state, site.reshape(c, b, dl, dr * p))  # (C, B, P_acc, Dr * P)
        state = state.reshape(c, b, -1, dr, p).transpose(-1, -2).reshape(c, b, -1, dr)
    return (state.real.square() + state.imag.square()).reshape(c, b, -1)


CHUNK = 2048  # most circuit inputs (C x B) per pass: a quanv stage's 6,272 in 4 passes, 2x faster forward in cache


def simulate_chain(ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """<Z_q> (C, B, n) for inputs (C, B, n) and weights (C, n_weights) by exact chain simulation.

    Same contract as :func:`nisqdiff.circuits.simulator.simulate`; requires :func:`supports`. In
    float32 on the CPU it runs in the compiled kernel (:mod:`nisqdiff.circuits.native`, forward and
    backward) where that is built; otherwise in torch, over equal batch chunks of at most
    :data:`CHUNK` circuit inputs, whose states stay in cache."""
    if _native_fits(ansatz, inputs, weights):
        return _simulate_native(ansatz, inputs, weights)
    c, b = inputs.shape[:2]
    chunks = -(-c * b // CHUNK)
    if chunks <= 1:
        return _simulate_chain(ansatz, inputs, weights)
    per = -(-b // chunks)
    return torch.cat([_simulate_chain(ansatz, part, weights) for part in inputs.split(per, dim=1)], dim=1)


_TORCH_ONLY = [False]


@contextmanager
def torch_only():
    """Within it, the chain runs in torch even where the compiled kernel is built (for benchmarks that
    compare the two in one process; ``NISQDIFF_NATIVE=0`` does it for a whole process)."""
    _TORCH_ONLY[0] = True
    try:
        yield
    finally:
        _TORCH_ONLY[0] = False


def _native_fits(ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> bool:
    """True where the compiled kernel computes what :func:`_simulate_chain` would: float32 on the CPU,
    three sites of four consecutive qubits (HQConv)."""
    groups = get_spec(ansatz).groups
    return (not _TORCH_ONLY[0] and inputs.dtype == torch.float32 and weights.dtype == torch.float32
            and inputs.device.type == "cpu" and [tuple(g) for g in groups] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)]
            and native.available())  # fmt: skip


def _final_matrix(final, groups):
    """(opened qubits per site, their space in site order, F (C, d, d)) of the deferred block on its open qubits."""
    block, mat = final
    opened = [tuple(q for q in g if q in block.qubits) for g in groups]
    space = tuple(q for o in opened for q in o)
    return opened, space, embed([(mat, block.qubits)], space)


def _final_observables(final, groups):
    """(opened qubits per site, their space in site order, observables (C, k, d, d)) of the deferred
    block: ``obs[c, k, j, i]`` = (F^dagger Z_k F)[j, i] on the open qubits."""
    opened, space, f = _final_matrix(final, groups)
    signs = _z_signs(len(space), str(f.device), f.real.dtype).to(f.dtype)  # (d, k)
    return opened, space, torch.einsum("caj,ak,cai->ckji", f.conj(), signs, f)


def _native_program(ansatz: str, weights: torch.Tensor):
    """(groups, ops, final, the open qubit's bit of each site) for the compiled kernel."""
    groups, ops, final = chain_program(ansatz, weights, defer_final=True)
    opened = [tuple(q for q in g if q in final[0].qubits) for g in groups]
    bonds = [1, 1]
    for s, t, _, _ in ops:
        if t is not None:
            bonds[min(s, t)] *= 2
    assert all(len(o) == 1 for o in opened) and max(bonds) <= 8, "the kernel's shapes: one open qubit per site, bonds <= 8"
    masks = [1 << (len(g) - 1 - g.index(o[0])) for g, o in zip(groups, opened)]
    return groups, ops, final, masks


@lru_cache(maxsize=None)
def op_patterns(ansatz: str) -> torch.Tensor:
    """(n_ops, 2^k, 2^k) bool: where each op of :func:`chain_program` (deferred final block) can be nonzero,
    for any weights -- the union over two draws of random float64 weights (an entry that is zero for every
    weight is exactly zero in both; one that is not is nonzero at random weights with probability 1).
    HQConv: a channel's block has 81 of 256 entries, a controlled rotation 32."""
    draws = torch.rand(2, get_spec(ansatz).n_weights, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ops = chain_program(ansatz, draws, defer_final=True)[1]
    return torch.stack([(m != 0).any(0) for *_, m in ops])


@lru_cache(maxsize=None)
def _packed_patterns(ansatz: str) -> tuple:
    return native.pack_patterns(op_patterns(ansatz))


def _simulate_native(ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """:func:`simulate_chain` in the compiled kernel, every circuit in one call (requires :func:`_native_fits`).
    Differentiable: the kernel's backward gives the gradients of the input angles, the op matrices
    and the observables, and torch's autograd takes them on to ``inputs`` and ``weights``."""
    groups, ops, final, masks = _native_program(ansatz, weights)
    obs = _final_observables(final, groups)[2]
    return native.chain_expval(inputs, ops, _packed_patterns(ansatz), masks, obs)  # the groups: the qubits in order (_native_fits)


def _simulate_chain(ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """:func:`simulate_chain` on one chunk, in torch. When
    the last block crosses groups (HQConv's final B block), it is not applied to the state: Z on the
    qubits it does not touch is read from the state before it, and for its own qubits
    <Z_q> = Tr(rho F^dagger Z_q F) with rho their reduced density matrix -- half the bond size.
    """
    n = inputs.shape[-1]
    sites, groups, final = _evolve_chain(ansatz, inputs, weights, defer_final=True)
    cols = [p @ _z_signs(len(g), str(p.device), p.dtype) for p, g in zip(_marginals(sites), groups)]
    out = torch.cat(cols, -1)
    order = torch.tensor([q for g in groups for q in g], device=out.device)
    out = out[..., torch.argsort(order)]
    if final is None:
        return out
    opened, space, obs = _final_observables(final, groups)
    rho = _open_density(sites, groups, opened)  # (C, B, d, d)
    # <Z_q> = sum_ij rho[i, j] (F^dagger Z_q F)[j, i]
    final_z = torch.einsum("cbij,ckji->cbk", rho, obs).real
    cols = [out[..., q] if q not in space else final_z[..., space.index(q)] for q in range(n)]
    return torch.stack(cols, -1)
