"""/dashboard in a real headless Chromium: sign in, a task created through the API appears
and turns success without a reload, its details (previews, diagnostics when it fails) show
when its row is opened. The overview is tested in test_dashboard_overview.py."""

from __future__ import annotations

import time

import pytest

from tests.support.browser import ARGS, chromium

playwright = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(make_server):
    return make_server(env={"DRAGON_CONCURRENCY": "1"})


@pytest.fixture
def page(server):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page
            assert errors == []
        finally:
            browser.close()


def row(page, key: str):
    return page.locator(f'tr[data-key="{key}"]')


def test_a_task_appears_and_turns_success_live(server, page, tmp_path):
    r = server.request("GET", "/dashboard", auth=False)
    assert r.status == 200 and "script-src 'self'" in r.headers["Content-Security-Policy"]
    page.goto(f"{server.url}/dashboard#secret={server.secret}")
    page.wait_for_selector("#connection[data-state=live]", timeout=15_000)
    assert "secret" not in page.url  # taken out of the address bar
    assert page.evaluate("sessionStorage.getItem('dragon.secret')") == server.secret

    # Two tasks through the API: a three-second run keeps the heavy slot while the
    # second one waits in the queue.
    first, second = server.create(
        [{"task_name": "test.sleep", "seconds": 3}, {"task_name": "test.sleep", "seconds": 0.5}],
        block=False,
    )
    row(page, first["key"]).wait_for(timeout=10_000)
    assert row(page, first["key"]).locator(".name").inner_text() == "test.sleep"
    page.wait_for_selector(f'tr[data-key="{second["key"]}"][data-status=queued]', timeout=10_000)
    page.wait_for_function(
        "key => document.querySelector(`tr[data-key='${key}'] .queue`).textContent"
        ".startsWith('#1')",
        arg=second["key"],
        timeout=10_000,
    )
    for task in (first, second):
        page.wait_for_selector(f'tr[data-key="{task["key"]}"][data-status=success]', timeout=20_000)
    assert "ran " in row(page, first["key"]).locator(".duration").inner_text()
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 0
    assert server.secret not in server.log()  # the feed's ?secret= is masked in the log


def test_create_form_preview_filters_and_diagnostics(server, page, origin, tmp_path):
    from tests.support.media import image_bytes

    origin.add("dash/pic.png", image_bytes(120, 90, fmt="PNG"), "image/png")
    page.goto(f"{server.url}/dashboard")
    page.fill("#secret", server.secret)
    page.click("#sign-in-form button")
    page.wait_for_selector("#connection[data-state=live]", timeout=15_000)

    page.click("#create-panel summary")  # the form is folded away at first
    page.fill("#task-name", "image.thumb")
    page.fill("#task-params", f'{{"url": "{origin.url}/dash/pic.png", "width": 40}}')
    page.click("#create-form button")
    done = page.wait_for_selector(
        "tr[data-name='image.thumb'][data-status=success]", timeout=30_000
    )
    # The compact row links the output; its details (opened) show the preview. A row is
    # drawn again when its task's document changes: found by its key, not held.
    done_key = done.get_attribute("data-key")
    assert row(page, done_key).locator("img.preview").count() == 0
    assert row(page, done_key).locator(".result a").count() == 1
    row(page, done_key).locator("button.expand").click()
    preview = page.wait_for_selector(f'tr[data-details-of="{done_key}"] img.preview')
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=preview)

    [failed] = server.create([{"task_name": "test.file", "fail": True}])
    failed_row = row(page, failed["key"])
    # Its row may be drawn executing first: wait for the document of its end.
    page.locator(f'tr[data-key="{failed["key"]}"][data-status=error]').wait_for(timeout=30_000)
    assert "invalid_media: asked to fail" in failed_row.inner_text()
    failed_row.locator("button.expand").click()
    details = page.locator(f'tr[data-details-of="{failed["key"]}"]')
    details.locator("details.diagnostics").wait_for(timeout=10_000)
    details.locator("summary").click()
    assert '"attempts": 1' in details.locator("pre").inner_text()

    # A filter asks the server for its tasks and draws them again: wait for the redraw.
    done_row = row(page, done_key)
    page.select_option("#filter-status", "error")
    done_row.wait_for(state="hidden", timeout=10_000)
    assert page.locator(f'tr[data-details-of="{done_row.get_attribute("data-key")}"]').is_hidden()
    assert failed_row.is_visible()
    page.select_option("#filter-status", "")
    page.select_option("#filter-name", "image.thumb")
    failed_row.wait_for(state="hidden", timeout=10_000)
    assert done_row.is_visible()
    page.screenshot(path=str(tmp_path / "filters.png"), full_page=True)

    page.fill("#task-name", "hello")
    page.fill("#task-params", "[1]")
    page.click("#create-form button")
    assert "must be a JSON object" in page.inner_text("#create-error")


