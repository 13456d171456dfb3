"""The ``bitmap`` kernel's compiled part: numba drivers around two LLVM-level row loops.

Each row of the weight is stored as its nonzero values (float32, or bfloat16 as raw uint16
bits) plus one 16-bit occupancy word per 16 columns. For each word the row loop does one
``llvm.masked.expandload`` (AVX-512 ``vexpandps`` / ``vpexpandw``): it reads exactly as many
values as the word has bits and places them in the lanes of those bits, zeros elsewhere;
the 16 lanes are then multiplied with 16 contiguous activations, and the value pointer
moves on by the word's popcount. Numba cannot express an expand-load, so the loops are
emitted as LLVM IR through numba's ``@intrinsic``; rows run in parallel with ``prange``.
On a CPU without AVX-512 LLVM lowers the expand-load to scalar code: correct, slower.

Imported lazily by ``kernels/bitmap.py`` (compiling takes seconds; compiled code is cached).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

LANES = 16  # columns per occupancy word
UNROLL = 4  # words per loop iteration; rows are padded to a multiple of LANES * UNROLL columns
TOKEN_BLOCKS = (8, 16)  # tokens per pass over a row in the many-token loops (16 accumulators fill half the zmm registers)
PREFETCH_BYTES = 1024  # how far ahead of the value pointer to prefetch
PREFETCH_WORDS = 64

_F32, _I16, _I32, _I64, _I8P = ir.FloatType(), ir.IntType(16), ir.IntType(32), ir.IntType(64), ir.IntType(8).as_pointer()
_VF, _VB = ir.VectorType(_F32, LANES), ir.VectorType(ir.IntType(1), LANES)
_VI16, _VI32 = ir.VectorType(_I16, LANES), ir.VectorType(_I32, LANES)


def _const(n: int) -> ir.Constant:
    return ir.Constant(_I64, n)


def _expand(builder: ir.IRBuilder, ptr: ir.Value, mask: ir.Value, bf16: bool) -> ir.Value:
    """16 float32 lanes: the next popcount(mask) values at ``ptr`` placed in the mask's lanes."""
    module = builder.module
    if bf16:  # bfloat16 is the top half of a float32
        fn = cgutils.get_or_insert_function(module, ir.FunctionType(_VI16, [ptr.type, _VB, _VI16]), "llvm.masked.expandload.v16i16")
        raw = builder.call(fn, [ptr, mask, ir.Constant(_VI16, None)])
        return builder.bitcast(builder.shl(builder.zext(raw, _VI32), ir.Constant(_VI32, [16] * LANES)), _VF)
    fn = cgutils.get_or_insert_function(module, ir.FunctionType(_VF, [ptr.type, _VB, _VF]), "llvm.masked.expandload.v16f32")
    return builder.call(fn, [ptr, mask, ir.Constant(_VF, None)])


def _prefetch(builder: ir.IRBuilder, ptr: ir.Value) -> None:
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [_I8P, _I32, _I32, _I32]), "llvm.prefetch.p0")
    builder.call(fn, [builder.bitcast(ptr, _I8P), ir.Constant(_I32, 0), ir.Constant(_I32, 3), ir.Constant(_I32, 1)])


def _hsum(builder: ir.IRBuilder, vec: ir.Value) -> ir.Value:
    total = builder.extract_element(vec, ir.Constant(_I32, 0))
    for i in range(1, LANES):
        total = builder.fadd(total, builder.extract_element(vec, ir.Constant(_I32, i)), flags=("fast",))
    return total


