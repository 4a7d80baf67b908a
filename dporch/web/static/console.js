// The dporch web console: the task list (/) and a task's page (/tasks/ID), live over the
// WebSocket at /ws, which carries the API's own JSON requests, answers and events (docs/api.md).
// No framework and no third-party code: the console works offline.
"use strict";

const ACTIONS = ["start", "pause", "resume", "stop", "reset", "delete"];
const STATES = ["ready", "running", "paused", "stopped", "error"];
const fmt = new Intl.NumberFormat("en-US", {maximumFractionDigits: 1});
const fmt0 = new Intl.NumberFormat("en-US", {maximumFractionDigits: 0});

// -- the API over the WebSocket ----------------------------------------------------------------------
class API {
  constructor(onState) {
    this.onState = onState;
    this.seq = 0;
    this.pending = new Map();  // request id -> resolve
    this.handlers = new Map(); // subscription -> event handler
    this.early = new Map();    // events of a subscription whose answer is not handled yet
    this.connect();
  }
  url() { return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws"; }
  connect() {
    const ws = this.ws = new WebSocket(this.url());
    this.ready = new Promise((resolve, reject) => {
      ws.onopen = () => { this.onState("live"); resolve(); };
      ws.onerror = () => reject(new Error("no connection to the server"));
    });
    this.ready.catch(() => {});
    ws.onmessage = (e) => this.receive(JSON.parse(e.data));
    ws.onclose = () => {
      this.onState("closed");
      for (const resolve of this.pending.values())
        resolve({status: "error", code: "disconnected", message: "the connection to the server closed"});
      this.pending.clear();
      this.probe();
    };
  }
  // Once the server answers again, start over (subscriptions and all).
  probe() {
    setTimeout(() => {
      const ws = new WebSocket(this.url());
      ws.onopen = () => { ws.close(); location.reload(); };
      ws.onerror = () => this.probe();
    }, 2000);
  }
  receive(msg) {
    if (msg.event) {
      const handler = this.handlers.get(msg.subscription);
      if (handler) handler(msg);
      else if (msg.subscription) {
        if (!this.early.has(msg.subscription)) this.early.set(msg.subscription, []);
        this.early.get(msg.subscription).push(msg);
      }
      return;
    }
    const resolve = this.pending.get(msg.id);
    if (resolve) { this.pending.delete(msg.id); resolve(msg); }
  }
  // The whole answer: {status: "ok", data, message} or {status: "error", code, message, issues}.
  async call(action, params = {}) {
    try { await this.ready; } catch (e) {
      return {status: "error", code: "disconnected", message: e.message};
    }
    const id = ++this.seq;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.ws.send(JSON.stringify({action, params, id}));
    });
  }
  async subscribe(action, params, handler) {
    const msg = await this.call(action, params);
    if (msg.status === "ok") {
      const sid = msg.data.subscription;
      this.handlers.set(sid, handler);
      for (const ev of this.early.get(sid) || []) handler(ev);
      this.early.delete(sid);
    }
    return msg;
  }
  unsubscribe(sid) {
    this.handlers.delete(sid);
    return this.call("unsubscribe", {subscription: sid});
  }
}

// -- DOM helpers ------------------------------------------------------------------------------------------
function el(tag, props = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
}
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}
function num(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return digits === 0 ? fmt0.format(v) : fmt.format(v);
}
function badge(state, transition) {
  return el("span", {class: "badge state-" + state, dataset: {state}}, transition || state);
}
function flash(node, msg, ok) {
  node.textContent = msg;
  node.className = "msg " + (ok ? "ok" : "refused");
  clearTimeout(node._timer);
  if (ok) node._timer = setTimeout(() => { node.textContent = ""; }, 5000);
}
async function act(api, action, id, msgNode) {
  const params = {task_id: id};
  const answer = await api.call(action + "_task", params);
  if (answer.status === "ok") flash(msgNode, answer.message || action + " done", true);
  else flash(msgNode, `${answer.code}: ${answer.message}`, false);
  return answer;
}
function actionButtons(api, id, msgNode, after) {
  return el("div", {class: "actions"}, ACTIONS.map((a) => el("button", {
    type: "button", class: "act act-" + a, dataset: {action: a},
    onclick: async (e) => {
      const button = e.currentTarget;
      if (a === "delete" && !confirm(`Delete task ${id}?`)) return;
      button.disabled = true;
      const answer = await act(api, a, id, msgNode);
      button.disabled = false;
      if (after) after(a, answer);
    }}, a)));
}
function setAllowed(box, allowed) {
  for (const b of box.querySelectorAll("button.act"))
    b.classList.toggle("allowed", (allowed || []).includes(b.dataset.action));
}

