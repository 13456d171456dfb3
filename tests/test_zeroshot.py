"""Zero-shot tasks through lm-eval: offline configs equal lm-eval's standard ones, fixed subsets,
batch-size independence, the data chain, and storage next to perplexity."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsebench.calibration_data import CalibrationSpec
from sparsebench.errors import DataNotFoundError, InvalidSpecError
from sparsebench.suites import Suite, suites
from sparsebench.task import tasks
from sparsebench.tasks.zeroshot.data import ZEROSHOT_DATA

lm_eval = pytest.importorskip("lm_eval")

from sparsebench.tasks.zeroshot import configs as cfgs  # noqa: E402
from sparsebench.tasks.zeroshot.task import ZeroShotTask, subset_indices  # noqa: E402

TASKS = sorted(ZEROSHOT_DATA)
N_DOCS = 6
ALLOWED_DIFF = {"custom_dataset", "training_split", "validation_split", "test_split"}

if "unit-zeroshot" not in suites:
    suites.register("unit-zeroshot", Suite(
        "unit-zeroshot", "1", "tiny perplexity + tiny zero-shot subsets, for tests",
        CalibrationSpec("lambada-text", nsamples=4, seqlen=64, seed=0),
        ("lambada-ppl", "arc_easy", "piqa"),
        {"lambada-ppl": {"seqlen": 64, "windows": 2},
         "arc_easy": {"limit": 4, "split": "validation", "batch_size": 4},
         "piqa": {"limit": 4, "batch_size": 4}},
    ))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def _hub_schema(task: str, rows: list[dict]) -> list[dict]:
    """The rows as the hub dataset of lm-eval's standard config has them (BoolQ: super_glue's schema)."""
    if task != "boolq":
        return rows
    return [{"question": r["question"], "passage": r["passage"], "idx": i, "label": 1 if r["answer"] else 0}
            for i, r in enumerate(rows)]


def _requests(lm_task) -> list[tuple]:
    lm_task.build_all_requests(rank=0, world_size=1)
    return [(inst.doc_id, inst.idx, inst.arguments) for inst in lm_task.instances]


def _package_rows(task: str, n: int) -> list[dict]:
    import datasets

    from sparsebench.data import resolve

    found = resolve(ZEROSHOT_DATA[task].asset_name("validation"))
    assert found.source.kind == "package"
    return datasets.load_from_disk(str(found.path)).select(range(n)).to_list()


@pytest.mark.parametrize("task", TASKS)
def test_offline_config_gives_the_standard_prompts_and_targets(task, monkeypatch, tmp_path):
    """lm-eval's standard task (hub loading faked to serve these documents) and our offline task
    build identical requests (context, continuation) and targets for the same documents; ours
    skips the few-shot pool, never sampled at 0 shots."""
    import datasets
    from lm_eval.api.task import ConfigurableTask

    rows = _package_rows(task, N_DOCS)
    std_cfg = cfgs.standard_config(task)
    served: list[tuple] = []

    def fake_load_dataset(path=None, name=None, **kw):
        served.append((path, name))
        hub_rows = datasets.Dataset.from_list(_hub_schema(task, rows))
        return datasets.DatasetDict({s: hub_rows for s in ("train", "validation", "test")})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    standard = ConfigurableTask(config=std_cfg)  # lm-eval's own, few-shot pool and all
    assert served == [(std_cfg["dataset_path"], std_cfg.get("dataset_name"))]

    local = tmp_path / "split"
    datasets.Dataset.from_list(rows).save_to_disk(str(local))
    split = "validation"
    offline_cfg = cfgs.offline_config(task, split, local, ZEROSHOT_DATA[task].olmo_fmt)
    offline = cfgs.build_task(offline_cfg, num_fewshot=0)

    changed = {k for k in set(std_cfg) | set(offline_cfg) if std_cfg.get(k) != offline_cfg.get(k)}
    assert changed <= ALLOWED_DIFF, f"offline config changed {changed - ALLOWED_DIFF}"

    std_docs, off_docs = list(standard.eval_docs), list(offline.eval_docs)
    assert len(std_docs) == len(off_docs) == N_DOCS
    for a, b in zip(std_docs, off_docs):
        assert standard.fewshot_context(a, 0) == offline.fewshot_context(b, 0)
        assert standard.doc_to_choice(a) == offline.doc_to_choice(b)
        assert standard.doc_to_target(a) == offline.doc_to_target(b)
    assert _requests(standard) == _requests(offline)
    assert len(standard.sampler.df) == N_DOCS and len(offline.sampler.df) == 0  # at 0 shots no pool is built
    assert {m for m in standard.higher_is_better()} == {m for m in offline.higher_is_better()}


@pytest.fixture(scope="module")
def full_lm_eval_index():
    """lm-eval's standard index of every task config (what simple_evaluate builds without a TaskManager)."""
    from lm_eval.tasks import TaskManager

    return TaskManager().task_index


