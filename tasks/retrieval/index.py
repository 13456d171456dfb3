"""Sparse vectors and the inverted index they are searched through.

Documents are indexed term-major (one posting list per vocabulary term: document ids and
weights); a query is scored by walking the posting lists of its non-zero terms only, so the
work is the FLOPS the metric counts, not a dense matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SparseVectors:
    """Rows of sparse vectors in CSR form: ``crow[i]:crow[i+1]`` index ``terms`` / ``weights``."""

    crow: torch.Tensor  # int64 [n + 1]
    terms: torch.Tensor  # int64 [nnz]
    weights: torch.Tensor  # float32 [nnz]
    dim: int

    @classmethod
    def from_dense(cls, rows: torch.Tensor) -> SparseVectors:
        rows = rows.float().cpu()
        nz = rows != 0
        counts = nz.sum(dim=1)
        crow = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        idx = nz.nonzero()  # row-major, so rows stay contiguous
        return cls(crow, idx[:, 1].clone(), rows[nz].clone(), rows.shape[1])

    def __len__(self) -> int:
        return self.crow.numel() - 1

    def row(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, e = int(self.crow[i]), int(self.crow[i + 1])
        return self.terms[s:e], self.weights[s:e]

    def nnz_per_row(self) -> torch.Tensor:
        return self.crow.diff()

    def term_lists(self) -> list[torch.Tensor]:
        return [self.row(i)[0] for i in range(len(self))]

    @classmethod
    def from_rows(cls, rows: list[tuple[torch.Tensor, torch.Tensor]], dim: int) -> SparseVectors:
        """From per-row ``(terms, weights)`` pairs, in order."""
        lens = torch.tensor([t.numel() for t, _ in rows], dtype=torch.long)
        crow = torch.cat([torch.zeros(1, dtype=torch.long), lens.cumsum(0)])
        if not rows:
            return cls(crow, torch.empty(0, dtype=torch.long), torch.empty(0), dim)
        return cls(crow, torch.cat([t for t, _ in rows]).long(), torch.cat([w for _, w in rows]).float(), dim)


class InvertedIndex:
    """Posting lists of a document set: for each term, (document index, weight), doc-sorted."""

    def __init__(self, docs: SparseVectors):
        self.n_docs = len(docs)
        self.dim = docs.dim
        doc_of = torch.repeat_interleave(torch.arange(self.n_docs), docs.nnz_per_row())
        order = torch.argsort(docs.terms, stable=True)
        self.doc_ids = doc_of[order].to(torch.int32)
        self.weights = docs.weights[order].contiguous()
        counts = torch.bincount(docs.terms, minlength=self.dim)
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])

    @property
    def postings(self) -> int:
        return self.doc_ids.numel()

    @property
    def nbytes(self) -> int:
        """Size of the index in memory: doc ids (int32) + weights (fp32) + term offsets (int64)."""
        return sum(t.numel() * t.element_size() for t in (self.doc_ids, self.weights, self.offsets))

    def scores(self, terms: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Dot products of one query with every document, walking only its terms' postings."""
        starts = self.offsets[terms]
        lens = self.offsets[terms + 1] - starts
        total = int(lens.sum())
        out = torch.zeros(self.n_docs, dtype=torch.float32)
        if total == 0:
            return out
        first = torch.repeat_interleave(starts - (lens.cumsum(0) - lens), lens)
        idx = first + torch.arange(total)
        return out.index_add_(0, self.doc_ids[idx].long(), self.weights[idx] * torch.repeat_interleave(weights, lens))

    def search(self, terms: torch.Tensor, weights: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top ``k`` documents with a positive score, best first (ties: lower index first)."""
        s = self.scores(terms, weights)
        vals, idx = torch.sort(s, descending=True, stable=True)
        keep = vals[:k] > 0
        return idx[:k][keep], vals[:k][keep]
