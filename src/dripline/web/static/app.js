// The live page of a dripline mesh. No framework, no build step, nothing from the internet:
// one EventSource for the state, fetch() for reads, sets and commands. Everything that came from
// the mesh is put into the page with textContent, never as HTML.
"use strict";

const BUILTIN_COMMANDS = new Set(["ping", "lock", "unlock", "set_condition", "describe"]);
const MAX_ALERT_ROWS = 200;
const STALE_S = 300;

const state = {
  services: new Map(),     // name -> service record from the server
  endpoints: new Map(),    // name -> endpoint record
  alerts: [],
  lateS: 120, goneS: 300,
  user: null, csrf: null, loginsConfigured: false,
  dirtyServices: new Set(), dirtyEndpoints: new Set(), fullRender: true, alertsDirty: true,
  received: 0, rateWindow: [],
};
let showValues = false;   // sensor values in the alert stream too
let filterValue = "";
const rows = new Map();
const cards = new Map();

function $(sel, root = document) { return root.querySelector(sel); }
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// ------------------------------------------------------------------ formatting
function shown(payload) {
  if (payload === null || payload === undefined) return "—";
  if (typeof payload === "object" && !Array.isArray(payload)) {
    if ("value_cal" in payload) return fmt(payload.value_cal);
    if ("value_raw" in payload) return fmt(payload.value_raw);
  }
  return fmt(payload);
}
function fmt(v) {
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return (a !== 0 && (a < 1e-3 || a >= 1e6)) ? v.toExponential(4) : String(+v.toPrecision(6));
  }
  if (typeof v === "string") return v;
  const s = JSON.stringify(v);
  return s.length > 120 ? s.slice(0, 117) + "…" : s;
}
function age(ts) {
  if (!ts) return "";
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s < 1.5) return "now";
  if (s < 90) return Math.round(s) + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}
function clock(ts) {
  const d = ts ? new Date(ts * 1000) : new Date();
  return d.toTimeString().slice(0, 8);
}

// ------------------------------------------------------------------ state updates
function applySnapshot(snap) {
  state.services.clear(); state.endpoints.clear();
  state.lateS = snap.late_s; state.goneS = snap.gone_s;
  for (const s of snap.services) state.services.set(s.name, s);
  for (const e of snap.endpoints) state.endpoints.set(e.name, e);
  state.alerts = snap.alerts.slice(-MAX_ALERT_ROWS);
  for (const c of cards.values()) c.card.remove();
  cards.clear(); rows.clear();
  state.fullRender = true; state.alertsDirty = true;
  if (snap.dropped) notice(`This page fell behind and skipped ${snap.dropped} updates; it shows the current state again.`, "warn");
  schedule();
}

function applyEvent(ev) {
  switch (ev.t) {
    case "v": {
      let e = state.endpoints.get(ev.n);
      if (!e) { e = {name: ev.n, service: ev.s, history: [], describe: null}; state.endpoints.set(ev.n, e); }
      e.value = ev.p; e.value_at = ev.at; e.value_source = ev.src;
      if (ev.s && !e.service) e.service = ev.s;
      if (ev.x !== null && ev.x !== undefined) {
        e.history.push([ev.at, ev.x]);
        if (e.history.length > 300) e.history.splice(0, e.history.length - 300);
      }
      state.dirtyEndpoints.add(ev.n);
      if (ev.src === "alert" && showValues) {
        pushAlert({rk: "sensor_value." + ev.n, p: ev.p, at: ev.at, from: ev.s});
      }
      break;
    }
    case "ep": {
      const old = state.endpoints.get(ev.e.name);
      if (old) { ev.e.history = old.history.length > ev.e.history.length ? old.history : ev.e.history;
                 if (old.value_at && (!ev.e.value_at || old.value_at > ev.e.value_at)) {
                   ev.e.value = old.value; ev.e.value_at = old.value_at; ev.e.value_source = old.value_source; } }
      state.endpoints.set(ev.e.name, ev.e);
      const r = rows.get(ev.e.name);
      if (r) { if (onScreen) onScreen.unobserve(r.row); r.row.remove(); rows.delete(ev.e.name); }
      state.dirtyEndpoints.add(ev.e.name);
      break;
    }
    case "svc":
      state.services.set(ev.s.name, ev.s);
      state.dirtyServices.add(ev.s.name);
      for (const n of ev.s.endpoints) state.dirtyEndpoints.add(n);
      break;
    case "hb": {
      const s = state.services.get(ev.s);
      if (s) { s.last_heartbeat = ev.at; s.state = ev.state; s.heartbeats = (s.heartbeats || 0) + 1; state.dirtyServices.add(ev.s); }
      break;
    }
    case "alert":
      pushAlert(ev);
      break;
  }
}

