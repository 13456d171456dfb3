"""Suites as files: show, edit, check and run them; one-run overrides; identities that never mix."""

from __future__ import annotations

import dataclasses
import json
import random
import sqlite3
from importlib.resources import files

import pytest
import torch

from sparsebench.calibration_data import CalibrationSpec, CalibrationText, sampling_rules
from sparsebench.cli import main
from sparsebench.errors import InvalidSpecError
from sparsebench.suite_file import dump_suite, load_suite, parse_suite
from sparsebench.suites import Suite, suites
from sparsebench.task import tasks

BUILTIN = sorted(suites.list())


def _run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def _stored(db):
    if not db.exists():
        return []
    with sqlite3.connect(db) as c:
        return [(name, version, json.loads(spec)) for name, version, spec in c.execute("select suite, suite_version, spec from runs")]


# ----------------------------------------------------------------------------- the shipped files


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_suites_are_files_that_round_trip(name):
    suite = suites.get(name)
    assert suite.source == f"sparsebench/builtin_suites/{name}.toml"
    assert (files("sparsebench.builtin_suites") / f"{name}.toml").is_file()
    again = parse_suite(dump_suite(suite), "shown.toml")
    assert again.settings() == suite.settings() and again.identity() == suite.identity()
    assert suite.identity().name == name  # the registered settings keep the plain name
    assert set(suite.tasks) <= set(suite.task_settings)  # resolved: every default task has its table


def test_wikitext2_ref_is_the_reference_protocol():
    s = suites.get("wikitext2-ref")
    assert dataclasses.asdict(s.calibration) == {"dataset": "wikitext2-train-rows", "nsamples": 128, "seqlen": 2048, "seed": 0,
                                                 "rule": "reference"}
    assert s.tasks == ("wikitext2",)
    settings = s.settings_of("wikitext2")
    assert (settings.dataset, settings.seqlen, settings.windows) == ("wikitext2-test-rows", 2048, None)


def test_a_changed_setting_changes_the_digest_and_derives_the_name():
    quick = suites.get("quick")
    changed = quick.with_settings(["lambada-ppl.windows=3"])
    ident = changed.identity()
    assert ident.settings != quick.identity().settings and ident.version == "2"
    assert ident.name == f"quick+{ident.settings[:6]}"
    assert quick.with_settings(["lambada-ppl.windows=3"]).identity() == ident  # deterministic
    assert quick.with_settings(["lambada-ppl.windows=4"]).identity() == quick.identity()  # the suite's own value: no change
    renamed = dataclasses.replace(quick, name="my-suite")  # a name nobody registered is derived too
    assert renamed.identity().name == f"my-suite+{quick.identity().settings[:6]}"
    assert dataclasses.replace(quick, version="3").identity().name.startswith("quick+")


@pytest.mark.parametrize("assignment,check", [
    ("wikitext2.windows=16", lambda s: s.settings_of("wikitext2").windows == 16),
    ("wikitext2.windows=none", lambda s: s.settings_of("wikitext2").windows is None),
    ("wikitext2.dataset=wikitext2-test-raw", lambda s: s.settings_of("wikitext2").dataset == "wikitext2-test-raw"),
    ("arc_easy.limit=none", lambda s: s.settings_of("arc_easy").limit is None),
    ("arc_easy.limit=0", lambda s: s.settings_of("arc_easy").limit is None),  # 0 is the whole split too
    ("arc_easy.split=validation", lambda s: s.settings_of("arc_easy").split == "validation"),
    ("calibration.nsamples=8", lambda s: s.calibration.nsamples == 8),
    ("calibration.rule=reference", lambda s: s.calibration.rule == "reference"),
])
def test_set_reads_each_value_as_its_settings_type(assignment, check):
    assert check(suites.get("quick").with_settings([assignment]))


def test_several_sets_of_one_table_all_apply():
    s = suites.get("wikitext2-ref").with_settings(["wikitext2.dataset=wikitext2-test-raw", "wikitext2.windows=2",
                                                   "calibration.nsamples=8", "calibration.seqlen=512"])
    settings = s.settings_of("wikitext2")
    assert (settings.dataset, settings.windows, s.calibration.nsamples, s.calibration.seqlen) == ("wikitext2-test-raw", 2, 8, 512)


@pytest.mark.parametrize("assignment,expected", [
    ("wikitext2.windos=2", "--set wikitext2 has no setting 'windos'; did you mean 'windows'?"),
    ("wikitext2.windows=two", "--set wikitext2: setting windows: cannot read 'two' as int"),
    ("wikitext2.windows=-2", "setting windows must be a finite number >= 1, got -2"),
    ("wikitext2.seqlen=1.5", "cannot read '1.5' as int"),
    ("wikitext2.dataset=c4-train", "--set wikitext2: setting dataset must be one of 'wikitext2-test', "),
    ("calibration.nsamples=0", "setting nsamples must be a finite number >= 1, got 0"),
    ("calibration.dataset=wikitxt2-train", "unknown dataset 'wikitxt2-train'; did you mean"),
    ("wikitxt2.windows=2", "unknown task 'wikitxt2'; did you mean 'wikitext2'"),
    ("imagenet-samples.batch_size=2", "is for image-classification models"),
    ("windows=2", "--set takes TASK.KEY=VALUE"),
])
def test_set_errors_are_the_files_errors(assignment, expected):
    with pytest.raises(InvalidSpecError, match=expected.replace("?", r"\?").replace("(", r"\(")):
        suites.get("quick").with_settings([assignment])