def test_the_task_filter_offers_every_task_of_the_server_plugins_included(server, page):
    """The page's lists of tasks come from the server's registry: ``test.spin`` (a plugin,
    loaded through DRAGON_TASK_MODULES) is offered though no task of it was ever created."""
    page.goto(f"{server.url}/dashboard#secret={server.secret}")
    page.wait_for_selector("#connection[data-state=live]", timeout=15_000)
    document = server.request("GET", "/openapi.json", auth=False).json()
    served = set(document["components"]["schemas"]["TaskDefinition"]["discriminator"]["mapping"])
    assert {"test.spin", "image.thumb", "hello"} <= served
    in_filter = page.eval_on_selector_all("#filter-name option", "os => os.map(o => o.value)")
    suggested = page.eval_on_selector_all("#task-names option", "os => os.map(o => o.value)")
    assert in_filter[0] == "" and set(in_filter[1:]) == served  # "" is "all"
    assert len(in_filter) == len(served) + 1 and set(suggested) == served
    assert page.locator("tr[data-name='test.spin']").count() == 0
    page.select_option("#filter-name", "test.spin")
    assert page.locator("#tasks tbody tr:not([hidden])").count() == 0


def test_a_video_result_gets_a_playable_preview(server, page, origin, tmp_path):
    from tests.support.media import video

    origin.add(
        "dash/clip.mp4", video(tmp_path / "clip.mp4", duration=1.0).read_bytes(), "video/mp4"
    )
    page.goto(f"{server.url}/dashboard#secret={server.secret}")
    page.wait_for_selector("#connection[data-state=live]", timeout=15_000)
    [done] = server.create(
        [{"task_name": "video.convert", "url": origin.url + "/dash/clip.mp4", "width": 160}]
    )
    assert done["status"] == "success", done
    row(page, done["key"]).locator("button.expand").click(timeout=15_000)
    preview = page.wait_for_selector(
        f'tr[data-details-of="{done["key"]}"] video.preview', timeout=15_000
    )
    # The browser read the stored MP4's metadata: a real, playable preview.
    page.wait_for_function(
        "v => v.readyState >= 1 && v.videoWidth === 160", arg=preview, timeout=15_000
    )
    links = page.locator(f'tr[data-key="{done["key"]}"] .result a')
    assert links.count() == 1  # "output"; "video/mp4" and the other values are plain text
    page.screenshot(path=str(tmp_path / "video.png"), full_page=True)


def test_a_wrong_secret_is_refused(server, page):
    page.goto(f"{server.url}/dashboard#secret=WRONG")
    page.wait_for_selector("#sign-in-error:not([hidden])", timeout=10_000)
    assert "invalid secret" in page.inner_text("#sign-in-error")
    assert page.is_visible("#sign-in") and not page.is_visible("#main")


def test_the_page_follows_the_feed_across_a_server_restart(make_server, page):
    server = make_server()
    page.goto(f"{server.url}/dashboard#secret={server.secret}")
    page.wait_for_selector("#connection[data-state=live]", timeout=15_000)
    [before] = server.create([{"task_name": "hello", "name": "before"}])
    page.wait_for_selector(f'tr[data-key="{before["key"]}"][data-status=success]')
    server.stop()
    page.wait_for_selector("#connection[data-state=error]", timeout=15_000)
    server.start()
    page.wait_for_selector("#connection[data-state=live]", timeout=30_000)
    [after] = server.create([{"task_name": "hello", "name": "after"}])
    page.wait_for_selector(f'tr[data-key="{after["key"]}"][data-status=success]', timeout=15_000)
    # Resumed from its last cursor: each task once.
    assert page.locator(f'tr[data-key="{before["key"]}"]').count() == 1