function pushAlert(a) {
  state.alerts.push(a);
  if (state.alerts.length > MAX_ALERT_ROWS) state.alerts.splice(0, state.alerts.length - MAX_ALERT_ROWS);
  state.alertsDirty = true;
}

// ------------------------------------------------------------------ rendering
// The page is redrawn at most every RENDER_MS: values are read by people, and a mesh of fast
// sensors would otherwise keep the browser busy laying out the table 60 times a second.
const RENDER_MS = 100;
let scheduled = false, lastRender = 0;
function schedule() {
  if (scheduled) return;
  scheduled = true;
  const wait = Math.max(0, RENDER_MS - (performance.now() - lastRender));
  setTimeout(() => requestAnimationFrame(() => { scheduled = false; lastRender = performance.now(); render(); }), wait);
}

function serviceOf(e) { return e.service && state.services.has(e.service) ? e.service : ""; }

function ensureCard(name) {
  let c = cards.get(name);
  if (c) return c;
  const card = $("#service-template").content.firstElementChild.cloneNode(true);
  card.dataset.service = name;
  c = {card, tbody: $("tbody", card)};
  cards.set(name, c);
  const list = $("#services");
  // services in name order, the card of endpoints without a known service last
  const names = [...cards.keys()].filter(n => n !== "").sort();
  const idx = names.indexOf(name);
  const next = name === "" ? null : (idx + 1 < names.length ? cards.get(names[idx + 1]).card : (cards.get("") || {}).card || null);
  list.insertBefore(card, next || null);
  return c;
}

function renderService(name) {
  const c = ensureCard(name);
  const s = state.services.get(name);
  const card = c.card;
  if (!s) {
    $(".name", card).textContent = "endpoints of unknown services";
    $(".state", card).textContent = "";
    $(".state", card).className = "state";
    $(".doc", card).textContent = "seen in sensor_value alerts only";
    return;
  }
  $(".name", card).textContent = s.name;
  const st = $(".state", card);
  st.className = "state " + s.state;
  st.textContent = {alive: "alive", late: "late", gone: "gone", unknown: "no heartbeat"}[s.state] || s.state;
  const d = s.describe || {};
  $(".class", card).textContent = d["class"] ? d["class"] + (d.version ? " " + d.version : "") : "";
  $(".doc", card).textContent = d.description ||
    (s.describe_error ? "cannot describe itself (" + s.describe_error + "); endpoints shown as their alerts arrive" : "");
  card.classList.toggle("gone", s.state === "gone");
  card.dataset.state = s.state;
  updateHeartbeatText(card, s);
  applyCardFilter(card);
}

function updateHeartbeatText(card, s) {
  const text = s.last_heartbeat ? "heartbeat " + age(s.last_heartbeat)
    : s.last_ping ? "answered ping " + age(s.last_ping) : "";
  const box = $(".hb", card);
  if (box.textContent !== text) box.textContent = text;
}