def _row_loop(context, builder, sig, args, tokens: int):  # noqa: ANN001, ANN202 - numba codegen callback
    """acc[t] = sum over the row's words of expand(values) * x[t0 + t, word columns], for ``tokens`` tokens."""
    values_t, _, bits_t, x_t, _ = sig.args
    values = context.make_array(values_t)(context, builder, args[0])
    bits = context.make_array(bits_t)(context, builder, args[2])
    x = context.make_array(x_t)(context, builder, args[3])
    bf16 = values_t.dtype == types.uint16
    nwords = builder.extract_value(bits.shape, 0)
    ncols = builder.extract_value(x.shape, x_t.ndim - 1)
    x_rows = [builder.gep(x.data, [builder.mul(builder.add(args[4], _const(t)), ncols)]) for t in range(tokens)]
    ptr = cgutils.alloca_once_value(builder, builder.gep(values.data, [args[1]]))
    accs = [cgutils.alloca_once_value(builder, ir.Constant(_VF, None)) for _ in range(max(tokens, UNROLL))]
    ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I16, [_I16]), "llvm.ctpop.i16")
    with cgutils.for_range(builder, builder.udiv(nwords, _const(UNROLL))) as loop:
        first = builder.mul(loop.index, _const(UNROLL))
        _prefetch(builder, builder.gep(builder.bitcast(builder.load(ptr), _I8P), [_const(PREFETCH_BYTES)]))
        _prefetch(builder, builder.gep(bits.data, [builder.add(first, _const(PREFETCH_WORDS))]))
        for u in range(UNROLL):
            word = builder.add(first, _const(u))
            m16 = builder.load(builder.gep(bits.data, [word]))
            p = builder.load(ptr)
            v = _expand(builder, p, builder.bitcast(m16, _VB), bf16)
            for t in range(tokens):
                acc = accs[t] if tokens > 1 else accs[u]
                xv = builder.load(builder.bitcast(builder.gep(x_rows[t], [builder.mul(word, _const(LANES))]), _VF.as_pointer()), align=4)
                builder.store(builder.fadd(builder.load(acc), builder.fmul(v, xv, flags=("fast",)), flags=("fast",)), acc)
            builder.store(builder.gep(p, [builder.zext(builder.call(ctpop, [m16]), _I64)]), ptr)
    if tokens == 1:
        total = builder.load(accs[0])
        for acc in accs[1:]:
            total = builder.fadd(total, builder.load(acc), flags=("fast",))
        return _hsum(builder, total)
    return context.make_tuple(builder, sig.return_type, [_hsum(builder, builder.load(accs[t])) for t in range(tokens)])


@intrinsic
def _row_dot(typingctx, values, start, bits, x, t0):  # noqa: ANN001, ANN202
    """One token: the dot product of a packed row with ``x[t0]``."""
    return types.float32(values, start, bits, x, t0), lambda c, b, s, a: _row_loop(c, b, s, a, 1)


def _row_dots(tokens: int):  # noqa: ANN202
    """An intrinsic: the dot products of a packed row with ``x[t0 : t0 + tokens]``."""

    @intrinsic
    def row_dots(typingctx, values, start, bits, x, t0):  # noqa: ANN001, ANN202
        return types.UniTuple(types.float32, tokens)(values, start, bits, x, t0), lambda c, b, s, a: _row_loop(c, b, s, a, tokens)

    return row_dots


_JIT = dict(parallel=True, fastmath=True, boundscheck=False, nogil=True, cache=True)
_row_dots8, _row_dots16 = (_row_dots(n) for n in TOKEN_BLOCKS)


@nb.njit(**_JIT)
def matvec(values, row_start, bits, x, y):  # noqa: ANN001, ANN201
    """``y[r] = row r . x`` for ``x`` of shape [1, padded in]."""
    for r in nb.prange(bits.shape[0]):
        y[r] = _row_dot(values, row_start[r], bits[r], x, 0)


@nb.njit(**_JIT)
def matmat8(values, row_start, bits, x, y):  # noqa: ANN001, ANN201
    """``y[t, r] = row r . x[t]`` for ``x`` of shape [tokens padded to 8, padded in]."""
    for r in nb.prange(bits.shape[0]):
        for t0 in range(0, x.shape[0], 8):
            dots = _row_dots8(values, row_start[r], bits[r], x, t0)
            for t in range(8):
                y[t0 + t, r] = dots[t]


@nb.njit(**_JIT)
def matmat16(values, row_start, bits, x, y):  # noqa: ANN001, ANN201
    """``y[t, r] = row r . x[t]`` for ``x`` of shape [tokens padded to 16, padded in]."""
    for r in nb.prange(bits.shape[0]):
        for t0 in range(0, x.shape[0], 16):
            dots = _row_dots16(values, row_start[r], bits[r], x, t0)
            for t in range(16):
                y[t0 + t, r] = dots[t]


def occupancy_words(mask: np.ndarray) -> np.ndarray:
    """[out, padded in / 16] uint16: bit j of word k of a row says whether column 16k + j is stored."""
    rows, cols = mask.shape
    padded = np.zeros((rows, -(-cols // (LANES * UNROLL)) * LANES * UNROLL), dtype=bool)
    padded[:, :cols] = mask
    return np.packbits(padded, axis=1, bitorder="little").view("<u2")