def test_calibration_override_keeps_the_rule():
    ref = suites.get("wikitext2-ref").with_calibration("wikitext2-valid-tokenized:8x512")
    assert str(ref.calibration) == "wikitext2-valid-tokenized:8x512@0 (reference)"
    assert ref.with_calibration("lambada-text:4x64@3").calibration.seed == 3
    for bad, expected in [("lambada-text:4", "takes DATASET:NxL"), ("lambda-text:4x64", "unknown dataset"),
                          ("lambada-text:0x64", "nsamples must be")]:
        with pytest.raises(InvalidSpecError, match=expected):
            ref.with_calibration(bad)


def test_a_text_calibration_set_cannot_calibrate_an_image_suite():
    with pytest.raises(InvalidSpecError, match="is a text dataset, which cannot calibrate image-classification"):
        suites.get("vision-quick").with_calibration("lambada-text:4x64")


def test_a_python_suite_with_mappings_is_checked_like_a_file():
    """Plugins register Suite objects (entry point group sparsebench.suites) with plain mappings."""
    s = Suite("plugin", "1", "", CalibrationSpec("lambada-text", 4, 64), ("lambada-ppl",), {"lambada-ppl": {"seqlen": 64}})
    assert s.settings_of("lambada-ppl") == tasks.get("lambada-ppl").Settings(seqlen=64)
    assert s.identity().name.startswith("plugin+")
    with pytest.raises(InvalidSpecError, match="suite 'plugin': \\[lambada-ppl\\] has no setting 'seqln'"):
        Suite("plugin", "1", "", CalibrationSpec("lambada-text", 4, 64), ("lambada-ppl",), {"lambada-ppl": {"seqln": 64}})


# ----------------------------------------------------------------------------- files a user writes


GOOD = (files("sparsebench.builtin_suites") / "unit.toml").read_text()


def test_limit_zero_and_none_are_one_identity():
    from sparsebench.suites import suites

    quick = suites.get("quick")
    assert quick.with_settings(["arc_easy.limit=0"]).identity() == quick.with_settings(["arc_easy.limit=none"]).identity()


@pytest.mark.parametrize("edit,expected", [
    (("windows = 2", "windos = 2"), "[lambada-ppl] has no setting 'windos'; did you mean 'windows'?"),
    (("nsamples = 4", 'nsamples = "4"'), "[calibration]: setting nsamples must be an integer, got '4'"),
    (('dataset = "lambada-text"', 'dataset = "lambda-text"'), "unknown dataset 'lambda-text'; did you mean 'lambada-text'?"),
    (("nsamples = 4", "nsamples = -4"), "[calibration]: setting nsamples must be a finite number >= 1, got -4"),
    (('version = "1"\n', ""), "missing 'version'"),
    (('version = "1"', "version = 1"), "version must be a string, got 1"),
    (('version = "1"', 'verison = "1"'), "unknown key 'verison'; did you mean 'version'?"),
    (('rule = "documents"', 'rule = "documentz"'), "unknown sampling-rule 'documentz'"),
    (("[lambada-ppl]", "[lambada-pp]"), "unknown task 'lambada-pp'; did you mean 'lambada-ppl'?"),
    (('tasks = ["lambada-ppl"]', 'tasks = ["lambada-ppl", "arc_easy"]\n[arc_easy]\nlimit = -1'), "zero-shot limit must be >= 0"),
    (("seqlen = 64\nwindows = 2", "seqlen = nan\nwindows = 2"), "must be an integer, got nan"),
    (('name = "unit"', "name = "), "not valid TOML"),
])
def test_malformed_suite_files_are_one_line_exit_2_and_store_nothing(capsys, tmp_path, edit, expected):
    old, new = edit
    assert old in GOOD
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(old, new, 1))
    code, out, err = _run_cli(capsys, "suite", "check", str(path))
    assert code == 2 and not out
    assert err.startswith(f"error: {path}: ") and expected in err and len(err.splitlines()) == 1, err
    db = tmp_path / "r.db"
    code, _, err = _run_cli(capsys, "run", "--db", f"sqlite:///{db}", "--suite", str(path), "--no-progress")
    assert code == 2 and expected in err and len(err.splitlines()) == 1 and not db.exists()


