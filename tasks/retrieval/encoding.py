"""Learned sparse encoding: SPLADE representations, and the inference-free query side.

SPLADE (Formal et al., 2021, arXiv:2107.05720): a text's weight for vocabulary term ``j`` is
``max_t log(1 + ReLU(logit[t, j]))`` over its (attention-masked) tokens ``t``, from the
masked-LM head. Inference-free encoders (OpenSearch neural sparse "doc" models) encode only
documents this way; a query is its tokens weighted by a fixed per-token table (``idf.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from sparsebench.models import LoadedModel

from .index import SparseVectors


def splade_pool(logits: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``[B, T, V]`` MLM logits → ``[B, V]`` SPLADE weights (max over unmasked tokens)."""
    w = torch.relu(logits.float())  # a new tensor; the in-place steps below keep peak memory at 2x
    w.log1p_().mul_(attention_mask.unsqueeze(-1).to(w.dtype))
    return w.amax(dim=1)


@torch.inference_mode()
def encode(loaded: LoadedModel, texts: list[str], max_length: int, batch_size: int, progress: bool = False, desc: str = "encode") -> SparseVectors:
    """SPLADE representations of ``texts`` (batched in length order, returned in input order)."""
    from tqdm.auto import tqdm

    tok, model = loaded.processor, loaded.model
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    rows: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(texts)
    vocab = model.config.vocab_size
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, leave=False, unit="batch"):
        idx = order[start : start + batch_size]
        enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(loaded.device)
        dense = splade_pool(model(**enc).logits, enc["attention_mask"]).cpu()
        vocab = dense.shape[1]
        for i, row in zip(idx, dense):
            terms = row.nonzero().squeeze(1)
            rows[i] = (terms, row[terms])
    return SparseVectors.from_rows(rows, vocab)  # type: ignore[arg-type]


@dataclass(frozen=True)
class IdfQueryEncoder:
    """Inference-free query side: each distinct query token gets its weight from ``idf.json``."""

    weights: torch.Tensor  # [V]

    @classmethod
    def from_file(cls, path: Path, tokenizer) -> IdfQueryEncoder:
        table = json.loads(Path(path).read_text())
        w = torch.zeros(len(tokenizer), dtype=torch.float32)
        ids = tokenizer.convert_tokens_to_ids(list(table))
        for tid, v in zip(ids, table.values()):
            if tid is not None and tid >= 0:
                w[tid] = float(v)
        return cls(w)

    def encode(self, ids: list[int]) -> torch.Tensor:
        row = torch.zeros(self.weights.numel())
        t = torch.tensor(sorted(set(ids)), dtype=torch.long)
        if t.numel():
            row[t] = self.weights[t]
        return row
