// redmesh dashboard page script: one EventSource, tables rebuilt from each pushed snapshot, a
// bounded live log. Every value from the server goes into the page as text (textContent / Text
// nodes), never as HTML.

const MAX_LOG_ROWS = 500;
const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];

const $ = (id) => document.getElementById(id);

/** Build an element; children are nodes or plain values (rendered as text). */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ""));
  return e;
}

const mib = (bytes) => (bytes / 1048576).toFixed(1);
const fixed1 = (n) => (typeof n === "number" ? n.toFixed(1) : "");

function ago(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

function emptyRow(cols, text) {
  return el("tr", {}, el("td", { colspan: cols, class: "muted" }, text));
}

// ---- snapshot ----

function renderInstances(snap) {
  const rows = [];
  let total = 0;
  for (const svc of snap.services) {
    if (svc.instances.length === 0) {
      rows.push(
        el(
          "tr",
          { class: "group", "data-service": svc.name },
          el("th", { scope: "row" }, svc.name),
          el("td", { colspan: 12, class: "muted" }, "no live instance"),
        ),
      );
      continue;
    }
    svc.instances.forEach((inst, i) => {
      total++;
      const h = inst.health;
      const status = h?.status ?? inst.status;
      const checks = el("td", {});
      for (const c of h?.checks ?? []) {
        checks.append(
          el("span", { class: c.ok ? "" : "check-bad" }, c.ok ? `${c.name} ✓` : `${c.name} ✗`),
          " ",
        );
      }
      rows.push(
        el(
          "tr",
          { class: i === 0 ? "group" : undefined, "data-service": svc.name, "data-instance": inst.id },
          el("th", { scope: "row" }, svc.name),
          el("td", { class: "mono", title: inst.id }, inst.id.slice(0, 12)),
          el("td", {}, inst.version),
          el("td", { class: `status-${status}` }, status),
          el("td", { class: "num" }, h ? fixed1(h.cpuPercent) : "–"),
          el("td", { class: "num" }, h ? mib(h.rssBytes) : "–"),
          el("td", { class: "num" }, h ? mib(h.heapUsedBytes) : "–"),
          el("td", { class: "num" }, h ? fixed1(h.lagP99Ms) : "–"),
          el("td", { class: "num" }, h ? String(h.inFlight) : "–"),
          h
            ? h.checks.length
              ? checks
              : el("td", { class: "muted" }, "none")
            : el("td", { class: "muted" }, "no health yet"),
          el("td", {}, `${inst.host}${inst.pid === null ? "" : ` / ${inst.pid}`}`),
          el("td", { class: "mono" }, inst.address ?? "–"),
          el("td", {}, inst.startedOn ? ago(inst.startedOn) : ""),
        ),
      );
    });
  }
  if (rows.length === 0) rows.push(emptyRow(13, `no services registered in namespace "${snap.namespace}"`));
  $("instances").tBodies[0].replaceChildren(...rows);
  const n = snap.services.length;
  $("summary").textContent =
    `${n} service${n === 1 ? "" : "s"}, ${total} live instance${total === 1 ? "" : "s"}`;
}

function renderRoutes(snap) {
  const rows = [];
  for (const svc of snap.services) {
    for (const r of svc.routes)
      rows.push(el("tr", {}, el("td", {}, svc.name), el("td", { class: "mono" }, r)));
  }
  $("routes").tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(2, "no routes registered")]));
}

function renderConfig(snap) {
  const rows = [];
  for (const svc of snap.services) {
    if (!svc.config) continue;
    rows.push(
      el(
        "tr",
        { "data-service": svc.name },
        el("td", {}, svc.name),
        el("td", { class: "mono" }, svc.config.active ?? "–"),
        el("td", { class: "mono" }, svc.config.versions.join(", ")),
      ),
    );
  }
  $("config").tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(3, "no config stored")]));
}

