"""The ``bitmap`` kernel's compiled part: numba drivers around two LLVM-level row loops.

Each row of the weight is stored as its nonzero values (float32, or bfloat16 as raw uint16
bits) plus one 16-bit occupancy word per 16 columns. For each word the row loop *expands* the
next popcount(word) values into the lanes of the word's set bits, zeros elsewhere, multiplies
the lanes with 16 contiguous activations, and moves the value pointer on by the popcount.
How it expands is chosen once from the host CPU's features (``EXPAND``):

- ``avx512``: one ``llvm.masked.expandload`` per word (``vexpandps`` / ``vpexpandw``).
- ``avx2``: per byte of the word, an unaligned load of the next 8 values, a ``vpermps`` by
  the byte's row of a 256-row table of lane indices, and zero where the byte's bit is clear.
  The load may read up to 7 values past a row's last, so packed values end in ``PAD`` zeros.
- ``generic``: the expand-load, which LLVM lowers to scalar code on other CPUs: correct, slow.

``SPARSEBENCH_BITMAP_EXPAND=avx2|generic`` picks a slower path the host also runs (to compare
or test them). Numba cannot express an expand, so the loops are emitted as LLVM IR through
numba's ``@intrinsic``; rows run in parallel with ``prange``. Imported lazily by
``kernels/bitmap.py`` (compiling takes seconds; numba caches the code per CPU).
"""

from __future__ import annotations

import os

import numba as nb
import numpy as np
from llvmlite import binding, ir
from numba.core import cgutils, types
from numba.extending import intrinsic

LANES = 16  # columns per occupancy word
UNROLL = 4  # words per loop iteration; rows are padded to a multiple of LANES * UNROLL columns
PAD = 16  # zero values after the last kept value: the avx2 expand reads 8 values from any position
PREFETCH_BYTES = 1024  # how far ahead of the value pointer to prefetch
PREFETCH_WORDS = 64


ASKED = os.environ.get("SPARSEBENCH_BITMAP_EXPAND", "").strip()  # a slower path than the host's default, or ""


def _expand_path(asked: str) -> str:
    """The fastest expand the host runs, or the slower one ``asked`` for."""
    features = binding.get_host_cpu_features()
    runs = ["avx512"] * bool(features.get("avx512f")) + ["avx2"] * bool(features.get("avx2")) + ["generic"]
    if not asked:
        return runs[0]
    if asked not in runs:
        raise ValueError(f"SPARSEBENCH_BITMAP_EXPAND={asked!r}: this CPU runs {', '.join(runs)}")
    return asked


EXPAND = _expand_path(ASKED)
GROUP = 8 if EXPAND == "avx2" else 16  # lanes per expand (a ymm or a zmm register of float32)
TOKEN_BLOCKS = (8, 16)  # tokens per pass over a row in the many-token loops
MAX_TOKEN_BLOCK = 16 if GROUP == 16 else 8  # 16 ymm accumulators would spill on AVX2

_F32, _I16, _I32, _I64, _I8P = ir.FloatType(), ir.IntType(16), ir.IntType(32), ir.IntType(64), ir.IntType(8).as_pointer()


def _vec(element: ir.Type) -> ir.VectorType:
    return ir.VectorType(element, GROUP)


def _const(n: int) -> ir.Constant:
    return ir.Constant(_I64, n)


def _widen_bf16(builder: ir.IRBuilder, raw: ir.Value) -> ir.Value:
    """bfloat16 bits -> float32 lanes (bfloat16 is the top half of a float32)."""
    return builder.bitcast(builder.shl(builder.zext(raw, _vec(_I32)), ir.Constant(_vec(_I32), [16] * GROUP)), _vec(_F32))


def _expand_load(builder: ir.IRBuilder, ptr: ir.Value, bits: ir.Value, bf16: bool) -> ir.Value:
    element = _I16 if bf16 else _F32
    name = f"llvm.masked.expandload.v{GROUP}{'i16' if bf16 else 'f32'}"
    vb = ir.VectorType(ir.IntType(1), GROUP)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_vec(element), [ptr.type, vb, _vec(element)]), name)
    raw = builder.call(fn, [ptr, builder.bitcast(bits, vb), ir.Constant(_vec(element), None)])
    return _widen_bf16(builder, raw) if bf16 else raw


def _permute_table(module: ir.Module) -> ir.GlobalVariable:
    """256 x 8 int32: row m, lane j = the index among the 8 loaded values that lane j takes, or -1
    where bit j of m is clear (``vpermps`` reads the low 3 bits; the sign bit selects zero)."""
    name = "sparsebench_bitmap_expand_lanes"
    if name in module.globals:
        return module.globals[name]
    rows = [[bin(m & ((1 << j) - 1)).count("1") if m >> j & 1 else -1 for j in range(8)] for m in range(256)]
    typ = ir.ArrayType(_vec(_I32), 256)
    table = ir.GlobalVariable(module, typ, name)
    table.initializer = ir.Constant(typ, [ir.Constant(_vec(_I32), row) for row in rows])
    table.global_constant, table.linkage = True, "internal"
    return table