// -- charts: small SVG line charts of the last few minutes ------------------------------------------------------
class Chart {
  constructor(title, series, opts = {}) {
    this.series = series;  // [{key, label, color, dashed}]
    this.opts = opts;
    this.points = [];      // [time, {key: value}]
    this.keep = opts.keep || 300;
    this.width = 460;
    this.height = 130;
    this.svg = svg("svg", {viewBox: `0 0 ${this.width} ${this.height}`, class: "chart-svg", role: "img"});
    this.legend = el("div", {class: "legend"}, series.map((s) =>
      el("span", {class: "key"}, el("i", {class: "swatch" + (s.dashed ? " dashed" : ""), dataset: {color: s.color}}),
         s.label)));
    for (const sw of this.legend.querySelectorAll(".swatch")) sw.style.borderColor = sw.dataset.color;
    this.root = el("figure", {class: "chart", dataset: {chart: opts.name || title}},
                   el("figcaption", {text: title}), this.svg, this.legend);
  }
  push(t, values) {
    this.points.push([t, values]);
    if (this.points.length > this.keep) this.points.shift();
    this.draw();
  }
  draw() {
    const W = this.width, H = this.height, left = 44, right = 6, top = 8, bottom = 18;
    const pts = this.points;
    this.svg.replaceChildren();
    let max = this.opts.max || 0;
    for (const [, v] of pts) for (const s of this.series) {
      const y = v[s.key];
      if (typeof y === "number" && y > max) max = y;
    }
    if (!this.opts.max) max = max > 0 ? niceMax(max * 1.1) : 1;
    const t1 = pts.length ? pts[pts.length - 1][0] : Date.now() / 1000;
    const span = Math.max(60, pts.length ? t1 - pts[0][0] : 60);
    const x = (t) => left + (W - left - right) * (1 - (t1 - t) / span);
    const y = (v) => top + (H - top - bottom) * (1 - v / max);
    for (const f of [0, 0.5, 1]) {
      this.svg.append(svg("line", {x1: left, x2: W - right, y1: y(max * f), y2: y(max * f), class: "grid"}));
      const label = svg("text", {x: left - 4, y: y(max * f) + 4, class: "tick", "text-anchor": "end"});
      label.textContent = num(max * f, max * f >= 10 || f === 0 ? 0 : 2);
      this.svg.append(label);
    }
    const ago = svg("text", {x: left, y: H - 4, class: "tick"});
    ago.textContent = `−${Math.round(span)} s`;
    const now = svg("text", {x: W - right, y: H - 4, class: "tick", "text-anchor": "end"});
    now.textContent = "now";
    this.svg.append(ago, now);
    for (const s of this.series) {
      let d = "", pen = false;
      for (const [t, v] of pts) {
        const val = v[s.key];
        if (typeof val !== "number") { pen = false; continue; }
        d += (pen ? "L" : "M") + x(t).toFixed(1) + "," + y(Math.min(val, max)).toFixed(1);
        pen = true;
      }
      if (d) this.svg.append(svg("path", {d, class: "line" + (s.dashed ? " dashed" : ""), stroke: s.color}));
    }
  }
}
function niceMax(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// -- the workflow: the tasks' graph from get_graph, drawn where workflow.layout placed it -------------------------
const BOX_W = 170, BOX_H = 40, GAP_X = 70, ROW_H = 58, PAD = 6, LABEL_CHARS = 22;
const BOW = 0.7 * ROW_H;  // an edge that skips layers bows up by this much, over the boxes between its ends
class Workflow {
  constructor(api) {
    this.api = api;
    this.version = null;  // the server's graph version drawn (stats events carry the current one)
    this.nodes = new Map();  // task id -> its <a class="node">
    this.svg = svg("svg", {class: "dag-svg", role: "img", "aria-label": "the tasks and what each reads"});
    this.issues = el("ul", {class: "push-errors", id: "workflow-issues"});
    this.root = el("section", {class: "panel dag", id: "workflow", hidden: true},
      el("h2", {text: "Workflow"}),
      el("div", {class: "dag-scroll"}, this.svg),
      el("div", {class: "legend"},
         el("span", {class: "key"}, el("i", {class: "swatch"}), "rows from a task"),
         el("span", {class: "key"}, el("i", {class: "swatch dashed"}), "files from a task (its output path, the reader's input)"),
         el("span", {class: "key"}, "square corners: batch, round: realtime")),
      this.issues);
  }
  // A new graph version: fetch the graph (only then; states change colours in place).
  async seen(version) {
    if (version === undefined || version === this.version) return;
    this.version = version;
    const answer = await this.api.call("get_graph");
    if (answer.status === "ok" && this.version === version) this.draw(answer.data);
  }
  status(id, state) {
    const node = this.nodes.get(id);
    if (!node || node.dataset.state === state) return;
    node.dataset.state = state;
    node.querySelector(".detail").textContent = `${node.dataset.kind} · ${state}`;
  }
  draw(graph) {
    this.nodes.clear();
    const at = new Map(graph.nodes.map((n) => [n.id, n]));
    const bows = graph.edges.some((e) => at.has(e.from) && at.has(e.to) && at.get(e.to).layer - at.get(e.from).layer > 1);
    const top = PAD + (bows ? 18 : 0);
    const x = (n) => PAD + n.layer * (BOX_W + GAP_X), y = (n) => top + n.row * ROW_H;
    const layers = Math.max(0, ...graph.nodes.map((n) => n.layer + 1));
    const rows = Math.max(0, ...graph.nodes.map((n) => n.row + 1));
    const W = 2 * PAD + layers * (BOX_W + GAP_X) - GAP_X, H = top + PAD + rows * ROW_H - (ROW_H - BOX_H);
    this.svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    this.svg.setAttribute("width", W);
    this.svg.setAttribute("height", H);
    const marker = svg("marker", {id: "dag-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
                                  markerHeight: 7, orient: "auto"});
    marker.append(svg("path", {d: "M0,0 L10,5 L0,10 z", class: "arrowhead"}));
    const defs = svg("defs");
    defs.append(marker);
    const parts = [defs];
    for (const e of graph.edges) {
      const a = at.get(e.from), b = at.get(e.to);
      if (!a || !b) continue;
      const x0 = x(a) + BOX_W, y0 = y(a) + BOX_H / 2, x1 = x(b) - 2, y1 = y(b) + BOX_H / 2, half = (x1 - x0) / 2;
      const lift = b.layer - a.layer > 1 ? 2 * BOW : 0;
      const path = svg("path", {class: "edge via-" + e.via, "marker-end": "url(#dag-arrow)",
                                d: `M${x0},${y0} C${x0 + half},${y0 - lift} ${x1 - half},${y1} ${x1},${y1}`});
      path.dataset.from = e.from;
      path.dataset.to = e.to;
      path.dataset.via = e.via;
      parts.push(path);
    }
    for (const n of graph.nodes) {
      const node = svg("a", {class: "node", href: "/tasks/" + encodeURIComponent(n.id)});
      Object.assign(node.dataset, {task: n.id, state: n.status, kind: n.kind, layer: n.layer, row: n.row});
      const title = svg("title");
      title.textContent = n.id + (n.name ? ` · ${n.name}` : "") + ` (${n.kind}, ${n.status})`;
      const label = svg("text", {x: x(n) + BOX_W / 2, y: y(n) + 17, class: "label", "text-anchor": "middle"});
      label.textContent = n.id.length > LABEL_CHARS ? n.id.slice(0, LABEL_CHARS - 1) + "…" : n.id;
      const detail = svg("text", {x: x(n) + BOX_W / 2, y: y(n) + 32, class: "detail", "text-anchor": "middle"});
      detail.textContent = `${n.kind} · ${n.status}`;
      node.append(title, svg("rect", {x: x(n), y: y(n), width: BOX_W, height: BOX_H, rx: n.kind === "batch" ? 3 : 14}),
                  label, detail);
      this.nodes.set(n.id, node);
      parts.push(node);
    }
    this.svg.replaceChildren(...parts);
    this.issues.replaceChildren(...graph.issues.map((i) => el("li", {text: `${i.task}: ${i.message}`})));
    this.root.hidden = graph.nodes.length === 0;
  }
}

// -- a task's configuration as TOML -------------------------------------------------------------------------
function tomlValue(v) {
  if (v === null || v === undefined) return '""';
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return "[" + v.map(tomlValue).join(", ") + "]";
  if (typeof v === "object")
    return "{ " + Object.entries(v).map(([k, x]) => `${k} = ${tomlValue(x)}`).join(", ") + " }";
  return String(v);
}
function toToml(cfg) {
  const lines = [], tables = [];
  for (const [k, v] of Object.entries(cfg)) {
    if (v && typeof v === "object" && !Array.isArray(v)) tables.push([k, v]);
    else lines.push(`${k} = ${tomlValue(v)}`);
  }
  for (const [k, table] of tables) {
    const entries = Object.entries(table);
    if (!entries.length) continue;
    lines.push("", `[${k}]`);
    for (const [tk, tv] of entries) {
      if (Array.isArray(tv) && tv.length && typeof tv[0] === "object")
        lines.push(`${tk} = [`, ...tv.map((x) => `  ${tomlValue(x)},`), "]");
      else lines.push(`${tk} = ${tomlValue(tv)}`);
    }
  }
  return lines.join("\n");
}

// -- rows typed into the push form ------------------------------------------------------------------------------
function csvRecords(text) {
  const out = [];
  let row = [], cell = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; }
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(cell); cell = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(cell); cell = "";
      if (row.length > 1 || row[0] !== "") out.push(row);
      row = [];
    } else cell += c;
  }
  if (quoted) throw new Error("a quoted cell does not end");
  row.push(cell);
  if (row.length > 1 || row[0] !== "") out.push(row);
  return out;
}
function parseRows(text, format) {
  if (format === "json") {
    return text.split(/\r?\n/).map((l, i) => [l.trim(), i + 1]).filter(([l]) => l).map(([l, n]) => {
      try { return JSON.parse(l); } catch (e) { throw new Error(`line ${n}: not JSON (${e.message})`); }
    });
  }
  const records = csvRecords(text);
  if (records.length < 2) throw new Error("CSV: a header line, then one line per row");
  const header = records[0].map((h) => h.trim());
  return records.slice(1).map((r) => Object.fromEntries(header.map((h, i) => [h, r[i] === undefined ? "" : r[i]])));
}
// "column=value, ..." as an equality filter. A value is compared with the output cell as it is
// typed: text for a column the schema declares string (600001 stays "600001"), a number or
// boolean for number and boolean columns, and JSON when it parses for a column it does not know.
function parseFilter(text, types = {}) {
  const filt = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const at = part.indexOf("=");
    if (at <= 0) throw new Error(`"${part}" is not column=value`);
    const k = part.slice(0, at).trim(), v = part.slice(at + 1).trim();
    let value = v;
    if (types[k] !== "string") {
      try { value = JSON.parse(v); } catch (e) { value = v; }
      if (typeof value === "object" && value !== null) value = v;
    }
    filt[k] = value;
  }
  return filt;
}