@pytest.mark.parametrize("task", TASKS)
def test_standard_config_is_the_one_lm_evals_full_index_finds(task, full_lm_eval_index):
    from lm_eval.tasks._yaml_loader import load_yaml

    ours = cfgs.task_manager(task)
    assert len(ours.task_index) <= 6  # one folder of lm-eval's task tree, not its ~14,000 configs
    full = full_lm_eval_index[task]
    assert ours.task_index[task].yaml_path == full.yaml_path
    standard = {k: v for k, v in load_yaml(full.yaml_path, resolve_func=True).items() if k not in ("tag", "group", "task_list")}
    assert cfgs.config_sha256(cfgs.standard_config(task)) == cfgs.config_sha256(standard)


def test_offline_split_keys_evaluate_the_requested_split():
    arc_val = cfgs.offline_config("arc_easy", "validation", "/nowhere", "hf-disk")
    assert (arc_val["validation_split"], arc_val["test_split"], arc_val["training_split"]) == ("validation", None, None)
    arc_test = cfgs.offline_config("arc_easy", "test", "/nowhere", "hf-disk")
    assert (arc_test["validation_split"], arc_test["test_split"]) == (None, "test")
    online = cfgs.online_config("arc_easy", "test")
    assert online == cfgs.standard_config("arc_easy")  # online = lm-eval's own task, untouched


def test_subset_is_fixed_seeded_and_sorted():
    a = subset_indices(570, 100, 0)
    assert a == subset_indices(570, 100, 0) and a == sorted(a) and len(set(a)) == 100
    assert a != subset_indices(570, 100, 1)
    assert subset_indices(570, None, 0) is None and subset_indices(50, 100, 0) is None


def test_settings_are_checked():
    cls = tasks.get("arc_easy")
    with pytest.raises(InvalidSpecError, match="split"):
        cls.from_mapping({"split": "train"})
    with pytest.raises(InvalidSpecError, match="limit"):
        cls.from_mapping({"limit": -1})
    assert cls.from_mapping({"limit": 0}).settings.limit is None  # 0: the whole split
    with pytest.raises(InvalidSpecError, match="batch_size"):
        cls.from_mapping({"batch_size": 0})
    with pytest.raises(InvalidSpecError, match="no setting"):
        cls.from_mapping({"shots": 5})


