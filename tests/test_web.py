"""`discover ui`: the JSON API over HTTP, and the page in a real headless browser.

The server runs in a thread on a free port over a SQLite store holding a small real run
(``test_views.build_small_run``: real cfr_variants evaluations, real lineage edges). The
browser test drives Debian's chromium with Playwright: it selects the run, clicks a node
of the lineage graph and checks that the code panel shows that program's source, then
saves a screenshot to ``test-artifacts/ui.png``. It is skipped, with the reason, where
chromium or Playwright is absent (CI installs both: ``.ci/browser.sh``).
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from discover.store import Store
from discover.ui.web.server import serve_in_thread
from tests.test_views import HELD_OUT_TASK, TASKS, build_small_run

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    path = tmp_path_factory.mktemp("ui") / "discover.db"
    run = build_small_run(f"sqlite:///{path}")
    store = Store.open(run.url)
    server, url = serve_in_thread(store)
    try:
        yield run, url
    finally:
        server.shutdown()
        server.server_close()
        store.close()


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def get_json(url: str):
    status, ctype, body = get(url)
    assert ctype.startswith("application/json")
    return status, json.loads(body)


# ----------------------------------------------------------------------------- API
def test_runs_and_progress(site):
    run, url = site
    status, runs = get_json(url + "api/runs")
    assert status == 200 and [r["name"] for r in runs][:2] == ["small", "empty"]
    status, prog = get_json(url + f"api/runs/{run.run_id}/progress")
    assert status == 200 and prog["run"]["name"] == "small"
    expected, best = [], None
    for name in run.order:
        s = run.scores[name]
        best = s if best is None or (s is not None and s > best) else best
        expected.append(best)
    assert [p["best"] for p in prog["points"]] == pytest.approx(expected, abs=1e-12)
    # A run is named by id or by name.
    status, by_name = get_json(url + "api/runs/small/progress")
    assert by_name["points"] == prog["points"]


def test_graph_has_every_program_and_edge(site):
    run, url = site
    status, graph = get_json(url + f"api/runs/{run.run_id}/programs")
    assert status == 200
    assert [n["id"] for n in graph["nodes"]] == [run.ids[n] for n in run.order]
    ids = run.ids
    edges = {(e["parent"], e["child"], e["role"]) for e in graph["edges"]}
    assert edges == {(ids["cfr_plus"], ids["quadratic"], "parent"), (ids["cfr_plus"], ids["broken"], "parent"),
                     (ids["quadratic"], ids["predictive"], "parent"), (ids["cfr"], ids["predictive"], "inspiration"),
                     (ids["predictive"], ids["crossed"], "crossover"), (ids["cfr"], ids["crossed"], "crossover")}
    broken = next(n for n in graph["nodes"] if n["id"] == ids["broken"])
    assert broken["status"] == "invalid" and broken["score"] is None


def test_program_has_source_diff_metrics_and_curves(site):
    run, url = site
    pid = run.ids["predictive"]
    status, p = get_json(url + f"api/programs/{pid}")
    assert status == 200
    assert p["source"] == run.sources["predictive"]
    assert "+    positive = xp.maximum(cum_regret + inst_regret, 0.0) * legal" in p["diff"].splitlines()
    curves = {(e["split"], e["task"]): e["curve"] for e in p["evaluations"]}
    assert set(curves) >= {("train", t) for t in TASKS}
    for t in TASKS:
        assert [tuple(x) for x in curves[("train", t)]] == [tuple(x) for x in run.results["predictive"][t].curve]


def test_unknown_ids_are_404_with_one_sentence(site):
    run, url = site
    for path, words in (("api/programs/999", "no program with id 999"), ("api/runs/nope", "no run named"),
                        ("api/runs/1/nothing", "no API route"), ("static/../../etc/passwd", "no file"),
                        ("elsewhere", "no page")):
        status, body = get_json(url + path)
        assert status == 404 and words in body["error"], (path, body)


def test_page_and_diff_route(site):
    run, url = site
    status, ctype, body = get(url)
    assert status == 200 and ctype.startswith("text/html") and b'id="graph"' in body
    status, d = get_json(url + f"api/diff?a={run.ids['cfr_plus']}&b={run.ids['quadratic']}")
    assert status == 200 and "+    return cum_policy + t ** 2 * reach[:, None] * policy, state" in d["diff"]


# ----------------------------------------------------------------------------- browser
def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        pytest.skip("Playwright's Python package is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM} (Debian: apt-get install -y chromium; .ci/browser.sh)")


def test_clicking_a_node_shows_its_code(site):
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    run, url = site
    target = run.ids["predictive"]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 950})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.click(f'tr.run[data-run-id="{run.run_id}"]')
            node = page.locator(f'#graph circle[data-program-id="{target}"]')
            node.wait_for(state="visible", timeout=15000)
            assert page.locator("#graph circle.node").count() == len(run.order)
            assert page.locator("#progress-chart svg path").count() >= 1     # the best-so-far line
            node.click()
            page.wait_for_function(
                "id => document.getElementById('program-title').textContent === 'Program ' + id", arg=target,
                timeout=15000)
            code = page.locator("#code").inner_text()
            assert "positive = xp.maximum(cum_regret + inst_regret, 0.0) * legal" in code
            assert "t ** 2 * reach" in code
            assert code.strip() == run.sources["predictive"].strip()
            # The diff tab shows the edit that made it from its parent.
            page.click('#tabs button[data-tab="diff"]')
            added = page.locator("#diff .add").all_inner_texts()
            assert "+    positive = xp.maximum(cum_regret + inst_regret, 0.0) * legal" in added
            # Filters: only invalid programs stay bright.
            page.select_option("#program-status", "invalid")
            assert page.locator("#graph circle.node:not(.dim)").count() == 1
            page.select_option("#program-status", "")
            page.click('#tabs button[data-tab="curves"]')
            assert page.locator("#curves svg path").count() == len(TASKS) + 1   # train + held-out curves
            assert HELD_OUT_TASK in page.locator("#curves").inner_text()
            page.click('#tabs button[data-tab="code"]')
            page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)
            _follows_a_running_run(page, run)
            assert not errors, errors
        finally:
            browser.close()
    assert (ARTIFACTS / "ui.png").stat().st_size > 10_000


def _follows_a_running_run(page, run) -> None:
    """While a run is going, the best-so-far chart picks up new programs by itself."""
    from search_spaces.cfr_variants import SPACE
    from tests.test_views import _evaluate

    store = Store.open(run.url)
    live = store.create_run("live", "cfr_variants", config={}, seed=0, budget=4, mutator="offline", versions={})
    first = store.add_program(live.id, run.sources["cfr"], generation=0, edit="seed: cfr", mutator="seed")
    store.set_program_status(first.id, "evaluated", score=run.scores["cfr"])
    page.reload()
    page.click(f'tr.run[data-run-id="{live.id}"]')
    page.wait_for_function("() => document.getElementById('progress-note').textContent.includes('1 / 4')",
                           timeout=15000)
    second = store.add_program(live.id, run.sources["predictive"], generation=1, edit="derive_policy: predictive",
                               parents=[first.id], mutator="offline")
    result = _evaluate(SPACE, run.sources["predictive"], TASKS[0])
    store.record_evaluation(second.id, TASKS[0], 0, "train", result, device="cpu")
    store.set_program_status(second.id, "evaluated", score=result.metrics["score"])
    best = max(run.scores["cfr"], result.metrics["score"])
    # No reload, no click: the page polls.
    page.wait_for_function("() => document.getElementById('progress-note').textContent.includes('2 / 4')",
                           timeout=15000)
    assert f"best {best:.4f}" in page.locator("#progress-note").inner_text()
    page.locator(f'#graph circle[data-program-id="{second.id}"]').wait_for(state="visible", timeout=15000)
    store.close()
