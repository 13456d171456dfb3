"""The README's leaderboard block: generated from results, spliced between markers, checked for staleness."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sparsebench.cli import main
from sparsebench.errors import SparsebenchError
from sparsebench.publish import publish_run
from sparsebench.site import readme
from sparsebench.site.build import environment
from sparsebench.site.tables import Frames
from sparsebench.store import Store
from sparsebench.testing import synthetic_run

REPO = Path(__file__).resolve().parents[1]
ACC = ("arc_easy", "1", "acc", True)


def _frames(store: Store) -> Frames:
    return Frames(store.runs(), store.metrics(), store.timings())


def _store(tmp_path: Path, n: int) -> Store:
    """``n`` synthetic llama runs whose accuracy rises with their index, one timed, plus a non-LLM model's run."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    for i in range(n):
        kernels = (("csr", "ok", 1.3, None),) if i == 1 else ()
        store.write_run(synthetic_run("magnitude", "llama", 0.3 + 0.01 * i, sparsity=round(0.1 + 0.05 * i, 2), task=ACC, kernels=kernels))
    store.write_run(synthetic_run("magnitude", "tiny-not-registered", 0.9, task=ACC))
    return store


def test_the_block_lists_the_top_rows_by_accuracy_for_registered_llms_only(tmp_path):
    block = readme.readme_block(_frames(_store(tmp_path, 11)), environment(), top=4)
    text = block.markdown
    assert text.startswith(readme.START) and text.endswith(readme.END)
    assert "tiny-not-registered" not in text and "— llama**" in text and "top 4 of 11 rows" in text
    rows = [line for line in text.splitlines() if line.startswith("| magnitude")]
    assert [r.split(" | ")[-1].rstrip(" |") for r in rows] == ["0.400", "0.390", "0.380", "0.370"]
    assert "1.30×" not in text  # the timed run (index 1) is not in the top 4
    assert "1.30× (csr, prefill)" in readme.readme_block(_frames(_store(tmp_path / "all", 11)), environment(), top=11).markdown


def test_splice_needs_exactly_one_pair_of_markers():
    body = f"intro\n{readme.START}\nold\n{readme.END}\nrest\n"
    assert readme.splice(body, f"{readme.START}\nnew\n{readme.END}") == f"intro\n{readme.START}\nnew\n{readme.END}\nrest\n"
    for bad in ("no markers", f"{readme.END}\n{readme.START}", f"{readme.START}{readme.START}{readme.END}"):
        with pytest.raises(SparsebenchError, match="needs one"):
            readme.splice(bad, "x")


def _cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exc:
        main(["site", "readme", *args])
    return exc.value.code


def test_check_fails_on_a_stale_readme_and_passes_after_regenerating(tmp_path, capsys):
    store = _store(tmp_path, 3)
    bundles = tmp_path / "results"
    for run_id in store.runs()["id"]:
        publish_run(store, int(run_id), bundles / "runs")
    doc = tmp_path / "README.md"
    doc.write_text(f"# x\n{readme.START}\n{readme.END}\n")
    (tmp_path / readme.IMAGE_DIR).mkdir(parents=True)
    (tmp_path / readme.IMAGE_DIR / "gone.svg").write_text("<svg/>")  # a plot no longer produced
    args = ("--bundles", str(bundles), "--readme", str(doc))
    assert _cli(*args, "--check") == 1
    assert "stale: README.md" in capsys.readouterr().err
    assert _cli(*args) == 0
    assert "| magnitude" in doc.read_text() and not (tmp_path / readme.IMAGE_DIR / "gone.svg").exists()
    assert _cli(*args, "--check") == 0
    doc.write_text(doc.read_text().replace("magnitude", "magnitudes", 1))  # a hand edit inside the block
    assert _cli(*args, "--check") == 1


def test_the_central_plot_is_a_standalone_svg_with_its_own_style(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    piqa = (("piqa", "1", "acc", True), 0.6)
    store.write_run(synthetic_run("dense", "llama", 0.6, sparsity=0.0, task=ACC, more=(piqa,)))
    store.write_run(synthetic_run("wanda", "llama", 0.5, task=ACC, more=(piqa,), kernels=(("csr", "ok", 1.4, None),)))
    block = readme.readme_block(_frames(store), environment())
    (path, svg), = block.images.items()
    assert path.startswith(readme.IMAGE_DIR + "/") and path.endswith("-prefill.svg") and "![" in block.markdown and path in block.markdown
    assert svg.lstrip().startswith("<svg") and "<style>" in svg and svg.count("<circle") >= 2


def test_each_hardware_gets_its_own_central_plot_file(tmp_path):
    """Runs timed on two machines make two plots per phase, each in its own file named after its hardware, both linked."""
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    piqa = (("piqa", "1", "acc", True), 0.6)
    store.write_run(synthetic_run("dense", "llama", 0.6, sparsity=0.0, task=ACC, more=(piqa,)))
    for hardware, speedup in (("cpu-a", 1.4), ("cpu-b", 1.1)):
        store.write_run(synthetic_run("wanda", "llama", 0.5, task=ACC, more=(piqa,), kernels=(("csr", "ok", speedup, None),),
                                      hardware=hardware))
    block = readme.readme_block(_frames(store), environment())
    assert len(block.images) == 2 and all(path in block.markdown for path in block.images)
    assert {("cpu-a" in p, "cpu-b" in p) for p in block.images} == {(True, False), (False, True)}


def test_the_committed_readme_is_up_to_date_with_the_published_results():
    """CI fails when results/ changed and `sparsebench site readme` was not run."""
    if not (REPO / "results").is_dir() or shutil.which("git") is None:
        pytest.skip("not a checkout")
    assert _cli("--bundles", str(REPO / "results"), "--readme", str(REPO / "README.md"), "--check") == 0


def test_a_board_without_accuracies_is_ordered_by_its_first_metric(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    for i, ppl in enumerate((40.0, 20.0, 30.0)):
        store.write_run(synthetic_run("magnitude", "llama", ppl, sparsity=round(0.3 + 0.1 * i, 2)))
    text = readme.readme_block(_frames(store), environment()).markdown
    assert "rows by lambada-ppl v1 · perplexity ↓" in text and "mean acc" not in text
    rows = [line for line in text.splitlines() if line.startswith("| magnitude")]
    assert [r.split(" | ")[2] for r in rows] == ["0.4", "0.5", "0.3"]  # perplexity 20, 30, 40