// -- the task list ----------------------------------------------------------------------------------------------
const TEMPLATE = `# One task: the keys of a [[task]] table. Paths are relative to the server's folder.
id = "console-demo"
name = "A task made in the console"
scripts = ["workflows/indicators.dp"]

[schema]
columns = [
  { name = "stock_code", type = "string", required = true },
  { name = "date", type = "string" },
  { name = "close", type = "number" },
]

[routing]
enabled = true
key_column = "stock_code"
strategy = "hash"

[compute_pool]
initial_size = 1
max_size = 2

[input]
type = "tcp"
port = 9101

[output]
type = "file"
path = "output/console-demo/{stock_code}.csv"
mode = "split"
`;

function listPage(api, app) {
  const cards = new Map();
  const grid = el("div", {class: "cards", id: "cards"});
  const empty = el("p", {class: "muted empty", text: "No task yet: create one."});
  const count = el("span", {class: "muted", id: "task-count"});
  const editor = newTaskPanel(api);
  const flow = new Workflow(api);
  app.replaceChildren(
    el("div", {class: "page-head"}, el("h1", {text: "Tasks"}), count,
       el("button", {type: "button", class: "primary", id: "new-task", onclick: () => editor.toggle()}, "New task")),
    editor.root, empty, flow.root, grid);

  function card(t) {
    const msg = el("p", {class: "msg", role: "status"});
    const c = {
      root: null, msg,
      state: el("span"), name: el("div", {class: "name"}),
      processed: el("dd", {class: "f-processed"}), errors: el("dd", {class: "f-errors"}),
      rate: el("dd", {class: "f-rate"}), units: el("dd", {class: "f-units"}),
      load: el("dd", {class: "f-load"}), bar: el("i", {class: "fill"}),
      buttons: actionButtons(api, t.id, msg),
    };
    c.root = el("article", {class: "card", dataset: {task: t.id}},
      el("header", {}, el("a", {class: "tid", href: "/tasks/" + encodeURIComponent(t.id), text: t.id}), c.state),
      c.name,
      el("dl", {class: "figures"},
         el("div", {}, el("dt", {text: "processed"}), c.processed),
         el("div", {}, el("dt", {text: "errors"}), c.errors),
         el("div", {}, el("dt", {text: "rows/s"}), c.rate),
         el("div", {}, el("dt", {text: "units"}), c.units),
         el("div", {class: "wide"}, el("dt", {text: "load"}), c.load)),
      el("div", {class: "loadbar"}, c.bar),
      c.buttons, msg);
    return c;
  }
  function update(t) {
    let c = cards.get(t.id);
    if (!c) {
      c = card(t);
      cards.set(t.id, c);
      const after = [...cards.keys()].sort().find((k) => k > t.id);
      grid.insertBefore(c.root, after ? cards.get(after).root : null);
    }
    c.root.dataset.state = t.status;
    c.state.replaceChildren(badge(t.status, t.transition));
    c.name.textContent = t.name || "";
    c.processed.textContent = num(t.processed_count, 0);
    c.errors.textContent = num(t.error_count, 0);
    c.errors.classList.toggle("bad", t.error_count > 0);
    c.rate.textContent = num(t.rows_per_second);
    c.units.textContent = `${t.compute_pool_size}/${t.max_pool_size}` + (t.active_workers ? ` (${t.active_workers} busy)` : "");
    c.load.textContent = `${Math.round(t.load_rate * 100)}% (scale at ${Math.round(t.scale_threshold * 100)}%)`;
    c.bar.style.width = Math.min(100, t.load_rate * 100) + "%";
    c.bar.classList.toggle("hot", t.load_rate >= t.scale_threshold);
    c.root.title = t.reason || "";
    setAllowed(c.buttons, t.allowed_actions);
  }
  function refreshCount() {
    count.textContent = `${cards.size} task${cards.size === 1 ? "" : "s"}`;
    empty.hidden = cards.size > 0;
  }
  refreshCount();
  api.subscribe("subscribe_stats", {}, (ev) => {
    for (const t of ev.data.tasks) { update(t); flow.status(t.id, t.status); }
    for (const id of ev.data.removed) { const c = cards.get(id); if (c) { c.root.remove(); cards.delete(id); } }
    refreshCount();
    flow.seen(ev.data.graph);
  });
}

