"""Many writers, one database: nothing lost, no duplicates, failures that a retry replaces,
and first writers racing to create the schema of a new database.

Runs on SQLite and on a real PostgreSQL server: ``$SPARSEBENCH_TEST_POSTGRES_URL`` if set,
else a private server started here from the PostgreSQL binaries (``apt-get install -y
postgresql``). Without either the Postgres cases skip, unless ``$SPARSEBENCH_REQUIRE_POSTGRES``
is set (as in ``.ci/run``), where they fail.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
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


def fake_run(i: int, error: str | None = None, value: float = 0.0):
    """A record whose spec hash is fixed by ``i`` (its seed); completed, or failed with ``error``."""
    from sparsebench.record import Measurements, MetricRecord, build_record
    from sparsebench.spec import Identity, SuiteIdentity

    identity = Identity(method="magnitude", params={}, method_source="s", model="m", model_revision="r", pattern="unstructured",
                        sparsity=0.5, suite=SuiteIdentity("unit", "1", "synthetic"), tasks=("lambada-ppl",), seed=i)
    metrics = (MetricRecord("lambada-ppl", "1", "perplexity", value, False), MetricRecord("lambada-ppl", "1", "loss", value + 0.5, False))
    return build_record(identity, request={}, device="cpu", hardware="h", provenance={"git_sha": "0"},
                        outcome=error if error is not None else Measurements(0.5, 1.0, 1.0, 1.0, None, metrics))


def test_failure_is_replaced_by_success_and_never_replaces_one(db_url):
    store = Store(db_url)
    h = fake_run(0).spec_hash
    store.write_failure(fake_run(0, error="boom"))
    store.write_failure(fake_run(0, error="boom again"))
    assert store.has_run(h) is None  # a failure does not count as stored
    failed = store.has_run(h, status="failed")
    assert failed is not None and failed.error == "boom again" and failed.provenance["attempts"] == 2
    assert len(store.runs()) == 1
    run_id = store.write_run(fake_run(0, value=3.0))
    runs = store.runs()
    assert len(runs) == 1 and runs.iloc[0]["status"] == "completed" and runs.iloc[0]["error"] is None
    assert store.write_failure(fake_run(0, error="late")) == run_id  # the success stays
    assert store.runs().iloc[0]["status"] == "completed"
    with pytest.raises(DuplicateRunError):
        store.write_run(fake_run(0, value=4.0))
    assert store.results().query("metric == 'perplexity'")["value"].tolist() == [3.0]
    assert store.results(status="failed").empty


WRITER = textwrap.dedent("""
    import random, sys
    sys.path.insert(0, sys.argv[3])
    from test_store_concurrency import fake_run
    from sparsebench.store import DuplicateRunError, Store
    url, seed = sys.argv[1], int(sys.argv[2])
    store = Store(url)
    order = list(range(30))
    random.Random(seed).shuffle(order)
    dup = 0
    for i in order:
        if i % 3 == 0:
            store.write_failure(fake_run(i, error=f"writer {seed} failed"))
        try:
            store.write_run(fake_run(i, value=float(i)))
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
    assert set(runs["spec_hash"]) == {fake_run(i).spec_hash for i in range(30)}
    assert (runs["status"] == "completed").all() and runs["error"].isna().all()
    assert duplicates == 3 * 30  # every run was stored by exactly one writer
    metrics = store.metrics()
    assert len(metrics) == 60 and metrics.groupby("run_id").size().eq(2).all()


FIRST_WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[3])
    from test_store_concurrency import fake_run
    from sparsebench.store import Store
    url, i, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[4])
    time.sleep(max(0.0, start - time.time()))  # every writer opens the new database at the same moment
    Store(url).write_run(fake_run(i, value=float(i)))
""")


def test_first_writers_racing_on_a_new_database_all_store(db_url):
    """Eight processes open a database that has no schema yet at the same moment, and each stores a run."""
    n, start = 8, time.time() + 3.0
    procs = [subprocess.Popen([sys.executable, "-c", FIRST_WRITER, db_url, str(i), str(Path(__file__).parent), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in outs if err]
    runs = Store(db_url, create=False).runs()
    assert sorted(runs["seed"]) == list(range(n))


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