def test_show_edit_run_a_suite_file(capsys, tmp_path, tiny_model_dirs):
    """`suite show quick > my.toml`, an edit, `run --suite my.toml`: stored under its own identity."""
    code, shown, _ = _run_cli(capsys, "suite", "show", "quick")
    assert code == 0 and shown.startswith("# suite quick v2")
    mine = tmp_path / "my.toml"
    mine.write_text(shown.replace("windows = 4\nbatch_size = 1\n\n[piqa]", "windows = 1\nbatch_size = 1\n\n[piqa]"))
    assert mine.read_text() != shown  # the edit hit [lambada-ppl]
    db = tmp_path / "r.db"
    args = ["run", "--db", f"sqlite:///{db}", "--model", str(tiny_model_dirs["llama"]), "-m", "magnitude", "--task", "lambada-ppl",
            "--no-progress"]
    code, _, err = _run_cli(capsys, *args, "--suite", str(mine))
    assert code == 0, err
    (name, version, spec), = _stored(db)
    assert name.startswith("quick+") and version == "2" and name in err
    assert spec["identity"]["suite"]["settings"] == load_suite(str(mine)).identity().settings
    unedited = tmp_path / "quick.toml"
    unedited.write_text(shown)
    code, _, err = _run_cli(capsys, *args, "--suite", str(unedited))  # the registered settings: the plain name
    assert code == 0, err
    assert [n for n, _, _ in _stored(db)] == [name, "quick"]
    code, _, err = _run_cli(capsys, *args, "--suite", "quick")
    assert code == 0 and "already stored as run 2" in err
    code, out, _ = _run_cli(capsys, "results", "--db", f"sqlite:///{db}", "--format", "markdown")
    assert f"{name} v2" in out and "quick v2" in out


def test_overrides_run_under_a_derived_identity(capsys, tmp_path, tiny_model_dirs):
    db = tmp_path / "r.db"
    args = ["run", "--db", f"sqlite:///{db}", "--model", str(tiny_model_dirs["llama"]), "--suite", "unit", "-m", "wanda", "--no-progress"]
    code, _, err = _run_cli(capsys, *args, "--set", "lambada-ppl.windows=1", "--calibration", "lambada-text:2x32")
    assert code == 0, err
    code, out, _ = _run_cli(capsys, *args, "--dry-run", "--set", "lambada-ppl.windows=1", "--calibration", "lambada-text:2x32")
    assert code == 0 and "already stored as run 1" in out and "suite unit+" in out
    (name, _, spec), = _stored(db)
    assert name == suites.get("unit").with_settings(["lambada-ppl.windows=1"]).with_calibration("lambada-text:2x32").identity().name
    assert name.startswith("unit+")
    with sqlite3.connect(db) as c:
        calibration, prov = c.execute("select calibration, provenance from runs").fetchone()
    prov = json.loads(prov)
    assert calibration == "lambada-text:2x32@0 (documents)"
    assert prov["suite"]["settings"]["calibration"]["nsamples"] == 2
    assert set(prov["datasets"]) == {"lambada-text"}
    code, _, err = _run_cli(capsys, *args, "--set", "lambada-ppl.windows=0")
    assert code == 2 and err == "error: --set lambada-ppl: setting windows must be a finite number >= 1, got 0\n"
    assert len(_stored(db)) == 1


def test_missing_evaluation_data_fails_before_the_model_loads(capsys, tmp_path, tiny_model_dirs, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    db = tmp_path / "r.db"
    code, _, err = _run_cli(capsys, "run", "--db", f"sqlite:///{db}", "--model", str(tiny_model_dirs["llama"]), "--suite", "unit",
                            "--task", "wikitext2", "--set", "wikitext2.dataset=wikitext2-test-rows", "--no-progress")
    assert code == 2 and "cannot find 'wikitext2-test-rows'" in err and "loading" not in err and not _stored(db)


# ----------------------------------------------------------------------------- sampling rules


class _CharTokenizer:
    """One id per character: windows are easy to check by hand."""

    def __call__(self, text, return_tensors="pt"):
        return type("Enc", (), {"input_ids": torch.tensor([[ord(c) for c in text]])})()


def test_reference_rule_is_the_reference_loaders():
    text = CalibrationText("t", ("alpha beta", "", "gamma delta epsilon"), " ")
    got = sampling_rules.get("reference").sample(text, _CharTokenizer(), 5, 4, 7)
    ids = [ord(c) for c in "alpha beta  gamma delta epsilon"]
    random.seed(7)
    want = []
    for _ in range(5):
        i = random.randint(0, len(ids) - 4 - 1)
        want.append(ids[i : i + 4])
    assert got.tolist() == want


def test_reference_documents_rule_is_the_reference_c4_loader():
    docs = ("short", "a much longer document", "tiny", "another long document here")
    got = sampling_rules.get("reference-documents").sample(CalibrationText("t", docs, None), _CharTokenizer(), 6, 8, 1)
    random.seed(1)
    want = []
    for _ in range(6):
        while True:
            ids = [ord(c) for c in docs[random.randint(0, len(docs) - 1)]]
            if len(ids) > 8:
                break
        i = random.randint(0, len(ids) - 8 - 1)
        want.append(ids[i : i + 8])
    assert got.tolist() == want


def test_rules_fail_in_one_line_when_the_text_is_too_short():
    for rule in ("reference", "reference-documents", "documents"):
        with pytest.raises(InvalidSpecError):
            sampling_rules.get(rule).sample(CalibrationText("t", ("abc",), None), _CharTokenizer(), 2, 8, 0)
