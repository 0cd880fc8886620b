// dragon dashboard: the account's tasks, live from the event feed (/v2/events, SSE), and
// older ones a page at a time from the listing (/v2/tasks, filtered as the page is); above
// them an overview (/v2/tasks/summary): counts by status and error code, small charts of
// what ended over the last hour, the lanes' queues and busy slots.
// Plain JavaScript with no build step; charts are SVG drawn here. Every value from the
// server reaches the page through textContent, an SVG attribute set to a number, or a
// checked http(s) URL, never as HTML.
"use strict";

(() => {
  const STORAGE_KEY = "dragon.secret";
  const MAX_ROWS = 500; // the most recent tasks shown, besides the pages asked for
  const PAGE = 30; // tasks per page of the listing
  const POLL_MS = 2000; // queued/executing tasks: queue position, ETA and finer progress
  const SUMMARY_MS = 5000; // the overview, besides a refresh soon after the feed's changes
  const SAMPLES = 120; // lane samples kept for the lanes' sparklines (10 min at 5 s)
  const SVG = "http://www.w3.org/2000/svg";
  const IMAGE = /\.(png|jpe?g|gif|webp|bmp)(\?|$)/i;
  const VIDEO = /\.(mp4|webm|m4v|mov|ogv)(\?|$)/i;

  const $ = (id) => document.getElementById(id);
  const tasks = new Map(); // key -> {doc, name, queue, diagnostics, seen}
  const rows = new Map(); // key -> {tr, signature, details}
  const expanded = new Set(); // keys whose row shows its details
  const laneHistory = new Map(); // lane -> [{queued, running}], oldest first
  let secret = null;
  let source = null;
  let pollTimer = null;
  let summaryTimer = null;
  let renderQueued = false;
  let order = 0;
  let older = 0; // arrival order of tasks read from the listing: below the feed's, in turn
  let maxRows = MAX_ROWS;
  // Where the listing is for the current filters: a new filter starts it again.
  const listing = { filters: null, cursor: null, done: false, loading: false };

  // -- signing in ---------------------------------------------------------------------
  function secretFromFragment() {
    const match = location.hash.match(/[#&]secret=([^&]+)/);
    if (!match) return;
    sessionStorage.setItem(STORAGE_KEY, decodeURIComponent(match[1]));
    // Out of the address bar and the history: the secret stays in this tab only.
    history.replaceState(null, "", location.pathname + location.search);
  }

  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: { Authorization: `Secret ${secret}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!response.ok) {
      const described = data && data.errors && data.errors.map((e) => e.description);
      throw new Error(described ? described.join("; ") : `HTTP ${response.status}`);
    }
    return data;
  }

  function setConnection(state, text) {
    const el = $("connection");
    el.dataset.state = state;
    el.textContent = text;
  }

  async function signIn(candidate) {
    secret = candidate;
    try {
      // A cursor past everything: checks the secret without reading the feed.
      await api("GET", `/v2/events?after=${Number.MAX_SAFE_INTEGER}`);
    } catch (error) {
      secret = null;
      sessionStorage.removeItem(STORAGE_KEY);
      showError("sign-in-error", `Sign-in failed: ${error.message}`);
      return;
    }
    sessionStorage.setItem(STORAGE_KEY, candidate);
    $("sign-in").hidden = true;
    $("main").hidden = false;
    $("sign-out").hidden = false;
    connect();
    loadPage();
    loadSummary();
    pollTimer = setInterval(poll, POLL_MS);
    summaryTimer = setInterval(loadSummary, SUMMARY_MS);
  }

  function signOut() {
    sessionStorage.removeItem(STORAGE_KEY);
    if (source) source.close();
    clearInterval(pollTimer);
    clearInterval(summaryTimer);
    location.reload();
  }

  // -- the live feed --------------------------------------------------------------------
  function connect() {
    // EventSource cannot send headers: the secret goes in the query string (the server
    // masks it in its logs). On reconnect the browser sends Last-Event-ID, so nothing is
    // missed or repeated.
    source = new EventSource(`/v2/events?follow=true&secret=${encodeURIComponent(secret)}`);
    setConnection("connecting", "connecting…");
    source.onopen = () => setConnection("live", "live");
    source.onerror = () => {
      if (source.readyState !== EventSource.CLOSED) {
        setConnection("error", "reconnecting…");
        return;
      }
      // The browser gives up on an HTTP error (a 503 while the server restarts, a 410 for
      // a cursor past retention): start a fresh feed, from the oldest change kept.
      setConnection("error", "disconnected; retrying…");
      setTimeout(() => { if (secret) connect(); }, 3000);
    };
    source.onmessage = (event) => {
      const doc = JSON.parse(event.data);
      update(doc, true);
      summarySoon();
    };
  }

  function update(doc, fromFeed) {
    let task = tasks.get(doc.key);
    if (!task) {
      task = { doc: null, name: doc.task_name || "", queue: null, diagnostics: null,
        seen: fromFeed ? order++ : --older, at: Date.parse((doc.events || {}).queued) || 0 };
      tasks.set(doc.key, task);
      addName(task.name);
    } else if (!fromFeed && task.seen < 0) {
      // Rows are ordered by creation time, then by arrival: a task met in the listing (or
      // a search) arrives below the feed's, in the order of the latest listing that had it
      // (tasks of one batch share their time).
      task.seen = --older;
    }
    if (fromFeed || !task.doc || task.doc.status === doc.status) {
      task.doc = { ...(task.doc || {}), ...doc };
      if (doc.task_name) task.name = doc.task_name;
    }
    if (task.doc.status !== "queued") task.queue = null;
    else if (!task.queue) pollSoon(); // its queue position, without waiting for the tick
    if (expanded.has(doc.key)) wantDiagnostics(doc.key, task);
    scheduleRender();
  }

  // Diagnostics are read when a row of an error task is expanded, not for every error.
  function wantDiagnostics(key, task) {
    if (task.doc && task.doc.status === "error" && task.diagnostics === null) {
      task.diagnostics = "loading";
      loadDiagnostics(key);
    }
  }

  let pollPending = null;
  function pollSoon() {
    if (pollPending === null) pollPending = setTimeout(() => { pollPending = null; poll(); }, 300);
  }

  async function poll() {
    const keys = [...tasks.entries()]
      .filter(([, t]) => t.doc && (t.doc.status === "queued" || t.doc.status === "executing"))
      .map(([key]) => key).slice(0, 200);
    if (!keys.length) return;
    try {
      const docs = await api("GET", `/v2/status?tasks=${keys.join(",")}`);
      for (const doc of docs) {
        const task = tasks.get(doc.key);
        if (!task || !task.doc || task.doc.status !== doc.status) continue;
        task.queue = doc.status === "queued" && doc.queue_position !== undefined
          ? { position: doc.queue_position, eta: doc.eta, stage: doc.stage } : null;
        if (doc.status === "executing") task.doc.progress = doc.progress;
      }
      scheduleRender();
    } catch (error) { /* the feed shows the connection state */ }
  }

  async function loadDiagnostics(key) {
    try {
      const [doc] = await api("GET", `/v2/status?tasks=${key}&details=true`);
      tasks.get(key).diagnostics = doc.diagnostics || {};
    } catch (error) {
      tasks.get(key).diagnostics = { unavailable: error.message };
    }
    scheduleRender();
  }

  // -- the listing: older tasks, a page at a time ------------------------------------------
  function listingQuery() {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if ($("filter-status").value) params.set("status", $("filter-status").value);
    if ($("filter-name").value) params.set("task_name", $("filter-name").value);
    return params;
  }

  async function loadPage() {
    const params = listingQuery();
    const filters = params.toString();
    if (filters !== listing.filters) {
      Object.assign(listing, { filters, cursor: null, done: false, loading: false });
    }
    if (listing.done || listing.loading) return;
    if (listing.cursor) params.set("cursor", listing.cursor);
    listing.loading = true;
    // Disabled while a page loads: a click now would ask for the page after a cursor
    // that is about to change (and was dropped), so it waits for the page.
    $("more").disabled = true;
    showError("list-error", "");
    try {
      const page = await api("GET", `/v2/tasks?${params}`);
      if (listing.filters !== filters) return; // the filters changed meanwhile
      for (const doc of page.tasks) update(doc, false);
      maxRows += page.tasks.length;
      listing.cursor = page.next_cursor;
      listing.done = page.next_cursor === null;
    } catch (error) {
      showError("list-error", `Older tasks: ${error.message}`);
    } finally {
      if (listing.filters === filters) listing.loading = false;
      $("more").disabled = listing.loading;
      $("more").hidden = listing.done;
      scheduleRender();
    }
  }

  // A key typed in full that the page does not hold is looked up (with its task name).
  async function searchKey(event) {
    event.preventDefault();
    const key = $("search-key").value.trim();
    const note = $("search-result");
    note.hidden = true;
    scheduleRender();
    if (!key || tasks.has(key)) return;
    try {
      const [doc] = await api("GET", `/v2/status?tasks=${encodeURIComponent(key)}&details=true`);
      if (doc.error_code === "unknown_task") {
        note.textContent = `No task of this account has the key ${key}.`;
        note.hidden = false;
        return;
      }
      update(doc, false);
    } catch (error) {
      note.textContent = `Search: ${error.message}`;
      note.hidden = false;
    }
  }

  function filtersChanged() {
    for (const tile of document.querySelectorAll(".tile.count")) {
      tile.setAttribute("aria-pressed", String(tile.dataset.status === $("filter-status").value));
    }
    scheduleRender();
    loadPage(); // the newest tasks that match, however old
    loadSummary(); // the tiles count the chosen task name's tasks
  }

  // -- the overview: tiles and small charts ------------------------------------------------
  let summaryPending = null;
  let summaryLoading = false;
  function summarySoon() {
    if (summaryPending === null) {
      summaryPending = setTimeout(() => { summaryPending = null; loadSummary(); }, 1000);
    }
  }

  async function loadSummary() {
    if (summaryLoading || !secret) return;
    summaryLoading = true;
    const params = new URLSearchParams();
    if ($("filter-name").value) params.set("task_name", $("filter-name").value);
    try {
      const summary = await api("GET", `/v2/tasks/summary?${params}`);
      if (($("filter-name").value || "") !== (params.get("task_name") || "")) {
        summarySoon(); // the filter changed meanwhile: this one counts another name
        return;
      }
      showError("overview-error", "");
      renderSummary(summary);
    } catch (error) {
      showError("overview-error", `Overview: ${error.message}`);
    } finally {
      summaryLoading = false;
    }
  }

  function renderSummary(summary) {
    for (const [status, count] of Object.entries(summary.counts)) {
      const tile = $(`tile-${status}`);
      if (!tile) continue;
      tile.dataset.count = String(count);
      tile.querySelector(".value").textContent = count.toLocaleString("en");
    }
    renderErrorCodes(summary.error_codes);
    renderLanes(summary.lanes);
    renderTimeline(summary.timeline);
  }

  function renderErrorCodes(codes) {
    const list = $("error-codes");
    const entries = Object.entries(codes);
    list.replaceChildren(...entries.slice(0, 4).map(([code, count]) =>
      el("li", { title: code }, el("span", { className: "code" }, code),
        el("span", { className: "n" }, count.toLocaleString("en")))));
    if (entries.length > 4) {
      const rest = entries.slice(4).reduce((sum, [, count]) => sum + count, 0);
      list.append(el("li", { className: "hint" }, el("span", { className: "code" },
        `${entries.length - 4} more codes`), el("span", { className: "n" }, rest)));
    }
    if (!entries.length) list.append(el("li", { className: "hint" }, "none"));
  }

  // One sample per SUMMARY_MS, so the sparklines' steps are equal: a summary read sooner
  // (after a change in the feed) replaces the last sample instead of adding one.
  let lastSample = 0;
  function renderLanes(lanes) {
    const body = $("lanes").tBodies[0];
    const fresh = Date.now() - lastSample >= SUMMARY_MS * 0.8;
    if (fresh) lastSample = Date.now();
    body.replaceChildren(...lanes.map((lane) => {
      const history = laneHistory.get(lane.lane) || [];
      if (!fresh) history.pop();
      history.push({ queued: lane.queued, running: lane.running });
      if (history.length > SAMPLES) history.shift();
      laneHistory.set(lane.lane, history);
      const tr = el("tr", null,
        el("td", { className: "lane" }, lane.lane),
        el("td", { className: "n" }, lane.queued),
        el("td", { className: "n" }, `${lane.running}/${lane.slots}`),
        el("td", { className: "spark" }, sparkline(history, lane.slots)));
      tr.dataset.lane = lane.lane;
      return tr;
    }));
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    return node;
  }

  // The lane's queued tasks (amber) and busy slots (blue) over the last samples.
  function sparkline(history, slots) {
    const width = 120, height = 20;
    const top = Math.max(slots, ...history.map((h) => h.queued + h.running), 1);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "spark",
      preserveAspectRatio: "none", "aria-hidden": "true" });
    const x = (i) => (history.length < 2 ? width : (i * width) / (SAMPLES - 1));
    const y = (v) => height - (v * (height - 2)) / top - 1;
    for (const [field, cls] of [["queued", "wait"], ["running", "run"]]) {
      const points = history.map((h, i) => `${x(i).toFixed(1)},${y(h[field]).toFixed(1)}`);
      if (points.length === 1) points.unshift(`0,${y(history[0][field]).toFixed(1)}`);
      chart.append(svg("polyline", { points: points.join(" "), class: `line ${cls}` }));
    }
    return chart;
  }

  function renderTimeline(timeline) {
    const slots = timeline.slots;
    const minutes = timeline.bucket_seconds / 60;
    $("tile-throughput").querySelector(".bucket").textContent =
      minutes === 1 ? "minute" : `${+minutes.toFixed(2)} min`;
    const span = `${Math.round((slots.length * timeline.bucket_seconds) / 60)} min ago`;
    for (const id of ["tile-throughput", "tile-durations"]) {
      $(id).querySelector(".from").textContent = span;
    }
    const peak = Math.max(1, ...slots.map((s) => s.success + s.error));
    drawBars($("chart-throughput"), slots, peak);
    $("tile-throughput").querySelector(".peak").textContent = `peak ${peak}`;
    const longest = Math.max(0, ...slots.map((s) => s.max_seconds || 0));
    drawDurations($("chart-durations"), slots, longest || 1);
    $("tile-durations").querySelector(".peak").textContent =
      longest ? `longest ${seconds(0, longest * 1000)}` : "nothing ran";
  }

  // Stacked bars, one per slot: success below, error above.
  function drawBars(chart, slots, peak) {
    const width = 600, height = 80, step = width / slots.length;
    const bar = Math.max(1, step - 1);
    chart.replaceChildren();
    slots.forEach((slot, i) => {
      let base = height;
      for (const [field, cls] of [["success", "ok"], ["error", "bad"]]) {
        if (!slot[field]) continue;
        const h = (slot[field] * (height - 2)) / peak;
        base -= h;
        chart.append(svg("rect", { x: (i * step).toFixed(2), y: base.toFixed(2),
          width: bar.toFixed(2), height: h.toFixed(2), class: `bar ${cls}` }));
      }
    });
  }

  // The mean run time (blue) and the longest (amber) of each slot as short marks, the means
  // joined by a line across slots where tasks ran.
  function drawDurations(chart, slots, top) {
    const width = 600, height = 80, step = width / slots.length;
    const y = (v) => ((height - 2) - (v * (height - 4)) / top).toFixed(1);
    chart.replaceChildren();
    let run = [];
    const flush = () => {
      if (run.length > 1) chart.append(svg("polyline", { points: run.join(" "), class: "line run" }));
      run = [];
    };
    const mark = (x, value, cls) => chart.append(svg("line", { x1: (x - step * 0.35).toFixed(1),
      x2: (x + step * 0.35).toFixed(1), y1: y(value), y2: y(value), class: `tick ${cls}` }));
    slots.forEach((slot, i) => {
      const x = (i + 0.5) * step;
      if (slot.mean_seconds === null) { flush(); return; }
      run.push(`${x.toFixed(1)},${y(slot.mean_seconds)}`);
      mark(x, slot.max_seconds, "wait");
      mark(x, slot.mean_seconds, "run");
    });
    flush();
  }

  // -- rendering ---------------------------------------------------------------------
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => { renderQueued = false; render(); });
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : String(child));
      }
    }
    return node;
  }

  function seconds(from, to) {
    const s = Math.max(0, (to - from) / 1000);
    return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  }

  function time(iso) { return iso ? new Date(iso) : null; }

  function durationCell(doc) {
    const ev = doc.events || {};
    const queued = time(ev.queued), started = time(ev.started), done = time(ev.completed);
    if (started && done) return `ran ${seconds(started, done)}`;
    if (started) return `running ${seconds(started, Date.now())}`;
    if (queued && done) return "—";
    return queued ? `waiting ${seconds(queued, Date.now())}` : "";
  }

  function safeUrl(value) {
    // Absolute http(s) URLs only: a value such as "video/mp4" is not a link.
    if (typeof value !== "string" || !/^https?:\/\//i.test(value)) return null;
    try {
      const url = new URL(value);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) { return null; }
  }

  // The error in one line for a row; spread over lines (a JSON error indented) for details.
  function errorText(doc, spread) {
    const message = typeof doc.error === "string" ? doc.error
      : JSON.stringify(doc.error, null, spread ? 2 : undefined);
    return `${doc.error_code || "error"}: ${message}`;
  }

  // The row's result, in a line or two: an error clamped to two lines (with "more" when it
  // is longer), else the output names as links and the short values as text.
  function resultCell(key, task) {
    const doc = task.doc;
    const cell = el("td", { className: "result" });
    if (doc.status === "error") {
      const open = expanded.has(key);
      const more = el("button", { type: "button", className: "more", hidden: true,
        title: open ? "Hide the error's details" : "Show all of the error" },
      open ? "less" : "more");
      more.addEventListener("click", () => toggle(key));
      cell.append(el("div", { className: "error-line" }, el("div", { className: "clamp" },
        el("span", { className: "error" }, errorText(doc))), more));
      return cell;
    }
    const result = doc.result;
    if (result === null || result === undefined) return cell;
    if (typeof result !== "object") {
      cell.append(el("div", { className: "line", title: String(result) }, String(result)));
      return cell;
    }
    const line = el("div", { className: "line" });
    for (const [name, value] of Object.entries(result)) {
      const url = safeUrl(value);
      if (url) {
        line.append(el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, name));
      } else if (value !== null && typeof value !== "object") {
        line.append(el("span", { className: "value" }, `${name}: ${value}`));
      }
    }
    cell.append(line);
    return cell;
  }

  // What an expanded row shows below it: the whole error and the diagnostics, or every
  // output with a preview; the task's times.
  function detailsCell(key, task) {
    const doc = task.doc;
    const cell = el("td", { colSpan: 7 });
    const ev = doc.events || {};
    const times = ["queued", "started", "completed"].filter((name) => ev[name])
      .map((name) => `${name} ${new Date(ev[name]).toLocaleString()}`);
    cell.append(el("div", { className: "hint" }, [key, task.name, ...times].join(" · ")));
    if (doc.status === "error") {
      cell.append(el("div", { className: "error full" }, errorText(doc, true)));
      const d = task.diagnostics;
      if (d === "loading" || d === null) {
        cell.append(el("div", { className: "hint" }, "diagnostics: loading…"));
      } else {
        const summary = d.stage ? `diagnostics: failed at ${d.stage}` : "diagnostics";
        cell.append(el("details", { className: "diagnostics" },
          el("summary", null, summary), el("pre", null, JSON.stringify(d, null, 2))));
      }
      return cell;
    }
    const result = doc.result;
    if (result === null || result === undefined) return cell;
    if (typeof result !== "object") {
      cell.append(el("div", { className: "value" }, String(result)));
      return cell;
    }
    for (const [name, value] of Object.entries(result)) {
      const url = safeUrl(value);
      if (url) {
        const output = el("div", { className: "output" },
          el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, name));
        const kind = previewKind(task.name, name, url);
        if (kind) output.append(preview(kind, url, name));
        cell.append(output);
      } else if (value !== null && typeof value !== "object") {
        cell.append(el("div", null, `${name}: ${value}`));
      } else if (value !== null) {
        cell.append(el("div", null, `${name}: ${JSON.stringify(value)}`));
      }
    }
    return cell;
  }

  function toggle(key) {
    if (expanded.has(key)) expanded.delete(key);
    else {
      expanded.add(key);
      const task = tasks.get(key);
      if (task) wantDiagnostics(key, task);
    }
    const row = rows.get(key);
    if (row) row.signature = null; // rebuilt with its details, or without them
    scheduleRender();
  }

  // Stored files have no extension: the kind is guessed from the URL, then the task and
  // output names; a guess that does not load falls back to the other kind, then to none.
  function previewKind(taskName, output, url) {
    if (IMAGE.test(url)) return "img";
    if (VIDEO.test(url)) return "video";
    if (/^audio\./.test(taskName) && !/waveform/.test(output + taskName)) return null;
    if (/^image\.|^video\.(thumb|strip)|^audio\.waveform/.test(taskName)) return "img";
    if (/thumb|image|strip|gif|waveform/i.test(output)) return "img";
    if (/^video\./.test(taskName)) return "video";
    return null;
  }

  function preview(kind, url, name) {
    const node = kind === "img"
      ? el("img", { className: "preview", src: url, alt: name, loading: "lazy" })
      : el("video", { className: "preview", src: url, controls: true, muted: true,
        preload: "metadata" });
    node.addEventListener("error", () => {
      node.replaceWith(kind === "img" ? preview("video-last", url, name) : el("span"));
    }, { once: true });
    return node;
  }

  function queueCell(task) {
    if (!task.queue) return "";
    const parts = [`#${task.queue.position}`];
    if (task.queue.stage === "downloading") parts.push("inputs downloading");
    if (task.queue.eta) {
      const eta = new Date(task.queue.eta);
      parts.push(`ETA ${eta.toLocaleTimeString()} (in ${seconds(Date.now(), eta)})`);
    }
    return parts.join(" · ");
  }

  // Queued and executing tasks can be cancelled: the answer is the task's status after it,
  // which the feed brings too.
  function cancelButton(key) {
    const button = el("button", { type: "button", className: "cancel",
      title: "Cancel this task" }, "Cancel");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const [doc] = await api("POST", "/v2/cancel", { tasks: [key] });
        if (doc && doc.key === key) update(doc, true);
      } catch (error) {
        button.disabled = false;
        button.title = `Cancel failed: ${error.message}`;
      }
    });
    return button;
  }

  function buildRow(key, task) {
    const doc = task.doc;
    const progress = el("td", { className: "progress" });
    if (doc.status === "executing") {
      const value = doc.progress || 0;
      progress.append(el("progress", { max: 100, value }), ` ${Math.round(value)} %`);
    } else if (doc.status === "success") {
      progress.append(el("progress", { max: 100, value: 100 }));
    }
    const open = expanded.has(key);
    const opener = el("button", { type: "button", className: "expand",
      title: open ? "Hide the details" : "Show the details" }, open ? "▾" : "▸");
    opener.setAttribute("aria-expanded", String(open));
    opener.addEventListener("click", () => toggle(key));
    const tr = el("tr", { className: `task status-row-${doc.status}` },
      el("td", { className: "key", title: key }, opener, el("span", null, key)),
      el("td", { className: "name", title: task.name }, task.name),
      el("td", { className: `status status-${doc.status}` }, doc.status,
        doc.status === "queued" || doc.status === "executing" ? cancelButton(key) : null),
      progress,
      el("td", { className: "queue" }, queueCell(task)),
      el("td", { className: "duration" }, durationCell(doc)),
      resultCell(key, task));
    tr.dataset.key = key;
    tr.dataset.status = doc.status;
    tr.dataset.name = task.name;
    if (open) tr.classList.add("open");
    return tr;
  }

  function buildDetails(key, task) {
    const tr = el("tr", { className: "details" }, detailsCell(key, task));
    tr.dataset.detailsOf = key;
    return tr;
  }

  // "more" is offered where the clamp hides part of an error (measured once shown).
  function offerMore(tr) {
    const clamp = tr.querySelector(".clamp");
    if (clamp) tr.querySelector("button.more").hidden = clamp.scrollHeight <= clamp.clientHeight + 1;
  }

  function render() {
    const body = document.querySelector("#tasks tbody");
    const wanted = $("filter-status").value;
    const name = $("filter-name").value;
    const search = $("search-key").value.trim().toUpperCase();
    const recent = [...tasks.entries()]
      .filter(([, t]) => t.doc)
      .sort((a, b) => (b[1].at - a[1].at) || (b[1].seen - a[1].seen))
      .slice(0, maxRows);
    const keep = new Set(recent.map(([key]) => key));
    for (const [key, row] of rows) {
      if (!keep.has(key)) {
        row.tr.remove();
        if (row.details) row.details.remove();
        rows.delete(key);
      }
    }
    let shown = 0;
    let previous = null;
    for (const [key, task] of recent) {
      const row = rowFor(key, task);
      row.tr.querySelector(".duration").textContent = durationCell(task.doc);
      row.tr.querySelector(".queue").textContent = queueCell(task);
      // Newest first: place each row right after the previous one, its details after it.
      for (const tr of row.details ? [row.tr, row.details] : [row.tr]) {
        const anchor = previous ? previous.nextSibling : body.firstChild;
        if (tr !== anchor) body.insertBefore(tr, anchor);
        previous = tr;
      }
      row.tr.hidden = (wanted && task.doc.status !== wanted) || (name && task.name !== name)
        || (search && !key.toUpperCase().includes(search));
      if (row.details) row.details.hidden = row.tr.hidden;
      if (!row.tr.hidden) shown++;
    }
    for (const row of rows.values()) {
      if (!row.measured && !row.tr.hidden) {
        offerMore(row.tr);
        row.measured = true;
      }
    }
    $("empty").hidden = recent.length > 0;
    $("counts").textContent = `${shown} shown of ${tasks.size}`;
  }

  // A row is rebuilt only when its task changed (a playing preview keeps playing); the
  // clock-driven cells are refreshed in place by the caller.
  function rowFor(key, task) {
    const signature = JSON.stringify([task.doc, task.diagnostics, task.name]);
    let row = rows.get(key);
    if (row && row.signature === signature) return row;
    const tr = buildRow(key, task);
    const details = expanded.has(key) ? buildDetails(key, task) : null;
    if (row) {
      row.tr.replaceWith(tr);
      if (row.details) row.details.remove();
    }
    row = { tr, signature, details, measured: false };
    rows.set(key, row);
    return row;
  }

  function addName(name) {
    if (!name) return;
    const select = $("filter-name");
    if ([...select.options].some((o) => o.value === name)) return;
    select.append(el("option", { value: name }, name));
    const list = $("task-names");
    if (![...list.options].some((o) => o.value === name)) list.append(el("option", { value: name }));
  }

  function showError(id, message) {
    const box = $(id);
    box.textContent = message || "";
    box.hidden = !message;
  }

  // -- creating a task ----------------------------------------------------------------
  async function create(event) {
    event.preventDefault();
    showError("create-error", "");
    let params;
    try {
      params = JSON.parse($("task-params").value || "{}");
      if (!params || typeof params !== "object" || Array.isArray(params)) {
        throw new Error("the parameters must be a JSON object");
      }
    } catch (error) {
      showError("create-error", `Parameters: ${error.message}`);
      return;
    }
    const task = { ...params, task_name: $("task-name").value.trim() };
    try {
      const [doc] = await api("POST", "/v2/create", { tasks: [task] });
      if (doc.status === "error") {
        showError("create-error", `${doc.error_code}: ${JSON.stringify(doc.error)}`);
      }
    } catch (error) {
      showError("create-error", error.message);
    }
  }

  // -- start ------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    // The server's tasks, plugins included, as the server wrote them into the page; a
    // task seen in the feed under another name (since removed) is added when it arrives.
    for (const name of JSON.parse(document.body.dataset.tasks || "[]")) addName(name);
    $("sign-in-form").addEventListener("submit", (event) => {
      event.preventDefault();
      showError("sign-in-error", "");
      signIn($("secret").value.trim());
    });
    $("sign-out").addEventListener("click", signOut);
    $("create-form").addEventListener("submit", create);
    $("filter-status").addEventListener("change", filtersChanged);
    $("filter-name").addEventListener("change", filtersChanged);
    $("search-key").addEventListener("input", scheduleRender);
    $("search-form").addEventListener("submit", searchKey);
    $("more").addEventListener("click", loadPage);
    // A status tile shows that status's tasks; again, all of them.
    for (const tile of document.querySelectorAll(".tile.count")) {
      tile.addEventListener("click", () => {
        const select = $("filter-status");
        select.value = select.value === tile.dataset.status ? "" : tile.dataset.status;
        filtersChanged();
      });
    }
    setInterval(scheduleRender, 1000); // running durations and ETAs count on
    secretFromFragment();
    const stored = sessionStorage.getItem(STORAGE_KEY);
    if (stored) signIn(stored);
  });
})();
