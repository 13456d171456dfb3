"""Retrieval metrics as pure functions (no model, no I/O), tested against hand-computed cases.

A *ranking* is a sequence of document ids, best first; *qrels* map a document id to its graded
relevance (documents absent or with relevance <= 0 are not relevant). Definitions follow
``trec_eval`` as BEIR uses it: nDCG with linear gains (``rel / log2(rank + 1)``) and the ideal
ranking built from every judged relevant document; MRR@k is the reciprocal rank of the first
relevant document in the top k (0 if none); recall@k is the fraction of relevant documents
in the top k.

FLOPS is the efficiency measure of SPLADE (Paria et al., 2020, arXiv:2004.05665; Formal et
al., 2021, arXiv:2107.05720): the expected number of multiply-adds to score one query against
one document through an inverted index, ``sum_j p_q(j) * p_d(j)``, where ``p_q(j)`` and
``p_d(j)`` are the fractions of queries and documents whose representation has a non-zero
weight for vocabulary term ``j``, estimated over the evaluated query and document sets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import torch


def ndcg_at_k(ranking: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    dcg = sum(max(qrels.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((r for r in qrels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at_k(ranking: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    for i, d in enumerate(ranking[:k]):
        if qrels.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def recall_at_k(ranking: Sequence[str], qrels: Mapping[str, int], k: int = 100) -> float:
    relevant = {d for d, r in qrels.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def term_activation(term_lists: Iterable[Sequence[int] | torch.Tensor], vocab_size: int) -> torch.Tensor:
    """``p(j)``: the fraction of representations with a non-zero weight on term ``j``."""
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    n = 0
    for terms in term_lists:
        t = torch.as_tensor(terms, dtype=torch.long).unique()
        counts.index_add_(0, t, torch.ones(t.numel(), dtype=torch.float64))
        n += 1
    return counts / max(n, 1)


def flops(query_terms: Iterable[Sequence[int] | torch.Tensor], doc_terms: Iterable[Sequence[int] | torch.Tensor], vocab_size: int) -> float:
    """SPLADE FLOPS: ``sum_j p_q(j) * p_d(j)`` (expected posting work per query-document pair)."""
    return float((term_activation(query_terms, vocab_size) * term_activation(doc_terms, vocab_size)).sum())


def per_query(metric, runs: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], k: int) -> dict[str, float]:
    """``metric(ranking, qrels[q], k)`` of each judged query (one with a relevant doc), in qrels order."""
    judged = [q for q, rel in qrels.items() if any(r > 0 for r in rel.values())]
    return {q: metric(runs.get(q, ()), qrels[q], k) for q in judged}


def mean_over_queries(metric, runs: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], k: int) -> float:
    """Mean of ``metric(ranking, qrels[q], k)`` over the judged queries (those with a relevant doc)."""
    scores = per_query(metric, runs, qrels, k)
    return sum(scores.values()) / len(scores) if scores else float("nan")
