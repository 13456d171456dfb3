"""Lint the GitHub workflows (actionlint is not installable offline): structure, triggers,
pinned actions, job graph, and every `sparsebench` command and option they call."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from sparsebench.cli import cli

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
NIGHTLY = ROOT / ".github" / "workflows" / "nightly-gpu.yml"
PAGES = ROOT / ".github" / "workflows" / "pages.yml"
# Commands other engineers are adding in parallel; their options are not checked until they exist.
PENDING_COMMANDS: set[str] = set()  # commands a workflow may call before they exist
CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name} is not a mapping"
    if True in data:  # YAML 1.1 reads the key `on` as boolean true
        data["on"] = data.pop(True)
    return data


def _steps(wf: dict):
    for job_id, job in wf["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def _commands(script: str):
    """(subcommand, options) for every `sparsebench SUB ...` invocation in a run script."""
    joined = re.sub(r"\\\n\s*", " ", script)
    for line in joined.splitlines():
        for part in re.split(r"\|\||&&|;|\|", line):
            try:
                words = shlex.split(part, comments=True)
            except ValueError:
                words = part.split()
            if "sparsebench" in words:
                rest = words[words.index("sparsebench") + 1 :]
                if rest:
                    yield rest[0], [w.split("=")[0] for w in rest[1:] if w.startswith("--")]


def test_there_is_a_nightly_gpu_workflow():
    assert NIGHTLY in WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_structure(path):
    wf = _load(path)
    assert wf.get("name") and wf.get("on") and isinstance(wf.get("jobs"), dict) and wf["jobs"]
    for job_id, job in wf["jobs"].items():
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", job_id), job_id
        assert job.get("runs-on"), f"job {job_id} has no runs-on"
        needs = job.get("needs", [])
        for dep in [needs] if isinstance(needs, str) else needs:
            assert dep in wf["jobs"], f"job {job_id} needs unknown job {dep}"
        assert job.get("steps"), f"job {job_id} has no steps"
    ids = [s["id"] for _, s in _steps(wf) if "id" in s]
    assert len(ids) == len(set(ids))
    for job_id, step in _steps(wf):
        assert ("uses" in step) != ("run" in step), f"{job_id}: a step needs exactly one of uses/run: {step}"
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[\w.-]+", step["uses"]), f"unpinned action {step['uses']}"
    text = path.read_text()
    assert text.count("${{") == text.count("}}"), "unbalanced ${{ }} expression"


def test_nightly_triggers_and_runner():
    wf = _load(NIGHTLY)
    on = wf["on"]
    assert "workflow_dispatch" in on
    (cron,) = [s["cron"] for s in on["schedule"]]
    fields = cron.split()
    assert len(fields) == 5 and all(CRON_FIELD.match(f) for f in fields), cron
    runners = [job["runs-on"] for job in wf["jobs"].values()]
    assert any(isinstance(r, list) and {"self-hosted", "gpu"} <= set(r) for r in runners)


def test_nightly_does_the_work():
    wf = _load(NIGHTLY)
    scripts = "\n".join(s.get("run", "") for _, s in _steps(wf))
    uses = {s["uses"].split("@")[0] for _, s in _steps(wf) if "uses" in s}
    assert "pytest -m gpu" in scripts
    assert "--suite paper" in scripts and "--kernels" in scripts
    assert "python -m pytest benchmarks/" in scripts and "bench-kernels --ingest" in scripts
    assert "site build" in scripts
    assert {"actions/checkout", "actions/upload-artifact", "actions/upload-pages-artifact", "actions/deploy-pages"} <= uses


def _called_commands(path: Path) -> set[str]:
    """The `sparsebench` subcommands a workflow calls; fails on an unknown command or option."""
    wf = _load(path)
    seen = set()
    for _, step in _steps(wf):
        for sub, opts in _commands(step.get("run", "")):
            seen.add(sub)
            if sub in PENDING_COMMANDS and sub not in cli.commands:
                continue
            assert sub in cli.commands, f"the workflow calls unknown command `sparsebench {sub}`"
            cmd = cli.commands[sub]
            if isinstance(cmd, click.Group):  # e.g. `sparsebench site build`: check the subcommand's options
                (name,) = [n for n in cmd.commands if f"sparsebench {sub} {n}" in step.get("run", "")][:1] or [None]
                assert name, f"the workflow calls `sparsebench {sub}` without a known subcommand"
                cmd = cmd.commands[name]
            known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
            for o in opts:
                assert o in known, f"`sparsebench {sub}` has no option {o}"
    return seen


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_call_real_commands_and_options(path):
    _called_commands(path)


def test_nightly_calls_real_commands_and_options():
    assert {"run", "bench-kernels", "list"} <= _called_commands(NIGHTLY)


def test_pages_builds_the_site_from_the_bundles_and_deploys_it_from_main():
    wf = _load(PAGES)
    assert wf["on"]["push"]["branches"] == ["main"] and "workflow_dispatch" in wf["on"]
    assert any(p.startswith("results/") for p in wf["on"]["push"]["paths"])
    assert {"import", "site"} <= _called_commands(PAGES)
    scripts = "\n".join(s.get("run", "") for _, s in _steps(wf))
    assert "import --dry-run" in scripts and "results/" in scripts
    (build,) = [line for line in scripts.splitlines() if "site build" in line]
    assert "--db" not in build  # from the bundles, not a database
    uses = {s["uses"].split("@")[0] for _, s in _steps(wf) if "uses" in s}
    assert {"actions/checkout", "actions/upload-pages-artifact", "actions/deploy-pages"} <= uses
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    # one workflow publishes the leaderboard from main: submissions only builds its artifact
    others = [p for p in WORKFLOWS if p not in (PAGES, NIGHTLY)]
    assert all("actions/deploy-pages" not in p.read_text() for p in others)


def test_benchmark_options_exist():
    text = NIGHTLY.read_text()
    conftest = (ROOT / "benchmarks" / "conftest.py").read_text()
    for opt in ("--grid", "--bench-device", "--bench-dtype"):
        assert opt in text and f'"{opt}"' in conftest


def test_command_parser_sees_options_across_continuations():
    script = 'for m in a b; do\n  sparsebench run --suite paper \\\n    --bogus "x" && echo ok\ndone\nsparsebench list methods | grep -q x'
    assert list(_commands(script)) == [("run", ["--suite", "--bogus"]), ("list", [])]


SUBMISSIONS = ROOT / ".github" / "workflows" / "submissions.yml"


@pytest.mark.slow
def test_the_submission_flow_runs_locally_on_the_published_results(tmp_path):
    """A contributor's path on the real published data: export one run, then the workflow's own
    validate / import / build steps (their `run` scripts, as written) in a copy of results/."""
    import os
    import shutil
    import subprocess

    from sparsebench.bundles import bundle_files
    from sparsebench.publish import load_published

    published = ROOT / "results" / "runs"
    if not published.is_dir() or not bundle_files([published]):
        pytest.skip("no published bundles under results/runs")
    work = tmp_path / "checkout"
    shutil.copytree(ROOT / "results", work / "results", ignore=shutil.ignore_patterns("*.db", "*.db-*"))
    from sparsebench.store import Store

    mine = Store(f"sqlite:///{tmp_path / 'mine.db'}")
    load_published(mine, work / "results" / "runs")
    method = mine.runs()["method"].iloc[0]
    env = {**os.environ, "RUNNER_TEMP": str(tmp_path), "SPARSEBENCH_DB": f"sqlite:///{tmp_path / 'leaderboard.db'}"}
    subprocess.run(["sparsebench", "export", "--db", f"sqlite:///{tmp_path / 'mine.db'}", "-m", method,
                    "-o", str(work / "results" / "submissions" / "contribution.json")], check=True, env=env, cwd=work)
    steps = {s.get("name"): s["run"] for _, s in _steps(_load(SUBMISSIONS)) if "run" in s}
    for name in ("Validate bundles (dry run, nothing stored)", "Import bundles (one transaction)", "Build the site"):
        done = subprocess.run(["bash", "-e", "-c", steps[name]], env=env, cwd=work, capture_output=True, text=True)
        assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"
    index = Store(env["SPARSEBENCH_DB"], create=False)
    assert len(index.runs()) == len(mine.runs())  # the contribution duplicates published runs: skipped by spec hash
    assert (work / "public" / "index.html").is_file() and method in (work / "public" / "index.html").read_text()