function newTaskPanel(api) {
  const text = el("textarea", {id: "task-toml", spellcheck: "false", rows: 26, "aria-label": "task configuration (TOML)"});
  text.value = TEMPLATE;
  const review = el("div", {class: "review", id: "task-review", hidden: true});
  const msg = el("p", {class: "msg", role: "status"});
  const root = el("section", {class: "newtask panel", id: "new-task-panel", hidden: true},
    el("h2", {text: "New task"}),
    el("p", {class: "muted", text: "A task in TOML, as in a tasks file: its keys, or one [[task]] table. " +
      "It is created ready; start it from its card."}),
    el("div", {class: "editor"}, text, review),
    el("div", {class: "row"},
       el("button", {type: "button", class: "primary", id: "create-task", onclick: create}, "Create"),
       el("button", {type: "button", onclick: () => toggle(false)}, "Cancel"), msg));
  function toggle(show) {
    root.hidden = show === undefined ? !root.hidden : !show;
    if (!root.hidden) text.focus();
  }
  async function create() {
    const source = text.value;
    const answer = await api.call("create_task", {toml: source});
    if (answer.status === "ok") {
      flash(msg, `task ${answer.data.task_id} created`, true);
      review.hidden = true;
      toggle(false);
      return;
    }
    flash(msg, answer.code === "invalid_config" ? "the task was not created: see the problems beside the text"
                                                : `${answer.code}: ${answer.message}`, false);
    showIssues(source, answer.issues || [{field: "", message: answer.message}]);
  }
  // The text again, with each problem right under the line of the field it names.
  function showIssues(source, issues) {
    const at = new Map();
    for (const issue of issues) {
      const line = issue.line || 0;
      if (!at.has(line)) at.set(line, []);
      at.get(line).push(issue);
    }
    const lines = source.split("\n");
    const out = [el("h3", {text: `${issues.length} problem${issues.length === 1 ? "" : "s"}`})];
    const note = (issue) => el("div", {class: "issue", dataset: {field: issue.field || "", line: issue.line || ""}},
      el("b", {text: issue.field || "task"}), ": " + issue.message);
    for (const issue of at.get(0) || []) out.push(note(issue));
    lines.forEach((line, i) => {
      const n = i + 1;
      const here = at.get(n);
      out.push(el("div", {class: "line" + (here ? " flagged" : ""), dataset: {line: n}},
                  el("span", {class: "ln", text: String(n)}), el("code", {text: line || " "})));
      for (const issue of here || []) out.push(note(issue));
    });
    review.replaceChildren(...out);
    review.hidden = false;
    const first = review.querySelector(".issue");
    if (first) first.scrollIntoView({block: "nearest"});
  }
  return {root, toggle};
}