function ensureRow(e) {
  let r = rows.get(e.name);
  const owner = serviceOf(e);
  if (r && r.owner === owner) return r;
  if (r) {
    if (onScreen) onScreen.unobserve(r.row);
    r.row.remove();
    const old = cards.get(r.owner);
    if (old && old.tbody.children.length === 0 && r.owner === "") { old.card.remove(); cards.delete(""); }
  }
  const row = $("#endpoint-template").content.firstElementChild.cloneNode(true);
  row.dataset.endpoint = e.name;
  r = {row, owner, value: $(".value", row), age: $(".age", row), plot: $(".plot", row), lastValueAt: null};
  rows.set(e.name, r);
  r.value.addEventListener("mouseenter", () => {
    r.value.title = r.payload !== null && r.payload !== undefined ? JSON.stringify(r.payload) : "";
  });
  $(".ep-name", row).textContent = e.name;
  const d = e.describe || {};
  $(".ep-desc", row).textContent = d.description || "";
  $(".ep-name", row).title = (d["class"] || "") + (d.doc ? "\n" + d.doc.split("\n")[0] : "");
  $(".units", row).textContent = d.units || "";
  const ops = d.operations || {get: true, set: !e.describe, cmd: false};
  $("button.read", row).addEventListener("click", () => readNow(e.name));
  const setForm = $("form.set", row);
  if (ops.set) {
    setForm.hidden = false;
    const lim = d.limits;
    if (lim) {
      const has = x => x !== null && x !== undefined;
      const input = $("input", setForm);
      input.placeholder = lim.allowed ? lim.allowed.map(fmt).join(" | ")
        : (has(lim.min) ? fmt(lim.min) : "") + " … " + (has(lim.max) ? fmt(lim.max) : "");
      input.title = "allowed: " + input.placeholder;
    }
    setForm.addEventListener("submit", ev => { ev.preventDefault(); setValue(e.name, $("input", setForm)); });
  }
  const commands = (d.commands || []).filter(c => !BUILTIN_COMMANDS.has(c.name));
  const cmdForm = $("form.cmd", row);
  if (commands.length) {
    cmdForm.hidden = false;
    const sel = $("select", cmdForm);
    for (const c of commands) {
      const o = el("option", "", c.name);
      o.value = c.name;
      o.title = (c.doc || "") + (c.parameters && c.parameters.length ? "\nparameters: " + c.parameters.map(p => p.name + (p.required ? "" : "?")).join(", ") : "");
      sel.appendChild(o);
    }
    cmdForm.addEventListener("submit", ev => { ev.preventDefault(); runCommand(e.name, sel.value, $("input", cmdForm)); });
  }
  const tbody = ensureCard(owner).tbody;
  const names = [...tbody.children].map(x => x.dataset.endpoint);
  let before = null;
  for (let i = 0; i < names.length; i++) if (names[i] > e.name) { before = tbody.children[i]; break; }
  tbody.insertBefore(row, before);
  if (onScreen) onScreen.observe(row);
  return r;
}

// Rows out of sight are not redrawn (a mesh of hundreds of fast sensors would otherwise keep the
// browser busy); they are brought up to date the moment they scroll into view.
const onScreen = "IntersectionObserver" in window ? new IntersectionObserver(entries => {
  for (const entry of entries) {
    const r = rows.get(entry.target.dataset.endpoint);
    if (!r) continue;
    r.visible = entry.isIntersecting;
    if (r.visible && r.behind) { r.behind = false; state.dirtyEndpoints.add(entry.target.dataset.endpoint); schedule(); }
  }
}) : null;

function renderEndpoint(name) {
  const e = state.endpoints.get(name);
  if (!e) return;
  const r = ensureRow(e);
  if (onScreen && r.visible === false) { r.behind = true; return; }
  const text = shown(e.value);
  if (r.value.textContent !== text) {
    r.value.textContent = text;
    // a short highlight on change (Web Animations: no forced layout, however fast values come)
    // only a value that had been still for a while is highlighted: a fast sensor would keep the
    // browser repainting, and a blinking number is no news to the person watching
    if (r.lastValueAt !== null && r.value.animate && e.value_at - r.lastValueAt > 2) {
      r.value.animate([{backgroundColor: "rgba(88,166,255,.45)"}, {backgroundColor: "rgba(88,166,255,0)"}],
                      {duration: 1200, easing: "ease-out"});
    }
  }
  r.lastValueAt = e.value_at;
  r.payload = e.value;
  updateAge(r, e);
  // plots are redrawn at most twice a second per endpoint: a fast sensor must not eat the page
  const now = performance.now();
  if (!r.plotAt || now - r.plotAt > 500) { r.plotAt = now; drawPlot(r.plot, e.history); }
  else if (!r.plotPending) {
    r.plotPending = true;
    setTimeout(() => { r.plotPending = false; state.dirtyEndpoints.add(name); schedule(); }, 520);
  }
  if (r.filteredFor !== filterText()) { r.filteredFor = filterText(); applyFilterTo(r.row); }
}