def test_a_cursor_past_retention_starts_a_fresh_feed(make_server, page):
    # Changes are kept 1.7 s here: a page that was away longer is refused its cursor (410)
    # and starts again from what is kept.
    server = make_server(
        env={"DRAGON_EVENTS_DAYS": "0.00002", "DRAGON_SWEEP_INTERVAL_SECONDS": "0.5"}
    )
    page.goto(f"{server.url}/dashboard#secret={server.secret}")
    page.wait_for_selector("#connection[data-state=live]", timeout=15_000)
    [first] = server.create([{"task_name": "hello", "name": "first"}])
    page.wait_for_selector(f'tr[data-key="{first["key"]}"][data-status=success]')
    page.route("**/v2/events?*", lambda route: route.abort())  # the page is cut off
    server.stop()
    server.start()
    server.create([{"task_name": "hello", "name": "unseen"}])
    time.sleep(3)  # its changes are pruned meanwhile
    page.unroute("**/v2/events?*")
    page.wait_for_selector("#connection[data-state=live]", timeout=30_000)
    [last] = server.create([{"task_name": "hello", "name": "last"}])
    page.wait_for_selector(f'tr[data-key="{last["key"]}"][data-status=success]', timeout=15_000)


def rows_shown(page) -> list[str]:
    return page.eval_on_selector_all(
        "#tasks tbody tr:not([hidden])", "trs => trs.map(tr => tr.dataset.key)"
    )


def test_older_tasks_page_by_page_filters_from_the_server_and_search_by_key(make_server, page):
    """Tasks older than the feed keeps come from GET /v2/tasks: the newest 30 first, 30 more
    per "Older tasks"; a filter asks the server for the newest tasks that match, however
    old; a key typed in full is looked up."""
    server = make_server(
        env={"DRAGON_EVENTS_DAYS": "0.00002", "DRAGON_SWEEP_INTERVAL_SECONDS": "0.5"}
    )
    hellos = server.create([{"task_name": "hello", "name": str(i)} for i in range(3)])
    failed = server.create([{"task_name": "no.such.task", "n": i} for i in range(70)])
    newest = [d["key"] for d in reversed(failed)] + [d["key"] for d in reversed(hellos)]
    deadline = time.monotonic() + 30
    while server.request("GET", "/v2/events").body.strip():  # the feed forgets them
        assert time.monotonic() < deadline, "events were not pruned"
        time.sleep(0.3)

    page.goto(f"{server.url}/dashboard#secret={server.secret}")
    page.wait_for_selector("#connection[data-state=live]", timeout=15_000)
    page.wait_for_function("() => document.querySelectorAll('#tasks tbody tr').length === 30")
    assert rows_shown(page) == newest[:30] and page.is_visible("#more")

    old = hellos[0]["key"]
    page.fill("#search-key", old)
    page.press("#search-key", "Enter")
    page.wait_for_selector(f'tr[data-key="{old}"][data-status=success]')
    assert rows_shown(page) == [old]
    assert row(page, old).locator(".name").inner_text() == "hello"
    page.fill("#search-key", "NOSUCHKEY")
    page.press("#search-key", "Enter")
    page.wait_for_selector("#search-result:not([hidden])")
    assert "No task of this account has the key NOSUCHKEY" in page.inner_text("#search-result")
    page.fill("#search-key", newest[0][:12])  # a prefix filters what is shown
    page.wait_for_function(
        "() => document.querySelectorAll('#tasks tbody tr:not([hidden])').length"
    )
    assert newest[0] in rows_shown(page) and old not in rows_shown(page)
    page.fill("#search-key", "")

    page.select_option("#filter-status", "success")
    page.wait_for_function(
        "() => document.querySelectorAll('#tasks tbody tr:not([hidden])').length === 3"
    )
    assert rows_shown(page) == [d["key"] for d in reversed(hellos)]
    page.select_option("#filter-status", "")
    page.click("#more")
    page.wait_for_function("() => document.querySelectorAll('#tasks tbody tr').length >= 60")
    page.click("#more")
    page.wait_for_selector("#more", state="hidden")
    # Rows are drawn on the next frame after their page arrives (scheduleRender).
    page.wait_for_function(
        f"() => document.querySelectorAll('#tasks tbody tr').length === {len(newest)}"
    )
    assert rows_shown(page) == newest
