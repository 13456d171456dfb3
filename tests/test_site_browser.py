"""The built site in real headless Chromium (Debian's chromium + chromedriver, driven by Selenium).

Every page loads from file:// with no console error; sorting and filtering work; provenance
opens in one click; hostile method/model names stay inert text; screenshots are saved under
artifacts/ (gitignored) for a human to look at.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.parse
from pathlib import Path

import pytest

from sparsebench.runner import run
from sparsebench.site.build import build_site
from sparsebench.spec import RunSpec
from sparsebench.store import Store
from sparsebench.suite_file import read_suite
from sparsebench.testing import HOSTILE_METHOD, write_synthetic_leaderboard

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1400,1800")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("headless Chromium is not installed (apt-get install -y chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="sparsebench-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_model_dirs):
    """Real runs of the three built-in methods on a tiny Llama (unit suite) + synthetic rows for the rest."""
    root = tmp_path_factory.mktemp("browser-site")
    store = Store(f"sqlite:///{root / 'results.db'}")
    model = str(tiny_model_dirs["llama"])
    for method, sparsity in (("dense", 0.0), ("magnitude", 0.5), ("random", 0.5), ("magnitude", 0.7)):
        run(RunSpec(method=method, model=model, suite="unit", sparsity=sparsity), store, progress=False)
    write_synthetic_leaderboard(store)
    return build_site(store, root / "site", progress=False)


def _open(browser, site, page: str):
    browser.get((site.out / page).as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, f"{page}: {errors}"
    assert browser.execute_script("return window.__pwned === undefined"), f"{page}: injected script ran"
    return browser


def test_every_page_loads_without_console_errors(browser, site):
    assert len(site.pages) > 20
    for page in site.pages:
        _open(browser, site, page)
        assert browser.title.endswith("· sparsebench"), page
        assert browser.find_element("css selector", "main h1").text.strip(), page


def _column(browser, index: int) -> list[float]:
    cells = browser.find_elements("css selector", f"#leaderboard tbody tr:not([hidden]) td:nth-child({index + 1})")
    return [float(c.get_attribute("data-sort")) for c in cells if c.get_attribute("data-sort")]


def test_sorting_and_filtering(browser, site):
    _open(browser, site, "leaderboards/unit-v1.html")
    headers = browser.find_elements("css selector", "#leaderboard thead th")
    labels = [h.text for h in headers]
    metric = next(i for i, t in enumerate(labels) if "perplexity" in t)
    headers[metric].click()
    assert headers[metric].get_attribute("aria-sort") == "ascending"
    up = _column(browser, metric)
    assert len(up) >= 10 and up == sorted(up)
    headers[metric].click()
    down = _column(browser, metric)
    assert down == sorted(up, reverse=True)
    sparsity = labels.index("sparsity")
    headers[sparsity].click()
    assert _column(browser, sparsity) == sorted(_column(browser, sparsity))

    box = browser.find_element("css selector", "input.filter[data-table=leaderboard]")
    box.send_keys("2:4")
    rows = browser.find_elements("css selector", "#leaderboard tbody tr")
    visible = [r for r in rows if r.is_displayed()]
    assert 0 < len(visible) < len(rows)
    for r in visible:  # matches, or a baseline (always shown)
        assert "2:4" in r.text or "baseline" in r.get_attribute("class"), r.text

    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "leaderboard-filtered.png"))  # sorted by sparsity, filtered to 2:4


def test_provenance_is_one_click_away(browser, site):
    _open(browser, site, "leaderboards/unit-v1.html")
    details = browser.find_element("css selector", "#leaderboard tbody tr details")
    assert not details.get_attribute("open")
    details.find_element("css selector", "summary").click()
    assert details.get_attribute("open") is not None
    text = details.text
    for key in ("date", "git sha", "versions", "hardware"):
        assert key in text
    details.find_element("link text", "full record").click()
    assert "/runs/" in browser.current_url and "Provenance" in browser.page_source


def test_hostile_names_are_inert_text(browser, site):
    _open(browser, site, "leaderboards/unit-v1.html")
    body = browser.find_element("tag name", "body").text
    assert HOSTILE_METHOD in body  # shown literally, as text
    assert 'onerror="window.__pwned=2">' in body
    assert not browser.find_elements("css selector", "main img")
    assert browser.execute_script("return window.__pwned === undefined")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(ARTIFACTS / "leaderboard.png"))
    _open(browser, site, "kernels.html")
    browser.save_screenshot(str(ARTIFACTS / "kernels.png"))
    assert (ARTIFACTS / "leaderboard.png").stat().st_size > 10_000


def test_an_interval_and_a_not_distinguishable_mark_read_off_a_leaderboard(browser, site):
    import re

    from sparsebench.confidence import bootstrap_interval
    from sparsebench.testing import toy_accuracy_items

    _open(browser, site, "leaderboards/unit-v2.html")
    labels = [h.text for h in browser.find_elements("css selector", "#leaderboard thead th")]
    col = next(i for i, t in enumerate(labels) if "accuracy" in t)
    rows = {r.find_element("css selector", "td").text.split()[0]: r for r in browser.find_elements("css selector", "#leaderboard tbody tr")}
    cell = rows["wanda"].find_elements("css selector", "td")[col]
    value, low, high = map(float, re.match(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", cell.text).groups())
    wanda = {m: it for m, _, it in toy_accuracy_items()}["wanda"]
    iv = bootstrap_interval(wanda)
    assert (value, low, high) == pytest.approx((wanda.value(), iv.low, iv.high), abs=5e-4) and low < value < high
    mark = cell.find_element("css selector", "span.mark")
    assert mark.is_displayed() and mark.text == "≈ best"
    assert "not distinguishable from the best" in cell.get_attribute("title")
    best = rows["sparsegpt"].find_elements("css selector", "td")[col].find_element("css selector", "span.mark")
    assert best.text == "best"
    assert not rows["magnitude"].find_elements("css selector", "td")[col].find_elements("css selector", "span.mark")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "leaderboard-intervals.png"))


# -- the published results ---------------------------------------------------------------------
PUBLISHED = Path(__file__).resolve().parents[1] / "results"


@pytest.fixture(scope="module")
def published_site(tmp_path_factory):
    """The site as `sparsebench site build` builds it on a fresh clone: from the bundles under results/."""
    from sparsebench.bundles import bundle_files
    from sparsebench.commands.site import bundle_index

    if not PUBLISHED.is_dir() or not any(f.parent.name != "submissions" for f in bundle_files([PUBLISHED])):
        pytest.skip("no published bundles under results/")
    from sparsebench.site.protocols import suite_files

    with bundle_index(str(PUBLISHED)) as (index, _):
        runs, timings = index.runs(), index.timings()
        report = build_site(index, tmp_path_factory.mktemp("published") / "site", progress=False,
                            suite_files=suite_files(PUBLISHED / "suites"))
    return report, runs, timings


def test_the_published_leaderboards_show_every_published_model_with_intervals(browser, published_site):
    import re

    report, runs, timings = published_site
    from sparsebench.site.tables import slug

    for (suite, version), g in runs.groupby(["suite", "suite_version"]):
        page = f"leaderboards/{slug(f'{suite}-v{version}')}.html"
        _open(browser, report, page)
        body = browser.find_element("css selector", "#leaderboard").text
        for model in set(g["model"]):
            assert model in body, (page, model)
        assert re.search(r"\d \[\d[\d.]*, \d[\d.]*\]", body), f"{page}: no value [interval] cell"
        # every published board links the suite file it was run with (results/suites/ holds the derived ones)
        href = browser.find_element("css selector", "dl.facts a[href$='.toml']").get_attribute("href")
        assert read_suite(Path(urllib.parse.urlparse(href).path)).identity().name == suite, (page, href)
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / f"published-{slug(suite)}.png"))
    timed = runs[runs["id"].isin(timings["run_id"].dropna())]
    if not timed.empty:  # the central plot: quality against measured speedup
        _open(browser, report, f"leaderboards/{slug(timed.iloc[0]['suite'] + '-v' + timed.iloc[0]['suite_version'])}.html")
        titles = [e.get_attribute("aria-label") for e in browser.find_elements("css selector", "figure.plot svg")]
        assert any("speedup" in (t or "") for t in titles), titles