def test_every_paper_task_is_registered():
    assert set(TASKS) == {"boolq", "rte", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa", "piqa"}
    for t in TASKS:
        assert issubclass(tasks.get(t), ZeroShotTask)
    assert set(suites.get("paper").tasks) >= set(TASKS)


def test_missing_split_offline_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSEBENCH_DATA_DIR", str(tmp_path))
    task = tasks.get("openbookqa").from_mapping({})  # standard split: test, not shipped offline
    with pytest.raises(DataNotFoundError, match=r"zeroshot-openbookqa-test.*hub is disabled"):
        task.prepare()


def test_no_local_copy_falls_back_to_lm_evals_hub_task(monkeypatch, tmp_path):
    import datasets

    monkeypatch.setenv("SPARSEBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    asked = []

    def unreachable(path=None, name=None, **kw):
        asked.append((path, name))
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(DataNotFoundError, match="hub download failed too"):
        tasks.get("openbookqa").from_mapping({}).prepare()
    assert asked == [("allenai/openbookqa", "main")]  # lm-eval's own standard dataset


def _tiny_loaded(path):
    from sparsebench.models import load_model, resolve_model

    return load_model(resolve_model(str(path)))


def _scores(rows):
    return {(r.name, round(r.value, 12), r.n) for r in rows}


def test_scores_do_not_depend_on_batch_size(tiny_model_dirs):
    loaded = _tiny_loaded(tiny_model_dirs["llama"])
    results = {}
    for bs in (1, 5):
        settings = {"limit": 10, "split": "validation", "batch_size": bs}
        rows = tasks.get("arc_easy").from_mapping(settings).evaluate(loaded, progress=False)
        assert {r.details["batch_size"] for r in rows} == {bs}
        results[bs] = rows
    assert _scores(results[1]) == _scores(results[5])
    assert {r.name for r in results[1]} == {"acc", "acc_norm"}


@pytest.mark.parametrize("task", ["hellaswag", "arc_easy"])  # hellaswag: lm-eval's process_docs rewrites each doc
def test_subset_scores_equal_lm_evals_own_selection(tiny_model_dirs, task):
    """The subset handed to lm-eval as the whole split scores every document as lm-eval's own
    ``samples=`` selection over the full split does, under the split's document indices."""
    from lm_eval.models.huggingface import HFLM

    from sparsebench.tasks.zeroshot.task import _without_lm_eval_run_metadata

    loaded = _tiny_loaded(tiny_model_dirs["llama"])
    t = tasks.get(task).from_mapping({"limit": 5, "split": "validation", "batch_size": 3})
    rows = {r.name: r for r in t.evaluate(loaded, progress=False)}
    prepared = t.prepare()
    name = prepared.lm_task.config.task
    indices = subset_indices(len(prepared.lm_task.eval_docs), 5, 0)
    with _without_lm_eval_run_metadata():
        out = lm_eval.simple_evaluate(model=HFLM(pretrained=loaded.model, tokenizer=loaded.processor, batch_size=3),
                                      tasks=[prepared.lm_task], num_fewshot=0, batch_size=3,
                                      samples={name: indices}, log_samples=True)
    ref = {x["doc_id"]: x["acc"] for x in out["samples"][name] if x["filter"] == "none"}
    got = rows["acc"].items
    assert sorted(ref) == indices and len(indices) == 5
    assert dict(zip((int(i) for i in got.ids), got.scores)) == ref
    assert rows["acc"].value == pytest.approx(out["results"][name]["acc,none"], abs=1e-12)
    assert rows["acc"].details["docs_in_split"] == len(prepared.lm_task.eval_docs) > 5


def test_evaluation_never_builds_lm_evals_whole_index(tiny_model_dirs, monkeypatch):
    """Only the evaluated task's folder of lm-eval's task tree is indexed (the whole index costs ~5 s)."""
    import lm_eval.tasks
    from lm_eval.tasks._index import TaskIndex

    indexed: list[list] = []
    build = TaskIndex.build
    monkeypatch.setattr(TaskIndex, "build", staticmethod(lambda paths, **kw: indexed.append(list(paths)) or build(paths, **kw)))
    cfgs._folder_index.cache_clear()
    rows = tasks.get("piqa").from_mapping({"limit": 2, "batch_size": 2}).evaluate(_tiny_loaded(tiny_model_dirs["llama"]), progress=False)
    assert rows and rows[0].n == 2
    assert indexed == [[Path(lm_eval.tasks.__file__).parent / "piqa"]]


def test_data_dir_copy_wins_and_is_recorded(tiny_model_dirs, monkeypatch, tmp_path):
    import datasets

    rows = _package_rows("rte", 3)
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "zeroshot" / "rte" / "validation"))
    monkeypatch.setenv("SPARSEBENCH_DATA_DIR", str(tmp_path))
    out = tasks.get("rte").from_mapping({"batch_size": 2}).evaluate(_tiny_loaded(tiny_model_dirs["llama"]), progress=False)
    (acc,) = out  # lm-eval's rte defines acc only
    assert acc.name == "acc" and acc.n == 3 and acc.details["docs_in_split"] == 3
    assert acc.details["dataset_source"].startswith("$SPARSEBENCH_DATA_DIR")
    assert acc.details["num_fewshot"] == 0 and acc.details["lm_eval_version"] == lm_eval.__version__
    assert acc.details["lm_eval_task_version"] == 1.0 and len(acc.details["lm_eval_config_sha256"]) == 16


def test_run_stores_accuracy_next_to_perplexity(tiny_model_dirs, store):
    from sparsebench.runner import run
    from sparsebench.spec import RunSpec

    res = run(RunSpec(method="magnitude", model=str(tiny_model_dirs["llama"]), sparsity=0.5, suite="unit-zeroshot"),
              store, progress=False)
    df = store.results()
    got = {(t, m) for t, m in zip(df["task"], df["metric"])}
    assert {("lambada-ppl", "perplexity"), ("arc_easy", "acc"), ("arc_easy", "acc_norm"), ("piqa", "acc"), ("piqa", "acc_norm")} <= got
    acc = df[(df.task == "arc_easy") & (df.metric == "acc")].iloc[0]
    assert acc["n"] == 4 and 0.0 <= acc["value"] <= 1.0 and acc["stderr"] is not None
    assert acc["details"]["split"] == "validation" and acc["details"]["limit"] == 4
    assert res.record.identity.sparsity == 0.5
    # per-document scores: lm-eval's own logged samples, keyed by the document's index in the split
    items = acc["items"]
    expected = subset_indices(acc["details"]["docs_in_split"], 4, 0)
    assert sorted(int(i) for i in items["ids"]) == expected and set(items["scores"]) <= {0.0, 1.0}
    assert sum(items["scores"]) / 4 == pytest.approx(acc["value"], abs=1e-12)
    ppl = df[df.task == "lambada-ppl"].iloc[0]
    assert ppl["items"]["ids"] == ["0", "1"] and ppl["items"]["tokens"] == [63, 63] and ppl["n"] == 126


@pytest.mark.slow
def test_dense_smollm2_beats_chance_on_arc_easy():
    """The real offline model through the whole path: 30 fixed ARC-Easy validation questions."""
    from sparsebench.models import load_model, models

    loaded = load_model(models.get("llama"))
    rows = {r.name: r for r in tasks.get("arc_easy").from_mapping({"limit": 30, "split": "validation"}).evaluate(loaded, progress=False)}
    assert rows["acc"].n == 30
    assert rows["acc"].value > 0.4  # chance is ~0.25 (4 choices); SmolLM2-135M scores ~0.6 on this split
