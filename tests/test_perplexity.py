"""Perplexity tokenizes only what its windows need: the same ids, so the same windows and numbers."""

from __future__ import annotations

import os

import pytest
import torch

from sparsebench.task import tasks
from sparsebench.tasks.perplexity import MARGIN_TOKENS, leading_tokens
from sparsebench.text import load_documents


class _Ids:
    def __init__(self, ids: list[int]):
        self.input_ids = torch.tensor([ids])


class LengthPrefixedChars:
    """A toy tokenizer whose first id depends on the whole text (its length mod 97): a boundary
    effect that reaches the first token, so no prefix of the text starts with the whole's ids."""

    def __call__(self, text: str, return_tensors: str = "pt") -> _Ids:
        return _Ids([len(text) % 97, *map(ord, text)])


@pytest.fixture(scope="module")
def smollm_tokenizer(smollm_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm_tokenizer_dir)


def _stream(asset: str, docs: int | None = None) -> str:
    return "\n\n".join(load_documents(asset)[0][:docs])


def test_a_prefix_that_disagrees_with_a_longer_one_grows_to_the_whole_text():
    text = "sparse windows " * 2000
    tok = LengthPrefixedChars()
    assert torch.equal(leading_tokens(tok, text, 100), tok(text).input_ids[0][:100])
    assert torch.equal(leading_tokens(tok, "short", 100), tok("short").input_ids[0])  # fewer ids than asked: all


@pytest.mark.parametrize("n", [1, 64 * 3, 2048])
def test_leading_tokens_equal_the_whole_streams_on_lambada(smollm_tokenizer, n):
    text = _stream("lambada-text", 400)  # ~40k tokens
    whole = smollm_tokenizer(text, return_tensors="pt").input_ids[0]
    assert whole.numel() > n + MARGIN_TOKENS
    assert torch.equal(leading_tokens(smollm_tokenizer, text, n), whole[:n])


def test_quick_windows_are_the_whole_streams_first_windows(tiny_model_dirs):
    from sparsebench.models import load_model, resolve_model

    loaded = load_model(resolve_model(str(tiny_model_dirs["llama"])))
    task = tasks.get("lambada-ppl").from_mapping({"seqlen": 64, "windows": 3})
    assert torch.equal(task.token_stream(loaded, 3 * 64), task.token_stream(loaded, None)[: 3 * 64])
    (row,) = task.evaluate(loaded, progress=False)
    assert row.details["windows"] == 3 and row.n == 3 * 63
    assert "stream_tokens" not in row.details  # the rest of the stream was never tokenized


@pytest.fixture(scope="module", params=["wikitext2-test", "lambada-text"])
def real_stream(request, smollm_tokenizer) -> tuple[str, torch.Tensor]:
    """A real evaluation text and the ids of tokenizing all of it at once."""
    if request.param == "wikitext2-test" and not os.environ.get("SPARSEBENCH_DATA_DIR"):
        pytest.skip("SPARSEBENCH_DATA_DIR (with wikitext-2-raw/) is not set")
    text = _stream(request.param)
    return text, smollm_tokenizer(text, return_tensors="pt").input_ids[0]


@pytest.mark.slow
@pytest.mark.parametrize("windows,seqlen", [(4, 2048), (1, 2048), (16, 2048), (2, 64)])
def test_evaluated_windows_equal_the_whole_streams_on_real_text(smollm_tokenizer, real_stream, windows, seqlen):
    text, whole = real_stream
    n = windows * seqlen
    assert torch.equal(leading_tokens(smollm_tokenizer, text, n), whole[:n])
