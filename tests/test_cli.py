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
    db = tmp_path / "r.db"
    args = ["run", "--db", f"sqlite:///{db}", "--model", str(tiny_model_dirs["gpt2"]), "--suite", "unit",
            "--method", "magnitude", "--pattern", "2:4", "--no-progress"]
    code, out, err = _run_cli(capsys, *args)
    assert code == 0 and "stored run 1" in err and "lambada-ppl" in out
    code, out, err = _run_cli(capsys, *args)
    assert code == 0 and "already stored as run 1" in err
    assert _rows(db) == 1
    code, _, err = _run_cli(capsys, *args, "--force")
    assert code == 0 and _rows(db) == 1
    for fmt in ("csv", "json", "markdown", "table"):
        code, out, _ = _run_cli(capsys, "results", "--db", f"sqlite:///{db}", "--format", fmt)
        assert code == 0 and "lambada-ppl" in out