const SVG = "http://www.w3.org/2000/svg";
function drawPlot(td, history) {
  if (!history || history.length < 2) { if (td.firstChild) td.textContent = ""; return; }
  let svg = td.firstChild;
  if (!svg) {
    svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 120 28"); svg.setAttribute("class", "spark");
    const p = document.createElementNS(SVG, "polyline");
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("r", "2");
    svg.appendChild(p); svg.appendChild(dot);
    const t = document.createElementNS(SVG, "title");
    svg.appendChild(t);
    td.appendChild(svg);
  }
  const pts = history.slice(-120);
  let lo = Infinity, hi = -Infinity;
  for (const [, v] of pts) { if (v < lo) lo = v; if (v > hi) hi = v; }
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
  const span = (t1 - t0) || 1, range = (hi - lo) || 1;
  const coords = pts.map(([t, v]) => [((t - t0) / span) * 116 + 2, 26 - ((v - lo) / range) * 24]);
  svg.firstChild.setAttribute("points", coords.map(c => c[0].toFixed(1) + "," + c[1].toFixed(1)).join(" "));
  const last = coords[coords.length - 1];
  svg.childNodes[1].setAttribute("cx", last[0].toFixed(1)); svg.childNodes[1].setAttribute("cy", last[1].toFixed(1));
  svg.childNodes[2].textContent = `${pts.length} values over ${Math.round(span)} s, min ${fmt(lo)}, max ${fmt(hi)}`;
}

function renderAlerts() {
  const list = $("#alerts");
  list.textContent = "";
  for (let i = state.alerts.length - 1; i >= 0; i--) {
    const a = state.alerts[i];
    const li = el("li", "alert");
    const rk = String(a.rk || "");
    if (rk.startsWith("status_message")) {
      li.classList.add("status");
      const sev = rk.split(".").pop();
      li.classList.add("sev-" + sev.replace(/[^a-z]/g, ""));
    }
    li.appendChild(el("span", "time", clock(a.at)));
    li.appendChild(el("span", "rk", rk));
    if (a.from && a.from !== "unknown") li.appendChild(el("span", "from muted", a.from));
    li.appendChild(el("div", "payload", typeof a.p === "string" ? a.p : JSON.stringify(a.p)));
    list.appendChild(li);
  }
}

let summaryKey = "";
function renderSummary() {
  const counts = {alive: 0, late: 0, gone: 0, unknown: 0};
  for (const s of state.services.values()) counts[s.state] = (counts[s.state] || 0) + 1;
  const key = JSON.stringify(counts) + state.endpoints.size;
  if (key === summaryKey) return;
  summaryKey = key;
  const box = $("#summary");
  box.textContent = "";
  for (const [k, label] of [["alive", "alive"], ["late", "late"], ["gone", "gone"], ["unknown", "no heartbeat"]]) {
    if (!counts[k] && k !== "alive") continue;
    const b = el("span", "count " + k, `${counts[k]} ${label}`);
    box.appendChild(b);
  }
  box.appendChild(el("span", "count muted", `${state.endpoints.size} endpoints`));
  $("#empty").hidden = state.services.size + state.endpoints.size > 0;
}

const perf = {renders: 0, renderMs: 0};   // how much of the page's time drawing takes (bench)
function render() {
  const t0 = performance.now();
  perf.renders++;
  try { draw(); } finally { perf.renderMs += performance.now() - t0; }
}

