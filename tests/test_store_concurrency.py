"""Many writers, one database: nothing lost, no duplicates, failures that a retry replaces.

Runs on SQLite and on a real PostgreSQL server: ``$SPARSEBENCH_TEST_POSTGRES_URL`` if set,
else a private server started here from the PostgreSQL binaries (``apt-get install -y
postgresql``). Without either the Postgres cases skip, unless ``$SPARSEBENCH_REQUIRE_POSTGRES``
is set (as in ``.ci/run``), where they fail.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest

from sparsebench.store import DuplicateRunError, Store


def _no_postgres(reason: str):
    if os.environ.get("SPARSEBENCH_REQUIRE_POSTGRES"):
        pytest.fail(f"{reason} (and $SPARSEBENCH_REQUIRE_POSTGRES is set)")
    pytest.skip(reason)


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return shutil.which(name) or (found[-1] if found else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server URL (without database name) for this test session."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _no_postgres("psycopg is not installed (pip install 'sparsebench[postgres]')")
    if url := os.environ.get("SPARSEBENCH_TEST_POSTGRES_URL"):
        yield url.rsplit("/", 1)[0]
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        _no_postgres("no PostgreSQL server reachable: apt-get install -y postgresql, or set $SPARSEBENCH_TEST_POSTGRES_URL")
    root = Path(tempfile.mkdtemp(prefix="sparsebench-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            _no_postgres("running as root and there is no 'postgres' user to run the server as")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "sparsebench", "--no-sync"], check=True, capture_output=True)
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o", opts, "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://sparsebench@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


def fake_run(h: str, **over) -> dict:
    """The columns of one run; the values only need to be well-typed."""
    row = dict(
        spec_hash=h, status="completed", created_at=dt.datetime.now(dt.timezone.utc), method="magnitude",
        method_params={}, model="m", model_revision="r", pattern="unstructured", sparsity=0.5, suite="unit",
        suite_version="1", tasks={"names": ["lambada-ppl"]}, seed=0, device="cpu", hardware="h",
        sparsebench_version="0", torch_version="0", transformers_version="0", git_sha="0", provenance={}, spec={},
    )
    return {**row, **over}


def fake_metric(value: float) -> dict:
    return dict(task="lambada-ppl", task_version="1", metric="perplexity", value=value, higher_is_better=False, details={})


def test_failure_is_replaced_by_success_and_never_replaces_one(db_url):
    store = Store(db_url)
    store.write_failure(fake_run("a" * 64, error="boom"))
    store.write_failure(fake_run("a" * 64, error="boom again"))
    assert store.has_run("a" * 64) is None  # a failure does not count as stored
    failed = store.has_run("a" * 64, status="failed")
    assert failed is not None and failed.error == "boom again" and failed.provenance["attempts"] == 2
    assert len(store.runs()) == 1
    run_id = store.write_run(fake_run("a" * 64), [fake_metric(3.0)])
    runs = store.runs()
    assert len(runs) == 1 and runs.iloc[0]["status"] == "completed" and runs.iloc[0]["error"] is None
    assert store.write_failure(fake_run("a" * 64, error="late")) == run_id  # the success stays
    assert store.runs().iloc[0]["status"] == "completed"
    with pytest.raises(DuplicateRunError):
        store.write_run(fake_run("a" * 64), [fake_metric(4.0)])
    assert store.results()["value"].tolist() == [3.0]
    assert store.results(status="failed").empty


WRITER = textwrap.dedent("""
    import random, sys
    sys.path.insert(0, sys.argv[3])
    from test_store_concurrency import fake_metric, fake_run
    from sparsebench.store import DuplicateRunError, Store
    url, seed = sys.argv[1], int(sys.argv[2])
    store = Store(url)
    order = list(range(30))
    random.Random(seed).shuffle(order)
    dup = 0
    for i in order:
        h = f"{i:064x}"
        if i % 3 == 0:
            store.write_failure(fake_run(h, error=f"writer {seed} failed"))
        try:
            store.write_run(fake_run(h), [fake_metric(float(i)), fake_metric(float(i) + 0.5)])
        except DuplicateRunError:
            dup += 1
    print(dup)
""")


def test_concurrent_writers_lose_nothing_and_duplicate_nothing(db_url):
    """Four processes write the same 30 runs (a third after a failure) in different orders."""
    Store(db_url)  # create the schema once
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, db_url, str(seed), str(Path(__file__).parent)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    duplicates = sum(int(out.strip()) for out, _ in outs)
    store = Store(db_url, create=False)
    runs = store.runs()
    assert len(runs) == 30 and runs["spec_hash"].is_unique
    assert set(runs["spec_hash"]) == {f"{i:064x}" for i in range(30)}
    assert (runs["status"] == "completed").all() and runs["error"].isna().all()
    assert duplicates == 3 * 30  # every run was stored by exactly one writer
    metrics = store.metrics()
    assert len(metrics) == 60 and metrics.groupby("run_id").size().eq(2).all()


def test_a_sweep_stores_into_postgres(postgres_server, tiny_model_dirs, tmp_path):
    """The whole path (grid → worker → one writer) against a real PostgreSQL database."""
    import psycopg

    from sparsebench.executors import LocalExecutor
    from sparsebench.grid import parse_grid
    from sparsebench.sweep import sweep

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    store = Store(f"{postgres_server}/{name}")
    grid = parse_grid({"models": [str(tiny_model_dirs["llama"])], "methods": ["magnitude", "dense"], "suites": ["unit"]})
    summary = sweep(grid, store, LocalExecutor(workers=1), progress=False)
    assert len(summary.stored) == 2 and not summary.failed
    df = store.results()
    assert sorted(df["method"]) == ["dense", "magnitude"] and df["value"].notna().all()
    assert sweep(grid, store, LocalExecutor(workers=1), progress=False).already == 2
