// dragon dashboard: the account's tasks, live from the event feed (/v2/events, SSE), and
// older ones a page at a time from the listing (/v2/tasks, filtered as the page is).
// Plain JavaScript with no build step. Every value from the server reaches the page
// through textContent or a checked http(s) URL, never as HTML.
"use strict";

(() => {
  const STORAGE_KEY = "dragon.secret";
  const MAX_ROWS = 500; // the most recent tasks shown, besides the pages asked for
  const PAGE = 30; // tasks per page of the listing
  const POLL_MS = 2000; // queued/executing tasks: queue position, ETA and finer progress
  const IMAGE = /\.(png|jpe?g|gif|webp|bmp)(\?|$)/i;
  const VIDEO = /\.(mp4|webm|m4v|mov|ogv)(\?|$)/i;

  const $ = (id) => document.getElementById(id);
  const tasks = new Map(); // key -> {doc, name, queue, diagnostics, seen}
  const rows = new Map(); // key -> {tr, signature}
  let secret = null;
  let source = null;
  let pollTimer = null;
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
    pollTimer = setInterval(poll, POLL_MS);
  }

  function signOut() {
    sessionStorage.removeItem(STORAGE_KEY);
    if (source) source.close();
    clearInterval(pollTimer);
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
    if (task.doc.status === "error" && task.diagnostics === null) {
      task.diagnostics = "loading";
      loadDiagnostics(doc.key);
    }
    scheduleRender();
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
    scheduleRender();
    loadPage(); // the newest tasks that match, however old
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

  function resultCell(task) {
    const doc = task.doc;
    const cell = el("td", { className: "result" });
    if (doc.status === "error") {
      const message = typeof doc.error === "string" ? doc.error : JSON.stringify(doc.error);
      cell.append(el("div", { className: "error" }, `${doc.error_code || "error"}: ${message}`));
      if (task.diagnostics && task.diagnostics !== "loading") {
        const d = task.diagnostics;
        const summary = d.stage ? `diagnostics: failed at ${d.stage}` : "diagnostics";
        cell.append(el("details", { className: "diagnostics" },
          el("summary", null, summary),
          el("pre", null, JSON.stringify(d, null, 2))));
      }
      return cell;
    }
    const result = doc.result;
    if (!result || typeof result !== "object") return cell;
    for (const [name, value] of Object.entries(result)) {
      const url = safeUrl(value);
      if (url) {
        cell.append(el("a", { href: url, target: "_blank", rel: "noopener noreferrer" },
          `${name}`));
        const kind = previewKind(task.name, name, url);
        if (kind) cell.append(preview(kind, url, name));
      } else if (value !== null && typeof value !== "object") {
        cell.append(el("div", null, `${name}: ${value}`));
      }
    }
    return cell;
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
    const progress = el("td");
    if (doc.status === "executing") {
      const value = doc.progress || 0;
      progress.append(el("progress", { max: 100, value }), ` ${Math.round(value)} %`);
    } else if (doc.status === "success") {
      progress.append(el("progress", { max: 100, value: 100 }));
    }
    const tr = el("tr", { className: `task status-row-${doc.status}` },
      el("td", { className: "key", title: key }, key),
      el("td", { className: "name" }, task.name),
      el("td", { className: `status status-${doc.status}` }, doc.status,
        doc.status === "queued" || doc.status === "executing" ? cancelButton(key) : null),
      progress,
      el("td", { className: "queue" }, queueCell(task)),
      el("td", { className: "duration" }, durationCell(doc)),
      resultCell(task));
    tr.dataset.key = key;
    tr.dataset.status = doc.status;
    tr.dataset.name = task.name;
    return tr;
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
      if (!keep.has(key)) { row.tr.remove(); rows.delete(key); }
    }
    let shown = 0;
    let previous = null;
    for (const [key, task] of recent) {
      // A row is rebuilt only when its task changed (a playing preview keeps playing);
      // the clock-driven cells are refreshed in place.
      const signature = JSON.stringify([task.doc, task.diagnostics, task.name]);
      let row = rows.get(key);
      if (!row || row.signature !== signature) {
        const tr = buildRow(key, task);
        if (row) row.tr.replaceWith(tr);
        row = { tr, signature };
        rows.set(key, row);
      }
      row.tr.querySelector(".duration").textContent = durationCell(task.doc);
      row.tr.querySelector(".queue").textContent = queueCell(task);
      // Newest first: place each row right after the previous one.
      const anchor = previous ? previous.nextSibling : body.firstChild;
      if (row.tr !== anchor) body.insertBefore(row.tr, anchor);
      previous = row.tr;
      row.tr.hidden = (wanted && task.doc.status !== wanted) || (name && task.name !== name)
        || (search && !key.toUpperCase().includes(search));
      if (!row.tr.hidden) shown++;
    }
    $("empty").hidden = recent.length > 0;
    $("counts").textContent = `${shown} shown of ${tasks.size}`;
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
    setInterval(scheduleRender, 1000); // running durations and ETAs count on
    secretFromFragment();
    const stored = sessionStorage.getItem(STORAGE_KEY);
    if (stored) signIn(stored);
  });
})();