function draw() {
  if (state.fullRender) {
    state.fullRender = false;
    for (const n of state.services.keys()) state.dirtyServices.add(n);
    for (const n of state.endpoints.keys()) state.dirtyEndpoints.add(n);
  }
  for (const n of state.dirtyServices) renderService(n);
  for (const n of state.dirtyEndpoints) renderEndpoint(n);
  if (state.dirtyServices.size || state.dirtyEndpoints.size) renderSummary();
  state.dirtyServices.clear(); state.dirtyEndpoints.clear();
  if (state.alertsDirty) { state.alertsDirty = false; renderAlerts(); }
}

const SOURCE_TEXT = {alert: "from its sensor_value alert", get: "read by a get", set: "after a set"};
function updateAge(r, e) {
  const text = e.value_at ? age(e.value_at) : "";
  if (r.age.textContent !== text) r.age.textContent = text;
  const source = SOURCE_TEXT[e.value_source] || "";
  if (r.age.title !== source) r.age.title = source;
  const stale = !!e.value_at && Date.now() / 1000 - e.value_at > STALE_S;
  if (r.row.classList.contains("stale") !== stale) r.row.classList.toggle("stale", stale);
}

// ages and heartbeat texts move on by themselves
setInterval(() => {
  for (const [name, c] of cards) { const s = state.services.get(name); if (s) updateHeartbeatText(c.card, s); }
  for (const [name, r] of rows) { const e = state.endpoints.get(name); if (e) updateAge(r, e); }
}, 1000);

// ------------------------------------------------------------------ filter
function filterText() { return filterValue; }
function applyFilterTo(row) {
  const q = filterText();
  const card = row.closest(".service");
  const service = card ? (card.dataset.service || "").toLowerCase() : "";
  row.hidden = q !== "" && !row.dataset.endpoint.toLowerCase().includes(q) && !service.includes(q);
  if (card) applyCardFilter(card);
}
function applyCardFilter(card) {
  const q = filterText();
  const service = (card.dataset.service || "").toLowerCase();
  const rowsShown = [...$("tbody", card).children].some(r => !r.hidden);
  card.hidden = q !== "" && !service.includes(q) && !rowsShown;
}
function applyFilter() {
  for (const r of rows.values()) { r.filteredFor = filterText(); applyFilterTo(r.row); }
  for (const c of cards.values()) applyCardFilter(c.card);
}

// ------------------------------------------------------------------ talking to the gateway
function notice(text, kind = "ok") {
  const n = $("#notice");
  n.textContent = text;
  n.className = "notice " + kind;
  n.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { n.hidden = true; }, kind === "ok" ? 4000 : 10000);
}

function dlPath(name) { return "/dl/" + name.split(".").map(encodeURIComponent).join("/"); }

async function call(method, name, body, specifier) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (specifier) headers["specifier"] = specifier;
  if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const res = await fetch(dlPath(name), {method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                         credentials: "same-origin"});
  let payload = null;
  try { payload = await res.json(); } catch (_) { /* empty body */ }
  return {res, payload, code: res.headers.get("dl_return_code"), message: res.headers.get("dl_return_message") || ""};
}

function describeFailure(r) {
  if (r.code !== null) return `${r.code}${r.message ? ": " + r.message : ""}`;
  return (r.payload && r.payload.error) || `HTTP ${r.res.status}`;
}

async function readNow(name) {
  try {
    const r = await call("GET", name);
    if (r.code !== "0") notice(`get ${name} failed: ${describeFailure(r)}`, "error");
  } catch (err) { notice(`get ${name}: ${err}`, "error"); }
}

function parseValue(text) {
  const t = text.trim();
  try { return JSON.parse(t); } catch (_) { return t; }
}

async function needLogin() {
  if (state.user) return true;
  openLogin();
  return false;
}

async function setValue(name, input) {
  if (!await needLogin()) return;
  if (input.value.trim() === "") { input.focus(); return; }
  const value = parseValue(input.value);
  try {
    const r = await call("PUT", name, {values: [value]});
    if (r.res.status === 401) { state.user = null; updateWho(); openLogin(); return; }
    if (r.code === "0") { notice(`${name} set to ${fmt(value)}`); input.value = ""; }
    else notice(`set ${name} refused: ${describeFailure(r)}`, "error");
  } catch (err) { notice(`set ${name}: ${err}`, "error"); }
}

