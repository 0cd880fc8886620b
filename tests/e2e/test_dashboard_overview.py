"""/dashboard as an overview, in a real headless Chromium: 200 tasks of mixed status, the
summary tiles equal to the counts GET /v2/tasks pages through, compact rows (an error's at
most two lines until expanded, a long one with "more"), and the page's layout compared
with a recorded one (boxes of its key elements, so fonts' antialiasing cannot fail it).

The layout baseline is ``baselines/dashboard_layout.json``; after an intended change of the
layout, ``DRAGON_UPDATE_LAYOUT=1`` records it again (and the diff shows what moved).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.e2e.test_task_list import every_key
from tests.support.browser import ARGS, chromium

playwright = pytest.importorskip("playwright.sync_api")

BASELINE = Path(__file__).parent / "baselines" / "dashboard_layout.json"
STATUSES = ("queued", "executing", "success", "error")
VIEWPORT = {"width": 1280, "height": 900}
# How far a box may move or grow before it is a layout change: font rendering moves text by
# a pixel or two, never a tile or a column by this much.
TOLERANCE = 6


@pytest.fixture(scope="module")
def server(make_server):
    return make_server(env={"DRAGON_CONCURRENCY": "1"})


@pytest.fixture(scope="module")
def tasks(server):
    """200 tasks: one running and nine queued (one batch slot), 120 that succeeded, 70 in
    error (40 of an unknown task, 20 with a profile error whose message lists every
    profile, 10 that failed at run)."""
    sleeps = server.create([{"task_name": "test.sleep", "seconds": 600}] * 10, block=False)
    done = server.create(
        [{"task_name": "hello", "name": str(i)} for i in range(120)]
        + [{"task_name": "no.such.task", "n": i} for i in range(40)]
        + [
            {"task_name": "video.create", "profile": f"nope-{i}", "definition": "<movie/>"}
            for i in range(20)
        ]
        + [{"task_name": "test.file", "fail": True} for _ in range(10)]
    )
    deadline = time.monotonic() + 60
    while (
        server.request("GET", f"/v2/status?tasks={sleeps[0]['key']}").json()[0]["status"]
        != "executing"
    ):
        assert time.monotonic() < deadline, "the first sleep never started"
        time.sleep(0.2)
    return sleeps + done


@pytest.fixture
def page(server, tasks):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server.url}/dashboard#secret={server.secret}")
            page.wait_for_selector("#connection[data-state=live]", timeout=15_000)
            page.wait_for_function(
                "() => document.querySelectorAll('#tasks tr.task').length === 200",
                timeout=60_000,
            )
            yield page
            assert errors == []
        finally:
            browser.close()


def api_counts(server) -> dict[str, int]:
    return {s: len(every_key(server, status=s, limit=200)) for s in STATUSES}


def tile_counts(page) -> dict[str, int | None]:
    return page.evaluate(
        """statuses => Object.fromEntries(statuses.map(s => {
             const n = document.getElementById(`tile-${s}`).dataset.count;
             return [s, n === undefined ? null : Number(n)];
           }))""",
        list(STATUSES),
    )


def test_the_tiles_show_the_api_s_counts_of_200_tasks(server, page, tmp_path):
    expected = api_counts(server)
    assert expected == {"queued": 9, "executing": 1, "success": 120, "error": 70}
    page.wait_for_function(
        "expected => Object.entries(expected).every(([s, n]) =>"
        " document.getElementById(`tile-${s}`).dataset.count === String(n))",
        arg=expected,
        timeout=30_000,
    )
    assert tile_counts(page) == expected
    assert page.inner_text("#tile-error .value") == "70"

    # The errors by code are the summary's; the lanes tile shows the batch lane busy.
    summary = server.request("GET", "/v2/tasks/summary").json()
    codes = page.eval_on_selector_all(
        "#error-codes li", "lis => lis.map(li => [...li.children].map(c => c.textContent))"
    )
    assert [[code, str(n)] for code, n in summary["error_codes"].items()] == codes
    batch = page.locator("#lanes tr[data-lane=batch] td").all_inner_texts()
    assert batch[0] == "batch" and batch[2] == "1/1" and int(batch[1]) >= 9
    # The throughput chart drew what ended (its bars' count is each slot's with any).
    bars = page.locator("#chart-throughput rect").count()
    assert bars >= 1
    assert "peak" in page.inner_text("#tile-throughput .axis")
    assert page.locator("#chart-durations line.run").count() >= 1

    # A status tile filters the rows to its tasks (all 200 are on the page).
    page.click("#tile-error")
    page.wait_for_function(
        "() => document.querySelectorAll('#tasks tr.task:not([hidden])').length === 70"
    )
    assert page.get_attribute("#tile-error", "aria-pressed") == "true"
    page.click("#tile-error")
    page.wait_for_function(
        "() => document.querySelectorAll('#tasks tr.task:not([hidden])').length === 200"
    )
    page.screenshot(path=str(tmp_path / "overview.png"))


def row_lines(page, selector: str) -> list[dict]:
    """Each row's height in lines of its text (line height and vertical padding of its
    cells taken from the computed style)."""
    return page.eval_on_selector_all(
        selector,
        """trs => trs.map(tr => {
             const td = tr.querySelector('td.result');
             const style = getComputedStyle(td);
             const line = parseFloat(style.lineHeight);
             const padding = parseFloat(style.paddingTop) + parseFloat(style.paddingBottom);
             const height = tr.getBoundingClientRect().height;
             return {key: tr.dataset.key, lines: (height - padding - 1) / line};
           })""",
    )


def test_rows_are_compact_an_error_at_most_two_lines_until_expanded(page, tmp_path):
    for row in row_lines(page, "#tasks tr.task[data-status=error]"):
        assert row["lines"] <= 2.05, row
    for row in row_lines(page, "#tasks tr.task[data-status=success]"):
        assert row["lines"] <= 1.05, row
    hello = page.locator("#tasks tr.task[data-name=hello]").first
    assert hello.locator(".result").inner_text().startswith("Hello ")
    # 200 rows in about 200 lines: a 900 px screen shows about 25 of them.
    height = page.eval_on_selector("#tasks tbody", "b => b.getBoundingClientRect().height")
    assert height < 200 * 2 * 20

    # The profile error lists every profile: clamped, with "more"; a task that failed at
    # run with a short error has no "more".
    long_row = page.locator("#tasks tr.task[data-name='video.create']").first
    key = long_row.get_attribute("data-key")
    more = long_row.locator("button.more")
    assert more.is_visible()
    short = page.locator("#tasks tr.task[data-name='test.file']").first
    assert not short.locator("button.more").is_visible()
    clamped = long_row.locator(".clamp").inner_text()  # all of it, two lines of it shown
    assert long_row.locator(".clamp").evaluate("c => c.scrollHeight > 2 * c.clientHeight")
    more.click()
    details = page.locator(f'tr.details[data-details-of="{key}"]')
    details.wait_for()
    full = details.locator(".error.full").inner_text()
    assert full.split(":")[0] == clamped.split(":")[0] == "parameters"
    assert len(full) > 1000 and "nope-" in full
    # The whole error, many lines (measured in the page: a render may redraw the row).
    page.wait_for_function(
        """key => {
            const row = document.querySelector(`tr.details[data-details-of="${key}"]`);
            return row !== null && row.getBoundingClientRect().height > 4 * 20;
        }""",
        arg=key,
    )
    [after] = row_lines(page, f'#tasks tr.task[data-key="{key}"]')
    assert after["lines"] <= 2.05  # the row itself stays compact
    details.locator("details.diagnostics, .hint").first.wait_for()
    page.screenshot(path=str(tmp_path / "expanded.png"))
    # Closed again ("less", or the row's own toggle): the details go.
    assert long_row.locator("button.more").inner_text() == "less"
    long_row.locator("button.expand").click()
    details.wait_for(state="detached")


def layout(page) -> dict[str, list[int]]:
    """Boxes (x, y, width, height; rounded) of the page's key elements, and of the first
    row of each kind of task."""
    return page.evaluate(
        """() => {
             const box = (el) => {
               const r = el.getBoundingClientRect();
               return [r.x, r.y, r.width, r.height].map(Math.round);
             };
             const found = {};
             const put = (name, selector) => {
               const el = document.querySelector(selector);
               if (el) found[name] = box(el);
             };
             put('header', 'header');
             put('overview', '#overview');
             for (const t of document.querySelectorAll('.tile')) found[`tile ${t.id}`] = box(t);
             put('chart throughput', '#chart-throughput');
             put('chart durations', '#chart-durations');
             put('create panel', '#create-panel');
             put('toolbar', '.toolbar');
             document.querySelectorAll('#tasks thead th').forEach(
               (th, i) => { found[`column ${i} ${th.textContent}`] = box(th); });
             // A row of each kind (rows of one request come in the order the feed
             // brought them): its height.
             for (const [kind, selector] of [
               ['queued', '[data-status=queued]'], ['executing', '[data-status=executing]'],
               ['success', '[data-status=success]'],
               ['short error', "[data-name='test.file']"],
               ['long error', "[data-name='video.create']"],
             ]) {
               const tr = document.querySelector(`#tasks tr.task${selector}`);
               if (tr) found[`row ${kind} height`] = [box(tr)[3]];
             }
             return found;
           }"""
    )


def test_the_layout_is_the_recorded_one(page, tmp_path):
    """Boxes of the tiles, charts, columns and rows against the recorded layout: a tile
    that wraps to another line, a column that changes width or a row that grows fails it;
    text rendered a pixel differently does not."""
    page.wait_for_function("() => document.getElementById('tile-error').dataset.count")
    page.screenshot(path=str(tmp_path / "layout.png"))
    got = layout(page)
    # Invariants that hold whatever the baseline: tiles side by side within the panel, in
    # two rows, none overlapping; the table as wide as its panel.
    tiles = [v for k, v in got.items() if k.startswith("tile ")]
    panel = got["overview"]
    assert len(tiles) == 8 and len({t[1] for t in tiles}) == 2
    for x, y, w, h in tiles:
        assert panel[0] <= x and x + w <= panel[0] + panel[2] and y + h <= panel[1] + panel[3]
    for i, a in enumerate(tiles):
        for b in tiles[i + 1 :]:
            apart = a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1]
            assert apart or b[1] + b[3] <= a[1], (a, b)
    width = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1]  # no horizontal scrolling
    # Buttons of a compact row are whole inside their cells: a clipped one cannot be clicked.
    clipped = page.evaluate(
        """() => [...document.querySelectorAll('#tasks tr.task button')].filter(b => {
             const r = b.getBoundingClientRect(), c = b.closest('td').getBoundingClientRect();
             return r.width > 0 && (r.left < c.left - 0.5 || r.right > c.right + 0.5);
           }).map(b => `${b.className} in ${b.closest('tr').dataset.status}`)"""
    )
    assert clipped == []

    if os.environ.get("DRAGON_UPDATE_LAYOUT"):
        BASELINE.parent.mkdir(exist_ok=True)
        BASELINE.write_text(json.dumps(got, indent=1) + "\n")
    recorded = json.loads(BASELINE.read_text())
    assert set(got) == set(recorded)
    moved = {
        name: (recorded[name], box)
        for name, box in got.items()
        if any(abs(a - b) > TOLERANCE for a, b in zip(box, recorded[name], strict=True))
    }
    assert moved == {}, f"layout changed (recorded, now): {moved}; screenshot in {tmp_path}"
