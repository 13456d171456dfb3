"""Retrieval metrics, SPLADE pooling and the inverted index against hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from sparsebench.tasks.retrieval import metrics as irmetrics
from sparsebench.tasks.retrieval.encoding import IdfQueryEncoder, splade_pool
from sparsebench.tasks.retrieval.index import InvertedIndex, SparseVectors

L3 = math.log2(3)  # discount at rank 2


def test_ndcg_binary_and_graded():
    assert irmetrics.ndcg_at_k(["d1", "d2"], {"d2": 1}, 10) == pytest.approx(1 / L3)
    assert irmetrics.ndcg_at_k(["d2", "d1"], {"d2": 1}, 10) == pytest.approx(1.0)
    # graded, linear gains: DCG = 1 + 2/log2(3); IDCG = 2 + 1/log2(3) + 1/log2(4)
    qrels = {"d1": 2, "d2": 1, "d3": 1}
    expected = (1 + 2 / L3) / (2 + 1 / L3 + 0.5)
    assert irmetrics.ndcg_at_k(["d2", "d1"], qrels, 10) == pytest.approx(expected)
    assert expected == pytest.approx(0.722424, abs=1e-6)  # 2.261860 / 3.130930
    # the cutoff: the relevant document at rank 3 does not count at k=2
    assert irmetrics.ndcg_at_k(["d9", "d8", "d2"], {"d2": 1}, 2) == 0.0
    # judged-non-relevant (0) and negative grades add nothing
    assert irmetrics.ndcg_at_k(["d1", "d2"], {"d1": 0, "d2": 1, "d3": -1}, 10) == pytest.approx(1 / L3)


def test_mrr_and_recall():
    assert irmetrics.mrr_at_k(["d1", "d2", "d3"], {"d3": 1}, 10) == pytest.approx(1 / 3)
    assert irmetrics.mrr_at_k(["d1", "d2", "d3"], {"d3": 1}, 2) == 0.0
    assert irmetrics.mrr_at_k(["d1", "d2"], {"d1": 0, "d2": 2}, 10) == pytest.approx(0.5)
    assert irmetrics.recall_at_k(["d2", "d1"], {"d1": 2, "d2": 1, "d3": 1}, 100) == pytest.approx(2 / 3)
    assert irmetrics.recall_at_k(["d2", "d1"], {"d1": 2, "d2": 1, "d3": 1}, 1) == pytest.approx(1 / 3)
    runs = {"q1": ["d1", "d2"], "q2": ["d3"]}
    qrels = {"q1": {"d2": 1}, "q2": {"d1": 1}, "q3": {"d1": 0}}  # q3 has no relevant doc: skipped
    assert irmetrics.mean_over_queries(irmetrics.mrr_at_k, runs, qrels, 10) == pytest.approx((0.5 + 0.0) / 2)


def _corpus():
    # vocabulary of 5 terms; three documents and two queries
    docs = torch.tensor([[1.0, 2.0, 0, 0, 0], [0, 1.0, 1.0, 0, 0], [0, 0, 0, 0.5, 0]])
    queries = torch.tensor([[0, 1.0, 0, 0, 0], [1.0, 0, 0, 2.0, 0]])
    return SparseVectors.from_dense(docs), SparseVectors.from_dense(queries)


def test_flops_on_three_documents():
    docs, queries = _corpus()
    # p_q = (1/2, 1/2, 0, 1/2, 0); p_d = (1/3, 2/3, 1/3, 1/3, 0)
    # FLOPS = 1/2*1/3 + 1/2*2/3 + 1/2*1/3 = 2/3
    value = irmetrics.flops(queries.term_lists(), docs.term_lists(), 5)
    assert value == pytest.approx(2 / 3)
    # ... which is the posting-list work per query-document pair of the index: q1 walks 2
    # postings (term 1), q2 walks 2 (terms 0 and 3): 4 / (2 queries * 3 docs)
    index = InvertedIndex(docs)
    walked = sum(int(index.offsets[t + 1] - index.offsets[t]) for q in queries.term_lists() for t in q)
    assert walked / (2 * 3) == pytest.approx(value)


def test_inverted_index_scores_and_ranking():
    docs, queries = _corpus()
    index = InvertedIndex(docs)
    assert index.postings == 5
    assert index.nbytes == 5 * 4 + 5 * 4 + 6 * 8
    dense_docs = torch.tensor([[1.0, 2.0, 0, 0, 0], [0, 1.0, 1.0, 0, 0], [0, 0, 0, 0.5, 0]])
    for i in range(2):
        terms, weights = queries.row(i)
        q = torch.zeros(5).index_put_((terms,), weights)
        assert torch.allclose(index.scores(terms, weights), dense_docs @ q)
    ids, scores = index.search(*queries.row(0), k=10)
    assert ids.tolist() == [0, 1] and scores.tolist() == [2.0, 1.0]  # d3 scores 0: not retrieved
    ids, _ = index.search(*queries.row(1), k=10)
    assert ids.tolist() == [0, 2]  # a tie (1.0 each) keeps the lower document index first
    ids, _ = index.search(*queries.row(1), k=1)
    assert ids.tolist() == [0]


def test_splade_pool_masks_and_saturates():
    logits = torch.tensor([[[0.0, 1.0, -2.0], [3.0, 0.5, -1.0], [100.0, 100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])  # the third token is padding
    out = splade_pool(logits, mask)
    expected = torch.tensor([[math.log1p(3.0), math.log1p(1.0), 0.0]])
    assert torch.allclose(out, expected)
    assert torch.equal(logits[0, 2], torch.full((3,), 100.0))  # input left unchanged


def test_sparse_vectors_roundtrip():
    docs, _ = _corpus()
    assert docs.nnz_per_row().tolist() == [2, 2, 1]
    rows = [docs.row(i) for i in (2, 0)]
    again = SparseVectors.from_rows(rows, 5)
    assert again.row(0)[0].tolist() == [3] and again.row(1)[1].tolist() == [1.0, 2.0]


def test_idf_query_encoder(tmp_path):
    class Tok:
        vocab = {"[PAD]": 0, "cat": 1, "dog": 2, "the": 3}

        def __len__(self):
            return 4

        def convert_tokens_to_ids(self, toks):
            return [self.vocab.get(t) for t in toks]

    (tmp_path / "idf.json").write_text('{"cat": 2.5, "dog": 1.5, "the": 0.1, "unknown": 9.0}')
    enc = IdfQueryEncoder.from_file(tmp_path / "idf.json", Tok())
    assert enc.encode([1, 1, 3]).tolist() == pytest.approx([0.0, 2.5, 0.0, 0.1])