def _expand_permute(builder: ir.IRBuilder, ptr: ir.Value, bits: ir.Value, bf16: bool) -> ir.Value:
    element = _I16 if bf16 else _F32
    raw = builder.load(builder.bitcast(ptr, _vec(element).as_pointer()), align=2 if bf16 else 4)
    lanes = _widen_bf16(builder, raw) if bf16 else raw
    index = builder.load(builder.gep(_permute_table(builder.module), [_const(0), builder.zext(bits, _I64)]), align=32)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_vec(_F32), [_vec(_F32), _vec(_I32)]), "llvm.x86.avx2.permps")
    moved = builder.call(fn, [lanes, index])
    clear = builder.icmp_signed("<", index, ir.Constant(_vec(_I32), None))
    return builder.select(clear, ir.Constant(_vec(_F32), None), moved)


def _expand(builder: ir.IRBuilder, ptr: ir.Value, bits: ir.Value, bf16: bool) -> ir.Value:
    """GROUP float32 lanes: the next popcount(bits) values at ``ptr`` placed in the lanes of the set bits."""
    return (_expand_permute if EXPAND == "avx2" else _expand_load)(builder, ptr, bits, bf16)


def _prefetch(builder: ir.IRBuilder, ptr: ir.Value) -> None:
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [_I8P, _I32, _I32, _I32]), "llvm.prefetch.p0")
    builder.call(fn, [builder.bitcast(ptr, _I8P), ir.Constant(_I32, 0), ir.Constant(_I32, 3), ir.Constant(_I32, 1)])


def _hsum(builder: ir.IRBuilder, vec: ir.Value) -> ir.Value:
    total = builder.extract_element(vec, ir.Constant(_I32, 0))
    for i in range(1, GROUP):
        total = builder.fadd(total, builder.extract_element(vec, ir.Constant(_I32, i)), flags=("fast",))
    return total


def _row_loop(context, builder, sig, args, tokens: int):  # noqa: ANN001, ANN202 - numba codegen callback
    """acc[t] = sum over the row's words of expand(values) * x[t0 + t, word columns], for ``tokens`` tokens."""
    values_t, _, bits_t, x_t, _ = sig.args
    values = context.make_array(values_t)(context, builder, args[0])
    bits = context.make_array(bits_t)(context, builder, args[2])
    x = context.make_array(x_t)(context, builder, args[3])
    bf16 = values_t.dtype == types.uint16
    groups = LANES // GROUP  # expands per occupancy word
    group_bits = ir.IntType(GROUP)
    nwords = builder.extract_value(bits.shape, 0)
    ncols = builder.extract_value(x.shape, x_t.ndim - 1)
    x_rows = [builder.gep(x.data, [builder.mul(builder.add(args[4], _const(t)), ncols)]) for t in range(tokens)]
    ptr = cgutils.alloca_once_value(builder, builder.gep(values.data, [args[1]]))
    accs = [cgutils.alloca_once_value(builder, ir.Constant(_vec(_F32), None)) for _ in range(max(tokens, UNROLL * groups))]
    ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(group_bits, [group_bits]), f"llvm.ctpop.i{GROUP}")
    with cgutils.for_range(builder, builder.udiv(nwords, _const(UNROLL))) as loop:
        first = builder.mul(loop.index, _const(UNROLL))
        _prefetch(builder, builder.gep(builder.bitcast(builder.load(ptr), _I8P), [_const(PREFETCH_BYTES)]))
        _prefetch(builder, builder.gep(bits.data, [builder.add(first, _const(PREFETCH_WORDS))]))
        for u in range(UNROLL):
            word = builder.add(first, _const(u))
            m16 = builder.load(builder.gep(bits.data, [word]))
            for g in range(groups):
                m = builder.trunc(builder.lshr(m16, ir.Constant(_I16, g * GROUP)), group_bits) if groups > 1 else m16
                p = builder.load(ptr)
                v = _expand(builder, p, m, bf16)
                column = builder.add(builder.mul(word, _const(LANES)), _const(g * GROUP))
                for t in range(tokens):
                    acc = accs[t] if tokens > 1 else accs[u * groups + g]
                    xv = builder.load(builder.bitcast(builder.gep(x_rows[t], [column]), _vec(_F32).as_pointer()), align=4)
                    builder.store(builder.fadd(builder.load(acc), builder.fmul(v, xv, flags=("fast",)), flags=("fast",)), acc)
                builder.store(builder.gep(p, [builder.zext(builder.call(ctpop, [m]), _I64)]), ptr)
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


# numba's cache is keyed by CPU and source, not by the expand path: cache the host's default only
_JIT = dict(parallel=True, fastmath=True, boundscheck=False, nogil=True, cache=not ASKED)
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