// -- one task ------------------------------------------------------------------------------------------------------
function taskPage(api, app, id) {
  const msg = el("p", {class: "msg", role: "status", id: "task-msg"});
  const state = el("span", {id: "task-state"});
  const name = el("p", {class: "name"});
  const buttons = actionButtons(api, id, msg, (a, answer) => {
    if (a === "delete" && answer.status === "ok") location.assign("/");
  });
  const figures = {};
  const figureList = el("dl", {class: "figures big"},
    ["processed", "errors", "rows/s", "load", "units", "queue", "p50", "p99"].map((k) => {
      figures[k] = el("dd", {class: "f-" + k.replace("/", "")});
      return el("div", {}, el("dt", {text: k === "p50" || k === "p99" ? `latency ${k}` : k}), figures[k]);
    }));
  const charts = {
    rate: new Chart("Rows per second", [{key: "rate", label: "rows/s", color: "#1565c0"}], {name: "rate"}),
    load: new Chart("Load rate", [{key: "load", label: "load", color: "#7b1fa2"},
                                  {key: "threshold", label: "scale threshold", color: "#c62828", dashed: true}],
                    {name: "load", max: 1}),
    latency: new Chart("Latency (ms)", [{key: "p50", label: "p50", color: "#00838f"},
                                        {key: "p99", label: "p99", color: "#ad1457"}], {name: "latency"}),
  };
  const units = el("tbody");
  const unitTable = el("table", {class: "units", id: "units"},
    el("thead", {}, el("tr", {}, ["unit", "worker", "status", "keys", "rows/s", "busy", "in flight", "rows"]
                                .map((h) => el("th", {text: h})))), units);

  // push form
  const format = el("select", {id: "push-format", "aria-label": "format"},
                    el("option", {value: "csv", text: "CSV (header first)"}),
                    el("option", {value: "json", text: "JSON lines"}));
  const pushText = el("textarea", {id: "push-text", rows: 8, spellcheck: "false",
                                   placeholder: "stock_code,date,close\n000001,2024-01-02,15.32"});
  const pushMsg = el("p", {class: "msg", id: "push-msg", role: "status"});
  const pushErrors = el("ul", {class: "push-errors", id: "push-errors"});
  async function push() {
    let rows;
    try { rows = parseRows(pushText.value, format.value); } catch (e) { flash(pushMsg, e.message, false); return; }
    if (!rows.length) { flash(pushMsg, "no rows to push", false); return; }
    pushErrors.replaceChildren();
    let accepted = 0, errors = [];
    for (let i = 0; i < rows.length; i += 1000) {
      const answer = await api.call("push_data", {task_id: id, data: rows.slice(i, i + 1000)});
      if (answer.status !== "ok") { flash(pushMsg, `${answer.code}: ${answer.message}`, false); return; }
      accepted += answer.data.accepted_count;
      errors = errors.concat(answer.data.errors.map((e) => ({...e, line: (e.line || 0) + i})));
    }
    flash(pushMsg, `${accepted} row${accepted === 1 ? "" : "s"} accepted` +
          (errors.length ? `, ${errors.length} refused` : ""), errors.length === 0);
    pushErrors.replaceChildren(...errors.slice(0, 20).map((e) =>
      el("li", {text: `row ${e.line}${e.column ? ", " + e.column : ""}: ${e.message}`})));
  }

  // output window
  const out = el("pre", {class: "output", id: "output", "aria-live": "off"});
  const outInfo = el("span", {class: "muted", id: "output-info"});
  const filterBox = el("input", {id: "output-filter", placeholder: "stock_code=000001", "aria-label": "key filter"});
  const filterMsg = el("span", {class: "msg"});
  let outSub = null, outCount = 0, outHeader = null, columnTypes = {}, outDropped = 0;
  const MAX_LINES = 500, MAX_RATE = 50;  // rows kept on screen; rows a second the server sends
  let pending = [], drawing = false;
  // New rows are drawn together, at most four times a second, whatever their rate.
  function drawOutput() {
    drawing = false;
    const rows = pending.slice(-MAX_LINES);
    pending = [];
    out.append(...rows.map((row) => el("div", {class: "out-row", text: outHeader.map((c) => row[c] === null ? "" : row[c]).join(",")})));
    while (out.childElementCount > MAX_LINES + 1) out.children[1].remove();
    outInfo.textContent = `${num(outCount, 0)} row${outCount === 1 ? "" : "s"}` +
      (outDropped ? ` (${num(outDropped, 0)} not shown: more than ${MAX_RATE} a second)` : "");
    out.scrollTop = out.scrollHeight;
  }
  async function subscribeOutput() {
    let filt;
    try { filt = parseFilter(filterBox.value, columnTypes); } catch (e) { flash(filterMsg, e.message, false); return; }
    if (outSub) await api.unsubscribe(outSub);
    out.replaceChildren();
    outCount = 0;
    outDropped = 0;
    outHeader = null;
    pending = [];
    const answer = await api.subscribe("subscribe_output", {task_id: id, filter: filt, max_rate: MAX_RATE}, (ev) => {
      const row = ev.data;
      if (outHeader === null) {
        outHeader = Object.keys(row);
        out.append(el("div", {class: "out-hdr", text: outHeader.join(",")}));
      }
      pending.push(row);
      if (pending.length > 2 * MAX_LINES) pending.splice(0, pending.length - MAX_LINES);  // a hidden tab draws nothing
      outCount++;
      if (ev.dropped) outDropped = ev.dropped;
      if (!drawing) { drawing = true; setTimeout(() => requestAnimationFrame(drawOutput), 250); }
    });
    if (answer.status === "ok") {
      outSub = answer.data.subscription;
      flash(filterMsg, Object.keys(filt).length ? "filtered" : "every row", true);
      outInfo.textContent = "waiting for rows…";
    } else flash(filterMsg, `${answer.code}: ${answer.message}`, false);
  }

  const config = el("pre", {class: "config", id: "config"});
  const errorRows = el("tbody");
  const errorTable = el("table", {class: "errors", id: "errors"},
    el("thead", {}, el("tr", {}, ["time", "stage", "where", "message"].map((h) => el("th", {text: h})))), errorRows);
  let errorsShown = -1;
  async function refreshErrors(count) {
    if (count === errorsShown) return;
    errorsShown = count;
    const answer = await api.call("get_errors", {task_id: id, limit: 50});
    if (answer.status !== "ok") return;
    errorRows.replaceChildren(...answer.data.errors.slice().reverse().map((e) => el("tr", {},
      el("td", {text: e.time ? new Date(e.time * 1000).toLocaleTimeString() : ""}),
      el("td", {text: e.stage + (e.kind ? " · " + e.kind : "")}),
      el("td", {text: [e.line ? "line " + e.line : "", e.column, e.key ? "key " + e.key : ""].filter(Boolean).join(", ")}),
      el("td", {text: e.message}))));
    if (!answer.data.errors.length) errorRows.append(el("tr", {}, el("td", {colspan: 4, class: "muted", text: "no errors"})));
  }

  app.replaceChildren(
    el("div", {class: "page-head"}, el("a", {href: "/", class: "back", text: "← tasks"}),
       el("h1", {id: "task-id", text: id}), state),
    name, buttons, msg,
    el("section", {class: "panel"}, el("h2", {text: "Live"}), figureList,
       el("div", {class: "charts"}, charts.rate.root, charts.load.root, charts.latency.root)),
    el("section", {class: "grid2"},
       el("div", {class: "panel"}, el("h2", {text: "Push data"}),
          el("div", {class: "row"}, format,
             el("button", {type: "button", class: "primary", id: "push", onclick: push}, "Push")),
          pushText, pushMsg, pushErrors),
       el("div", {class: "panel"}, el("h2", {text: "Output"}),
          el("div", {class: "row"}, filterBox,
             el("button", {type: "button", id: "apply-filter", onclick: subscribeOutput}, "Apply filter"),
             filterMsg, outInfo),
          out)),
    el("section", {class: "grid2"},
       el("div", {class: "panel"}, el("h2", {text: "Compute units"}), unitTable),
       el("div", {class: "panel"}, el("h2", {text: "Configuration"}), config)),
    el("section", {class: "panel"}, el("h2", {text: "Errors"}), errorTable));

  api.call("get_task", {task_id: id}).then((answer) => {
    if (answer.status !== "ok") {
      app.replaceChildren(el("div", {class: "page-head"}, el("a", {href: "/", class: "back", text: "← tasks"})),
                          el("p", {class: "msg refused", text: `${answer.code}: ${answer.message}`}));
      return;
    }
    name.textContent = answer.data.name || "";
    config.textContent = toToml(answer.data.config);
    for (const c of (answer.data.config.schema || {}).columns || []) columnTypes[c.name] = c.type;
    document.title = `${id} · dporch`;
  });
  api.subscribe("subscribe_stats", {task_id: id}, (ev) => {
    if (ev.data.removed.includes(id)) {
      state.replaceChildren(badge("deleted"));
      flash(msg, "this task was deleted", false);
      return;
    }
    const t = ev.data.tasks[0];
    if (!t) return;
    state.replaceChildren(badge(t.status, t.transition));
    if (t.reason) state.append(el("span", {class: "muted reason", text: t.reason}));
    setAllowed(buttons, t.allowed_actions);
    figures.processed.textContent = num(t.processed_count, 0);
    figures.errors.textContent = num(t.error_count, 0);
    figures["rows/s"].textContent = num(t.rows_per_second);
    figures.load.textContent = `${Math.round(t.load_rate * 100)}%`;
    figures.units.textContent = `${t.compute_pool_size}/${t.max_pool_size}`;
    figures.queue.textContent = num(t.queue_length, 0);
    figures.p50.textContent = t.latency_ms_p50 === null ? "–" : num(t.latency_ms_p50) + " ms";
    figures.p99.textContent = t.latency_ms_p99 === null ? "–" : num(t.latency_ms_p99) + " ms";
    charts.rate.push(ev.data.time, {rate: t.rows_per_second});
    charts.load.push(ev.data.time, {load: t.load_rate, threshold: t.scale_threshold});
    charts.latency.push(ev.data.time, {p50: t.latency_ms_p50, p99: t.latency_ms_p99});
    units.replaceChildren(...t.units.map((u) => el("tr", {dataset: {unit: u.id}},
      el("td", {text: u.id}), el("td", {text: u.worker}), el("td", {text: u.status}),
      el("td", {class: "n", text: num(u.keys, 0)}), el("td", {class: "n", text: num(u.rows_per_second)}),
      el("td", {class: "n", text: Math.round(u.busy_fraction * 100) + "%"}),
      el("td", {class: "n", text: String(u.in_flight)}), el("td", {class: "n", text: num(u.rows, 0)}))));
    if (!t.units.length) units.append(el("tr", {}, el("td", {colspan: 8, class: "muted", text: "no unit: the task holds none now"})));
    refreshErrors(t.error_count);
  });
  subscribeOutput();
}

// -- start ------------------------------------------------------------------------------------------------------------
function boot() {
  const conn = document.getElementById("conn");
  const api = new API((s) => {
    conn.textContent = s === "live" ? "live" : "disconnected: reconnecting…";
    conn.className = "conn " + s;
  });
  window.dporchApi = api;
  api.call("server_info").then((answer) => {
    if (answer.status !== "ok") return;
    const info = answer.data;
    document.getElementById("server").textContent = `v${info.version} · API ${info.api} · Dask ${info.scheduler || "–"}`;
    if (info.dashboard) {
      const link = document.getElementById("nav-dashboard");
      link.href = info.dashboard.replace(/\/status$/, "") + "/dporch";
      link.hidden = false;
    }
  });
  const app = document.getElementById("app");
  const m = location.pathname.match(/^\/tasks\/(.+)$/);
  if (m) taskPage(api, app, decodeURIComponent(m[1]));
  else listPage(api, app);
}
document.addEventListener("DOMContentLoaded", boot);
