"""Each leaderboard publishes its protocol: the registered suite, or the suite file a derived
identity (NAME+HASH) was run with; a board with neither says so instead of borrowing settings."""

from __future__ import annotations

import pytest

from sparsebench.cli import main
from sparsebench.errors import SparsebenchError
from sparsebench.site.build import build_site
from sparsebench.site.protocols import find_protocols, suite_files
from sparsebench.site.tables import leaderboard_path
from sparsebench.suite_file import dump_suite, parse_suite
from sparsebench.suites import suites
from sparsebench.testing import synthetic_run

HEADER = "# quick with 10 PIQA documents: the file this board's runs were swept with\n"


@pytest.fixture
def derived(tmp_path):
    """A suite file whose settings differ from the registered quick's, and its (derived) identity."""
    suite = suites.get("quick").with_settings(["piqa.limit=10"])
    folder = tmp_path / "suites"
    folder.mkdir()
    path = folder / "quick-small.toml"
    path.write_text(HEADER + dump_suite(suite), encoding="utf-8")
    return path, suite.identity()


def _store_board(store, ident) -> None:
    for method, quality in (("dense", 20.0), ("magnitude", 40.0)):
        store.write_run(synthetic_run(method, "tiny-a", quality, suite=ident.name, suite_version=ident.version,
                                      suite_settings=ident.settings, sparsity=0.0 if method == "dense" else 0.5))


def test_a_registered_suite_is_published_resolved_and_reads_back_to_its_identity():
    ident = suites.get("quick").identity()
    (protocol,) = find_protocols([ident]).values()
    assert ident.name == "quick" and protocol.source.startswith("registered in sparsebench")
    assert parse_suite(protocol.text, "published").identity() == ident
    assert protocol.path == "protocols/quick-v2.toml" and protocol.description == suites.get("quick").description


def test_a_derived_identity_gets_the_suite_file_it_ran_with_verbatim(derived):
    path, ident = derived
    assert ident.name.startswith("quick+")
    assert find_protocols([ident]) == {}  # the registered quick has other settings: never borrowed
    (protocol,) = find_protocols([ident], suite_files(path.parent)).values()
    assert protocol.text == path.read_text(encoding="utf-8") and protocol.source == str(path)
    assert protocol.calibration == str(suites.get("quick").calibration)


def test_site_links_each_board_to_its_protocol_file(store, tmp_path, derived):
    path, ident = derived
    _store_board(store, ident)
    _store_board(store, suites.get("quick").identity())
    site = build_site(store, tmp_path / "site", progress=False, suite_files=[path])
    assert len(site.protocols) == 2 and "protocols/quick-v2.toml" in site.protocols
    (derived_file,) = (p for p in site.protocols if p != "protocols/quick-v2.toml")
    assert (site.out / derived_file).read_text(encoding="utf-8").startswith(HEADER)
    html = (site.out / leaderboard_path(ident.name, ident.version)).read_text(encoding="utf-8")
    assert f'href="../{derived_file}"' in html and f"from {path}" in html
    quick_board = next(p for p in site.pages if p.startswith("leaderboards/quick-v2"))  # its lambada-ppl-only board
    assert 'href="../protocols/quick-v2.toml"' in (site.out / quick_board).read_text(encoding="utf-8")


def test_a_board_without_its_protocol_says_so(store, tmp_path, derived):
    _, ident = derived
    _store_board(store, ident)
    site = build_site(store, tmp_path / "site", progress=False)
    assert site.protocols == ()
    html = (site.out / leaderboard_path(ident.name, ident.version)).read_text(encoding="utf-8")
    assert f"no suite file with these settings\n    ({ident.settings[:12]})" in html
    assert suites.get("quick").description not in html  # not the registered suite's settings
    assert "no protocol file published for these settings" in (site.out / "index.html").read_text(encoding="utf-8")


def test_a_malformed_suite_file_is_one_clear_error(store, tmp_path, derived):
    path, ident = derived
    _store_board(store, ident)
    bad = path.parent / "broken.toml"
    bad.write_text("name = [unclosed\n", encoding="utf-8")
    with pytest.raises(SparsebenchError, match=r"^suite file for the site: .*broken\.toml: not valid TOML") as err:
        build_site(store, tmp_path / "site", progress=False, suite_files=suite_files(path.parent))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "site").exists()  # nothing half-built


def test_cli_site_build_reads_the_suites_folder(store, tmp_path, derived, capsys):
    path, ident = derived
    _store_board(store, ident)
    out = tmp_path / "site"
    with pytest.raises(SystemExit) as exit_:
        main(["site", "build", "--db", store.url, "--out", str(out), "--suites", str(path.parent), "--no-progress"])
    assert exit_.value.code == 0
    published = list((out / "protocols").glob("*.toml"))
    assert len(published) == 1 and published[0].read_text(encoding="utf-8") == path.read_text(encoding="utf-8")