function renderQueues(snap) {
  const note = $("queues-note");
  const table = $("queues");
  if (!snap.queues.available) {
    note.textContent = `Queue statistics unavailable: ${snap.queues.reason}.`;
    note.hidden = false;
    table.hidden = true;
    return;
  }
  note.hidden = true;
  table.hidden = false;
  const rows = snap.queues.items.map((q) =>
    el(
      "tr",
      {},
      el("td", {}, q.service),
      el("td", {}, q.queue),
      ...[q.pending, q.inFlight, q.delayed, q.dead, q.processed, q.failed].map((n, i) =>
        el("td", { class: i === 3 && n > 0 ? "num check-bad" : "num" }, String(n)),
      ),
    ),
  );
  table.tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(8, "no queues")]));
}

function renderSnapshot(snap) {
  $("namespace").textContent = snap.namespace;
  renderInstances(snap);
  renderRoutes(snap);
  renderConfig(snap);
  renderQueues(snap);
  const warn = $("warnings");
  warn.textContent = snap.errors.length ? `Some data could not be read: ${snap.errors.join("; ")}` : "";
  warn.hidden = snap.errors.length === 0;
}

// ---- logs ----

function time(ts) {
  const d = new Date(ts);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function logRow(e) {
  const fields = e.fields === undefined ? "" : JSON.stringify(e.fields);
  return el(
    "tr",
    { "data-level": e.level },
    el("td", { class: "mono" }, el("time", { datetime: new Date(e.ts).toISOString() }, time(e.ts))),
    el("td", { class: `level-${e.level}` }, e.level),
    el("td", {}, e.service),
    el("td", { class: "mono", title: e.instance }, e.instance.slice(0, 8)),
    el("td", { class: "msg" }, e.msg),
    el("td", { class: "fields mono" }, fields),
  );
}

function addLogs(entries) {
  const body = $("logs").tBodies[0];
  // Newest first: prepend in arrival order.
  const frag = document.createDocumentFragment();
  for (let i = entries.length - 1; i >= 0; i--) frag.append(logRow(entries[i]));
  body.prepend(frag);
  while (body.rows.length > MAX_LOG_ROWS) body.lastElementChild.remove();
  $("log-count").textContent = `${body.rows.length} shown (newest first, at most ${MAX_LOG_ROWS})`;
}

function addNotice(text) {
  $("logs").tBodies[0].prepend(el("tr", {}, el("td", { colspan: 6, class: "muted" }, text)));
}

// ---- connection ----

let source;

function setConnection(state, text) {
  const p = $("connection");
  p.dataset.state = state;
  p.textContent = text;
}

function connect(level) {
  source?.close();
  $("logs").tBodies[0].replaceChildren();
  $("log-count").textContent = "";
  setConnection("connecting", "Connecting…");
  const es = new EventSource(`events?level=${encodeURIComponent(level)}`);
  source = es;
  const parse = (ev) => {
    try {
      return JSON.parse(ev.data);
    } catch {
      return undefined;
    }
  };
  es.addEventListener("open", () => setConnection("live", "Live"));
  es.addEventListener("error", () => {
    if (es.readyState === EventSource.CLOSED) setConnection("down", "Disconnected (reload the page)");
    else setConnection("reconnecting", "Reconnecting…");
  });
  es.addEventListener("hello", () => {
    // A reconnect replays the backlog: start the log table afresh.
    $("logs").tBodies[0].replaceChildren();
  });
  es.addEventListener("snapshot", (ev) => {
    const snap = parse(ev);
    if (snap) renderSnapshot(snap);
  });
  es.addEventListener("log", (ev) => {
    const e = parse(ev);
    if (e) addLogs([e]);
  });
  es.addEventListener("logs", (ev) => {
    const list = parse(ev);
    if (Array.isArray(list)) addLogs(list);
  });
  es.addEventListener("dropped", (ev) => {
    const d = parse(ev);
    if (d) addNotice(`${d.count} log entries skipped: the page fell behind`);
  });
}

const select = $("level");
let saved = "info";
try {
  saved = localStorage.getItem("redmesh.dashboard.level") ?? "info";
} catch {
  /* storage disabled */
}
select.value = LEVELS.includes(saved) ? saved : "info";
select.addEventListener("change", () => {
  try {
    localStorage.setItem("redmesh.dashboard.level", select.value);
  } catch {
    /* storage disabled */
  }
  connect(select.value);
});
connect(select.value);