async function runCommand(name, command, input) {
  if (!await needLogin()) return;
  let body = {values: []};
  const t = input.value.trim();
  if (t) {
    const v = parseValue(t);
    body = Array.isArray(v) ? {values: v} : (v && typeof v === "object") ? v : {values: [v]};
  }
  try {
    const r = await call("POST", name, body, command);
    if (r.res.status === 401) { state.user = null; updateWho(); openLogin(); return; }
    if (r.code === "0") notice(`${name} ${command}: ${r.payload === null ? "done" : fmt(r.payload)}`);
    else notice(`${name} ${command} refused: ${describeFailure(r)}`, "error");
  } catch (err) { notice(`${name} ${command}: ${err}`, "error"); }
}

// ------------------------------------------------------------------ login
function updateWho() {
  $("#user-name").textContent = state.user ? state.user : "";
  $("#login-button").hidden = !!state.user;
  $("#logout-button").hidden = !state.user;
}
function openLogin() {
  $("#login-error").hidden = true;
  if (!state.loginsConfigured) {
    $("#login-error").textContent = "No logins are configured on this gateway (see dl-http-server --help).";
    $("#login-error").hidden = false;
  }
  $("#login-dialog").showModal();
  $("#login-user").focus();
}
async function doLogin(ev) {
  ev.preventDefault();
  const res = await fetch("/login", {method: "POST", headers: {"Content-Type": "application/json"},
    credentials: "same-origin",
    body: JSON.stringify({username: $("#login-user").value, password: $("#login-password").value})});
  $("#login-password").value = "";
  let data = {};
  try { data = await res.json(); } catch (_) { /* nothing */ }
  if (res.ok) {
    state.user = data.user; state.csrf = data.csrf;
    $("#login-dialog").close();
    updateWho();
    notice(`logged in as ${data.user}`);
  } else {
    $("#login-error").textContent = data.error || `login failed (HTTP ${res.status})`;
    $("#login-error").hidden = false;
  }
}
async function doLogout() {
  await fetch("/logout", {method: "POST", headers: {"X-CSRF-Token": state.csrf || ""}, credentials: "same-origin"});
  state.user = null; state.csrf = null;
  updateWho();
}
async function loadSession() {
  try {
    const res = await fetch("/session", {credentials: "same-origin"});
    const data = await res.json();
    state.user = data.user; state.csrf = data.csrf; state.loginsConfigured = data.logins_configured;
    document.title = "dripline mesh";
  } catch (_) { /* the stream's state shows the problem */ }
  updateWho();
}

// ------------------------------------------------------------------ the stream
function setLink(ok, text) {
  const l = $("#link-state");
  l.classList.toggle("ok", ok); l.classList.toggle("bad", !ok);
  $(".text", l).textContent = text;
}
function connect() {
  const es = new EventSource("/events");
  es.addEventListener("snapshot", m => { applySnapshot(JSON.parse(m.data)); setLink(true, "live"); });
  es.onmessage = m => {
    const batch = JSON.parse(m.data);
    for (const ev of batch) applyEvent(ev);
    state.received += batch.length;
    schedule();
  };
  es.onopen = () => setLink(true, "live");
  es.onerror = () => setLink(false, "reconnecting…");
  window.__dl = {state, es, perf};   // for tests, the benchmark and the curious
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-button").addEventListener("click", openLogin);
  $("#logout-button").addEventListener("click", doLogout);
  $("#login-cancel").addEventListener("click", () => $("#login-dialog").close());
  $("#login-form").addEventListener("submit", doLogin);
  $("#filter").addEventListener("input", () => { filterValue = $("#filter").value.trim().toLowerCase(); applyFilter(); });
  $("#show-values").addEventListener("change", ev => { showValues = ev.target.checked; state.alertsDirty = true; schedule(); });
  document.addEventListener("keydown", ev => {
    if (ev.key === "/" && document.activeElement.tagName !== "INPUT") { ev.preventDefault(); $("#filter").focus(); }
  });
  loadSession();
  connect();
});
