"""``bitmap``: nonzero values plus a 1-bit-per-column occupancy map, expanded 8 or 16 columns at a time.

A compressed-index format for the 50-70% unstructured sparsity pruned LLMs actually have,
where CSR's 4-byte column index per value makes it read more bytes than dense. Per weight
it reads the kept values (4 bytes, or 2 in bfloat16) plus 1/8 byte for every column, kept
or not, plus one 8-byte row start per row: at 50% and float32 that is 34 MiB for a
4096x4096 layer against 64 MiB dense, a bytes bound of 1.88x (1.78x in bfloat16). Written
with numba (see ``kernels/_bitmap_simd.py``: an AVX-512 expand-load, an AVX2 permute by a
lane table, or scalar code on other CPUs; ``details()`` names the path); rows run in parallel on
``torch.get_num_threads()`` threads. Many tokens are computed 8 or 16 at a time per pass
over a row, so the work is that of dense: the format pays off at one token and small batches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from sparsebench.kernel import Kernel, Support, kernels, nbytes


@dataclass(frozen=True)
class BitmapWeight:
    values: np.ndarray  # the kept values row by row: float32, or bfloat16 bits as uint16
    row_start: np.ndarray  # int64 [out]: index of each row's first value
    words: np.ndarray  # uint16 [out, padded in / 16]: occupancy, bit j of word k = column 16k + j
    shape: tuple[int, int]  # [out, in]
    dtype: torch.dtype

    @property
    def padded_in(self) -> int:
        return self.words.shape[1] * 16


def _numba() -> tuple[Any, str]:
    try:
        import numba
    except ImportError as exc:
        return None, f"numba not importable (pip install numba): {exc}"
    return numba, ""


@kernels.register("bitmap")
class Bitmap(Kernel):
    description = "values + 16-column occupancy bitmap, AVX-512 expand-load or AVX2 permute (numba); float32 and bfloat16; any mask"
    support = Support(dtypes=(torch.float32, torch.bfloat16), devices=("cpu",), limits="a CPU kernel")

    def available(self, device: torch.device) -> tuple[bool, str]:
        numba, why = _numba()
        return numba is not None, why

    def pack(self, weight: torch.Tensor, mask: torch.Tensor) -> BitmapWeight:
        from ._bitmap_simd import PAD, occupancy_words

        w = weight.detach().cpu()
        m = mask.detach().cpu().to(torch.bool)
        kept = torch.cat([w[m], w.new_zeros(PAD)])  # row-major order, then the zeros the expand may read past the end
        values = kept.view(torch.int16).numpy().view(np.uint16) if w.dtype == torch.bfloat16 else kept.float().numpy()
        counts = m.sum(dim=1, dtype=torch.int64).numpy()
        row_start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return BitmapWeight(np.ascontiguousarray(values), row_start, occupancy_words(m.numpy()), tuple(w.shape), w.dtype)

    def apply(self, packed: BitmapWeight, x: torch.Tensor) -> torch.Tensor:
        import numba

        from ._bitmap_simd import MAX_TOKEN_BLOCK, matmat8, matmat16, matvec

        threads = torch.get_num_threads()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        out, inp = packed.shape
        x2 = x.detach().reshape(-1, inp)
        tokens = x2.shape[0]
        block = 1 if tokens == 1 else 8 if tokens <= 8 else MAX_TOKEN_BLOCK
        rows = -(-tokens // block) * block
        if rows == tokens and packed.padded_in == inp and x2.dtype == torch.float32 and x2.is_contiguous():
            xp = x2
        else:
            xp = torch.zeros(rows, packed.padded_in, dtype=torch.float32)
            xp[:tokens, :inp] = x2
        y = torch.empty(rows, out, dtype=torch.float32)
        if tokens == 1:
            matvec(packed.values, packed.row_start, packed.words, xp.numpy(), y.numpy()[0])
        else:
            (matmat8 if block == 8 else matmat16)(packed.values, packed.row_start, packed.words, xp.numpy(), y.numpy())
        if torch.get_num_threads() != threads:  # starting numba's OpenMP pool resets the calling thread's OpenMP count
            torch.set_num_threads(threads)
        return y[:tokens].to(x.dtype).reshape(*x.shape[:-1], out)

    def copy_packed(self, packed: BitmapWeight, weight: torch.Tensor, mask: torch.Tensor) -> BitmapWeight:
        return replace(packed, values=packed.values.copy(), row_start=packed.row_start.copy(), words=packed.words.copy())

    def packed_bytes(self, packed: BitmapWeight) -> int:
        return nbytes(packed.values, packed.row_start, packed.words)

    def details(self, packed: BitmapWeight) -> dict[str, Any]:
        from ._bitmap_simd import EXPAND, PAD

        return {"nnz": int(packed.values.size) - PAD, "expand": EXPAND}
