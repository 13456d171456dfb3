"""The CLI as a new user meets it: one-line errors, exit status 2, nothing stored."""

from __future__ import annotations

import sqlite3

import pytest

from sparsebench.cli import main


def _run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def _rows(db):
    if not db.exists():
        return 0
    with sqlite3.connect(db) as c:
        return c.execute("select count(*) from runs").fetchone()[0]


@pytest.mark.parametrize("args,expected", [
    (["--method", "wandaa"], "unknown method 'wandaa'"),
    (["--method", "magnitud"], "did you mean 'magnitude'"),
    (["--model", "lamma"], "unknown model 'lamma'; did you mean 'llama'"),
    (["--task", "wikitex2"], "unknown task 'wikitex2'; did you mean 'wikitext2'"),
    (["--suite", "quik"], "unknown suite 'quik'; did you mean 'quick'"),
    (["--sparsity", "1.2"], "sparsity must be in [0, 1), got 1.2"),
    (["--sparsity", "-0.1"], "sparsity must be in [0, 1), got -0.1"),
    (["--pattern", "5:4"], "N:M pattern needs 0 < N < M, got 5:4"),
    (["--pattern", "2:4", "--sparsity", "0.7"], "implies sparsity 0.5"),
    (["--sparsity", "half"], "'half' is not a valid float"),
    (["--param", "alpha=3"], "method 'magnitude' has no parameter 'alpha'"),
    (["--method", "wanda", "--offload"], "--offload moves one block at a time to a GPU; pass --device cuda"),
    (["--seed", "-1"], "Invalid value for '--seed': -1 is not in the range x>=0"),
    (["--threads", "0"], "Invalid value for '--threads': 0 is not in the range x>=1"),
    (["--method", "shortgpt", "--pattern", "heads"], "method 'shortgpt' does not support pattern heads"),
    (["--method", "wanda", "--pattern", "channels"], "method 'wanda' does not support pattern channels"),
    (["--method", "shortgpt", "--pattern", "depth", "--kernels", "csr"], "sparse kernels do not apply"),
    (["--pattern", "layers"], "'depth', 'heads' or 'channels'"),
])
def test_bad_input_is_one_line_exit_2_and_no_row(capsys, tmp_path, args, expected):
    db = tmp_path / "r.db"
    code, _, err = _run_cli(capsys, "run", "--db", f"sqlite:///{db}", "--no-progress", *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert _rows(db) == 0


@pytest.mark.gpu
def test_offload_run_prunes_on_the_gpu_and_evaluates_on_the_cpu(capsys, tmp_path, tiny_model_dirs):
    db = tmp_path / "r.db"
    code, _, err = _run_cli(capsys, "run", "--db", f"sqlite:///{db}", "--model", str(tiny_model_dirs["llama"]), "--suite", "unit",
                            "--method", "sparsegpt", "--device", "cuda", "--offload", "--no-progress")
    assert code == 0 and "stored run 1" in err and _rows(db) == 1


def test_unwritable_db_path(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = _run_cli(capsys, "run", "--db", f"sqlite:///{blocker}/sub/r.db")
    assert code == 2 and err.startswith("error: cannot create the database folder") and len(err.strip().splitlines()) == 1


def test_db_that_is_not_sqlite(capsys, tmp_path):
    db = tmp_path / "r.db"
    db.write_bytes(b"definitely not a database" * 50)
    code, _, err = _run_cli(capsys, "run", "--db", f"sqlite:///{db}")
    assert code == 2 and "error: cannot use database" in err and "file is not a database" in err
    assert db.read_bytes() == b"definitely not a database" * 50


def test_results_on_missing_db(capsys, tmp_path):
    code, _, err = _run_cli(capsys, "results", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert code == 2 and err.startswith("error: no database at")


@pytest.mark.parametrize("kind", ["methods", "models", "tasks", "suites", "datasets", "kernels"])
def test_list(capsys, kind):
    code, out, _ = _run_cli(capsys, "list", kind)
    assert code == 0 and out.strip()


def test_help_teaches(capsys):
    code, out, _ = _run_cli(capsys, "run", "--help")
    assert code == 0 and "--pattern" in out and "2:4" in out and "spec hash" in out


def test_run_stores_once_and_skips_the_same_spec(capsys, tmp_path, tiny_model_dirs):
    db = tmp_path / "new" / "folder" / "r.db"  # a writer creates the database and its folders
    args = ["run", "--db", f"sqlite:///{db}", "--model", str(tiny_model_dirs["gpt2"]), "--suite", "unit",
            "--method", "magnitude", "--pattern", "2:4", "--no-progress"]
    code, out, err = _run_cli(capsys, *args)
    assert code == 0 and "stored run 1" in err and "lambada-ppl" in out
    assert f"from local folder {tiny_model_dirs['gpt2'].resolve()} ..." in err and "$SPARSEBENCH_DATA_DIR" not in err
    assert "Loading weights" not in err and "it/s]" not in err  # --no-progress quiets transformers' bars too
    from transformers.utils.logging import is_progress_bar_enabled

    assert is_progress_bar_enabled()  # and leaves them as they were after the run
    code, out, err = _run_cli(capsys, *args)
    assert code == 0 and "already stored as run 1" in err
    assert _rows(db) == 1
    code, _, err = _run_cli(capsys, *args, "--force")
    assert code == 0 and _rows(db) == 1
    for fmt in ("csv", "json", "markdown", "table"):
        code, out, _ = _run_cli(capsys, "results", "--db", f"sqlite:///{db}", "--format", fmt)
        assert code == 0 and "lambada-ppl" in out
    code, out, _ = _run_cli(capsys, "run", *args[1:], "--dry-run")
    assert code == 0 and "already stored as run 1" in out and "would run: magnitude" in out


def test_run_dry_run_validates_and_writes_nothing(capsys, tmp_path, tiny_model_dirs):
    db = tmp_path / "r.db"
    code, out, err = _run_cli(capsys, "run", "--db", f"sqlite:///{db}", "--model", str(tiny_model_dirs["llama"]), "--suite", "unit",
                              "-m", "wanda", "--dry-run")
    assert code == 0, err
    assert "would run: wanda on local:" in out and "suite unit v1: lambada-ppl" in out and "not stored yet" in out
    assert not db.exists()
    code, _, err = _run_cli(capsys, "run", "--db", f"sqlite:///{db}", "-m", "wanda", "--pattern", "5:4", "--dry-run")
    assert code == 2 and err.startswith("error: ")


def _bundle(tmp_path):
    from sparsebench.bundles import dumps, export_bundle
    from sparsebench.store import Store
    from sparsebench.testing import synthetic_run

    store = Store(f"sqlite:///{tmp_path / 'source.db'}")
    store.write_run(synthetic_run("magnitude", "tiny", 2.0))
    path = tmp_path / "bundle.json"
    path.write_text(dumps(export_bundle(store)))
    return path


@pytest.mark.parametrize("command", ["results", "export", "site", "import-missing", "import-dry-run", "sweep-dry-run"])
def test_commands_that_only_read_create_no_database(command, capsys, tmp_path, tiny_model_dirs):
    db = tmp_path / "missing" / "r.db"
    url = f"sqlite:///{db}"
    grid = tmp_path / "grid.toml"
    grid.write_text(f'models = ["{tiny_model_dirs["llama"]}"]\nmethods = ["magnitude"]\nsuites = ["unit"]\n')
    args, expected = {
        "results": (["results", "--db", url], 2),
        "export": (["export", "--db", url], 2),
        "site": (["site", "build", "--db", url, "--out", str(tmp_path / "site")], 2),
        "import-missing": (["import", "--db", url, str(tmp_path / "no-such-bundle.json")], 2),
        "import-dry-run": (["import", "--db", url, "--dry-run", str(_bundle(tmp_path))], 0),
        "sweep-dry-run": (["sweep", str(grid), "--db", url, "--dry-run"], 0),
    }[command]
    code, out, err = _run_cli(capsys, *args)
    assert code == expected, err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    if command == "import-dry-run":
        assert "would import 1 runs" in out
    assert not db.exists() and not db.parent.exists()


def test_export_of_a_database_holding_nan_is_one_line(capsys, tmp_path):
    from sparsebench.store import Store
    from sparsebench.testing import synthetic_run

    db = tmp_path / "r.db"
    Store(f"sqlite:///{db}").write_run(synthetic_run("owl", "tiny", 2.0, params={"m": 5.0}))
    with sqlite3.connect(db) as c:  # as an older sparsebench could store it
        c.execute("""update runs set method_params = '{"m": NaN}'""")
    code, out, err = _run_cli(capsys, "export", "--db", f"sqlite:///{db}")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "run 1 in the database holds a non-finite number at method_params.m" in err


def _results_db(tmp_path):
    from sparsebench.store import Store
    from sparsebench.testing import synthetic_run

    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.write_run(synthetic_run("dense", "tiny", 20.0, sparsity=0.0))
    store.write_run(synthetic_run("magnitude", "tiny", 25.0))
    store.write_run(synthetic_run("magnitude", "tiny", 40.0, sparsity=0.7, method_source="0" * 64))  # stored before an edit
    store.write_run(synthetic_run("random", "tiny", 0.3, sparsity=0.7, task=("piqa", "1", "acc", True)))
    return store


def test_results_show_one_row_per_run_with_headline_metrics(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: no cell wraps
    store = _results_db(tmp_path)
    code, out, err = _run_cli(capsys, "results", "--db", store.url)
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 2 + 4  # header, rule, one row per run
    assert lines[0].split() == ["id", "method", "model", "pattern", "sparsity", "achieved", "lambada-ppl", "piqa"]
    assert "1 of these runs used a method source that has changed since" in err
    code, out, _ = _run_cli(capsys, "results", "--db", store.url, "--long", "--format", "markdown")
    assert code == 0 and len(out.strip().splitlines()) == 2 + 4 and "perplexity" in out and "| metric" in out


def test_results_stale_lists_runs_whose_method_source_changed(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    store = _results_db(tmp_path)
    code, out, _ = _run_cli(capsys, "results", "--db", store.url, "--stale")
    rows = out.strip().splitlines()[2:]
    assert code == 0 and len(rows) == 1 and rows[0].split()[:5] == ["3", "magnitude", "tiny", "unstructured", "0.7"]


def test_csv_and_json_carry_the_metric_details(capsys, tmp_path):
    import io
    import json

    import pandas as pd

    store = _results_db(tmp_path)
    code, out, _ = _run_cli(capsys, "results", "--db", store.url, "--format", "csv")
    df = pd.read_csv(io.StringIO(out))
    assert code == 0 and len(df) == 4 and "details.synthetic" in df and df["details.synthetic"].all()
    code, out, _ = _run_cli(capsys, "results", "--db", store.url, "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 4 and rows[0]["details"] == {"synthetic": True}


@pytest.mark.parametrize("kind", ["methods", "models", "tasks", "suites", "datasets", "kernels"])
def test_list_tables_fit_the_terminal(capsys, monkeypatch, kind):
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = _run_cli(capsys, "list", kind)
    widths = [len(line) for line in out.splitlines()]
    assert code == 0 and max(widths) <= 100, max(widths)


@pytest.mark.parametrize("args,timed", [(["-m", "shortgpt", "-p", "depth"], "timing shrunk"), (["-m", "magnitude"], "timing auto"),
                                        (["-m", "magnitude", "--kernels", "csr"], "timing csr")])
def test_latency_times_the_shrunk_model_or_the_fastest_kernels(capsys, tmp_path, tiny_model_dirs, args, timed):
    code, out, _ = _run_cli(capsys, "run", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--model", str(tiny_model_dirs["llama"]),
                            "--suite", "unit", "--latency", "--dry-run", *args)
    assert code == 0 and f"{timed} on " in out


@pytest.mark.parametrize("fmt", ["table", "csv", "markdown", "json"])
def test_results_latency_shows_each_speedup_with_its_range(capsys, tmp_path, monkeypatch, fmt):
    from sparsebench.store import Store

    monkeypatch.setenv("COLUMNS", "250")  # a table wider than the terminal wraps its cells
    from sparsebench.testing import synthetic_run

    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.write_run(synthetic_run("wanda", "llama", 30.0, kernels=(("dense", "ok", 1.0, None), ("csr", "ok", 1.3, None))))
    store.write_run(synthetic_run("magnitude", "llama", 40.0))
    code, out, _ = _run_cli(capsys, "results", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--latency", "--format", fmt)
    assert code == 0 and "1.30× [1.18, 1.44]" in out and "1.00× (reference)" in out  # dense p10 / csr p90 .. dense p90 / csr p10
    code, _, err = _run_cli(capsys, "results", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--latency", "-m", "magnitude")
    assert code == 0 and "no end-to-end timings for these runs" in err
