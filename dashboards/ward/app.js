// The Vigil ward page: sign in, work the alert queue (acknowledge, escalate,
// resolve with an outcome) and watch the ward's patients sorted by NEWS2
// acuity, all kept live over the websocket. Plain JavaScript, no build step;
// the full dashboard (issue: clinical dashboard) grows from here.
"use strict";

const CODES = ["spo2", "pulse", "resp_rate", "bp", "temp"];
// The NEWS2 row behind each reading column.
const SUB_PARAM = { spo2: "spo2", pulse: "pulse", resp_rate: "resp_rate", bp: "systolic", temp: "temp" };
const PARAM_NAMES = {
  resp_rate: "respiration rate", spo2: "SpO2", o2: "air or oxygen", systolic: "systolic BP",
  pulse: "pulse", acvpu: "consciousness (ACVPU)", temp: "temperature",
};
const RISK_RANK = { high: 4, medium: 3, "low-medium": 2, low: 1 };
const SEVERITY_RANK = RISK_RANK;
const STATUS_RANK = { open: 0, escalated: 1, acknowledged: 2 };
const LIVE = ["open", "acknowledged", "escalated"];
const OUTCOMES = [
  ["advice-given", "Advice given"], ["treatment-changed", "Treatment changed"],
  ["escalated-999", "999 called"], ["admitted", "Admitted"],
  ["false-alarm-device", "False alarm (device)"], ["reviewed-no-action", "Reviewed, no action"],
  ["other", "Other (add a note)"],
];
const REFRESH_MS = 5 * 60_000; // refetch so readings that age past the freshness window show as stale

const patients = new Map(); // id -> {summary, latest: {code: {value, at}}, news2}
const alerts = new Map(); // id -> {alert, last: {action, actor, at} | null}
let csrf = null;
let me = null;
let socket = null;
let syncing = null; // a promise while REST state is being (re)loaded
let queued = []; // websocket events that arrived while syncing
let resolving = null; // id of the alert whose resolve form is open
let refreshTimer = null;

const $ = (id) => document.getElementById(id);

async function api(path, opts = {}) {
  const write = opts.method && opts.method !== "GET";
  const res = await fetch(path, { credentials: "same-origin", ...opts,
    headers: { "content-type": "application/json", ...(write && csrf ? { "x-csrf-token": csrf } : {}),
      ...(opts.headers || {}) } });
  if (res.status === 401) { showSignIn(me ? SESSION_ENDED : ""); throw new Error("signed out"); }
  if (!res.ok) {
    let msg = `${res.status}`;
    try { msg = (await res.json()).error.message || msg; } catch { /* not our error shape */ }
    throw Object.assign(new Error(msg), { status: res.status });
  }
  return res.json();
}

function setConn(text, cls) { $("conn").textContent = text; $("conn").className = `conn ${cls || ""}`.trim(); }

const SESSION_ENDED = "Your session has ended (signed out elsewhere, timed out or revoked). Sign in again.";

/** Back to the sign-in form, forgetting everything shown; `why` says why. */
function showSignIn(why = "") {
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
  clearInterval(refreshTimer); refreshTimer = null;
  csrf = null; me = null; resolving = null;
  patients.clear(); alerts.clear(); alertEls.clear();
  $("alert-list").replaceChildren(); $("patients").querySelector("tbody").replaceChildren(); $("notice").textContent = "";
  $("signin").hidden = false; $("ward").hidden = true; $("signout").hidden = true;
  $("who").textContent = ""; setConn("", "");
  $("signin-error").textContent = why;
}

async function start() {
  try {
    me = await api("/api/v1/me");
  } catch {
    // Signed out (the form shows), or the server is unreachable: keep trying.
    if ($("signin").hidden) { setConn("offline: retrying… (data may be out of date)", "down"); setTimeout(start, 5000); }
    return;
  }
  if (me.csrf_token) csrf = me.csrf_token;
  $("who").textContent = `${me.username} (${me.role})`;
  $("signin").hidden = true; $("ward").hidden = false; $("signout").hidden = false;
  setConn("connecting…", "down");
  // Show what REST has now; the socket's open reloads once more, so nothing
  // between this snapshot and the socket's first event is missed.
  await sync().catch(() => {});
  if ($("ward").hidden) return;
  connect();
  clearInterval(refreshTimer);
  refreshTimer = setInterval(() => sync().catch(() => {}), REFRESH_MS);
}

/**
 * Reload patients and alerts from REST; websocket events arriving meanwhile
 * are queued and replayed after. A sync already running may have taken its
 * snapshot too early, so a new one always follows it.
 */
function sync() {
  if (syncing) return syncing.catch(() => {}).then(() => sync());
  syncing = (async () => {
    try {
      await Promise.all([loadPatients(), loadAlerts()]);
    } finally {
      syncing = null;
      const q = queued; queued = [];
      for (const ev of q) handle(ev);
    }
    renderPatients(); renderAlerts();
  })();
  return syncing;
}

async function loadPatients() {
  const list = await api("/api/v1/patients");
  patients.clear();
  for (const p of list) {
    const latest = {};
    for (const r of p.latest) latest[r.code] = { value: r.value, at: r.measured_at };
    patients.set(p.id, { summary: p, latest, news2: p.news2 || null });
  }
}

async function loadAlerts() {
  const lists = await Promise.all(LIVE.map((s) => api(`/api/v1/alerts?status=${s}`)));
  const prev = new Map(alerts);
  alerts.clear();
  for (const a of lists.flat()) alerts.set(a.id, { alert: a, last: prev.get(a.id)?.last || null });
  // Who last acted on an alert that a person has touched: from its audit trail.
  await Promise.all([...alerts.values()].filter((e) => !e.last && e.alert.status !== "open").map(async (e) => {
    try {
      const { events } = await api(`/api/v1/alerts/${e.alert.id}`);
      const ev = events.filter((x) => x.action !== "raised" && x.action !== "updated").pop();
      if (ev) e.last = { action: ev.action, actor: ev.actor, at: ev.at };
    } catch { /* shown without it */ }
  }));
}

// ---------------------------------------------------------------- formatting

function fmt(latest, code) {
  if (code === "bp") {
    const s = latest.systolic, d = latest.diastolic;
    return s && d ? `${s.value}/${d.value}` : "—";
  }
  const r = latest[code];
  return r ? String(r.value) : "—";
}

function age(ts) {
  if (!ts) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

function countdown(a) {
  if (a.status !== "open" || !a.escalate_at) return null;
  const s = Math.round((Date.parse(a.escalate_at) - Date.now()) / 1000);
  const mmss = (n) => n >= 3600 ? `${Math.floor(n / 3600)}h ${String(Math.floor(n / 60) % 60).padStart(2, "0")}m`
    : `${Math.floor(n / 60)}:${String(n % 60).padStart(2, "0")}`;
  return s >= 0 ? `escalates in ${mmss(s)}` : `escalation due ${mmss(-s)} ago`;
}

function lastAt(p) {
  let t = p.summary.last_reading_at;
  for (const r of Object.values(p.latest)) if (!t || Date.parse(r.at) > Date.parse(t)) t = r.at;
  return t;
}

const params = (list) => (list || []).map((x) => PARAM_NAMES[x] || x).join(", ");

/** The NEWS2 cell: text, tooltip, screen-reader text and a class for colour. */
function news2View(s) {
  if (!s) return { text: "no score", detail: "No readings to score yet", cls: "risk-none" };
  if (s.not_applicable) return { text: "n/a", detail: `NEWS2 not applicable: ${s.not_applicable}`, cls: "risk-none" };
  const gaps = [];
  if (s.missing?.length) gaps.push(`missing ${params(s.missing)}`);
  if (s.stale?.length) gaps.push(`stale ${params(s.stale)}`);
  const risk = s.risk || "unknown";
  if (s.partial) {
    return { text: `≥${s.total} partial`, sub: `at least ${risk}`,
      detail: `Partial score, at least ${s.total} (${risk} risk or worse): ${gaps.join("; ") || "incomplete"}`,
      cls: `risk-${risk} partial` };
  }
  return { text: `${s.total}`, sub: risk, detail: `NEWS2 ${s.total}, ${risk} risk${s.red_score ? " (a single parameter scores 3)" : ""}`,
    cls: `risk-${risk}` };
}

function acuity(p) {
  const s = p.news2;
  if (!s || s.not_applicable || s.total == null) return [0, -1];
  return [RISK_RANK[s.risk] || 0, s.total];
}

// ---------------------------------------------------------------- patients

function renderPatients(changed = new Set()) {
  const body = $("patients").querySelector("tbody");
  body.replaceChildren();
  const rows = [...patients.values()].sort((a, b) => {
    const [ra, ta] = acuity(a), [rb, tb] = acuity(b);
    return rb - ra || tb - ta || a.summary.name.localeCompare(b.summary.name);
  });
  for (const p of rows) {
    const tr = document.createElement("tr");
    tr.dataset.patient = p.summary.id;
    const name = document.createElement("th");
    name.scope = "row"; name.textContent = p.summary.name;
    const pathway = document.createElement("td");
    pathway.textContent = p.summary.pathway;
    tr.append(name, pathway, news2Cell(p, changed.has(`${p.summary.id}:news2`)));
    const subs = Object.fromEntries((p.news2?.subscores || []).map((x) => [x.parameter, x]));
    for (const code of CODES) {
      const el = document.createElement("td");
      el.textContent = fmt(p.latest, code);
      el.className = "num"; el.dataset.code = code;
      const sub = subs[SUB_PARAM[code]];
      // The sub-score is shown as text (CSS ::after from data-sub, so the
      // cell's text stays the reading) as well as by colour.
      if (sub && el.textContent !== "—") {
        el.dataset.sub = `+${sub.score}`;
        el.classList.add(`sub-${Math.min(3, sub.score)}`);
        el.title = sub.reason || `NEWS2 sub-score ${sub.score}`;
        el.setAttribute("aria-description", `NEWS2 sub-score ${sub.score}`);
      }
      if (changed.has(`${p.summary.id}:${code}`)) el.classList.add("fresh");
      tr.appendChild(el);
    }
    const last = document.createElement("td");
    last.textContent = age(lastAt(p));
    tr.appendChild(last);
    body.appendChild(tr);
  }
  $("empty").hidden = patients.size > 0;
}

function news2Cell(p, fresh) {
  const v = news2View(p.news2);
  const td = document.createElement("td");
  td.className = `news2 ${v.cls}${fresh ? " fresh" : ""}`;
  td.dataset.news2 = p.summary.id;
  if (p.news2?.scored_at) td.dataset.scoredAt = p.news2.scored_at;
  td.title = v.detail;
  const main = document.createElement("span");
  main.className = "score"; main.textContent = v.text;
  td.appendChild(main);
  if (v.sub) {
    const sub = document.createElement("span");
    sub.className = "risk"; sub.textContent = v.sub;
    td.appendChild(sub);
  }
  const hidden = document.createElement("span");
  hidden.className = "visually-hidden"; hidden.textContent = `. ${v.detail}`;
  td.appendChild(hidden);
  return td;
}

// ---------------------------------------------------------------- alerts

function patientName(id) { return patients.get(id)?.summary.name || `Patient ${id}`; }

function sortedAlerts() {
  return [...alerts.values()].sort((x, y) => {
    const a = x.alert, b = y.alert;
    return (SEVERITY_RANK[b.severity] || 0) - (SEVERITY_RANK[a.severity] || 0)
      || (STATUS_RANK[a.status] ?? 9) - (STATUS_RANK[b.status] ?? 9)
      || Date.parse(a.raised_at) - Date.parse(b.raised_at);
  });
}

// Alert items are kept and updated in place (keyed by id), so a repeat that
// bumps a count never replaces a button under the nurse's pointer or the
// note being typed in an open resolve form.
const alertEls = new Map(); // id -> {li, sev, pat, rule, status, msg, meta, actions, actionsKey, form}

function renderAlerts() {
  const list = $("alert-list");
  if (resolving != null && !alerts.has(resolving)) resolving = null;
  for (const [id, el] of alertEls) if (!alerts.has(id)) { el.li.remove(); alertEls.delete(id); }
  sortedAlerts().forEach((entry, i) => {
    let el = alertEls.get(entry.alert.id);
    if (!el) { el = buildAlert(entry.alert.id); alertEls.set(entry.alert.id, el); }
    fillAlert(el, entry);
    if (list.children[i] !== el.li) list.insertBefore(el.li, list.children[i] || null);
  });
  $("no-alerts").hidden = alerts.size > 0;
  $("alert-count").textContent = alerts.size ? `(${alerts.size})` : "";
}

function buildAlert(id) {
  const li = document.createElement("li");
  li.dataset.alert = id;
  const head = document.createElement("div");
  head.className = "alert-head";
  const el = { li, sev: span("severity", ""), pat: span("patient", ""), rule: span("rule", ""), status: span("status", ""),
    msg: document.createElement("p"), meta: document.createElement("p"), actions: document.createElement("div"),
    actionsKey: null, form: null };
  head.append(el.sev, el.pat, el.rule, el.status);
  el.msg.className = "message"; el.meta.className = "meta"; el.actions.className = "actions";
  li.append(head, el.msg, el.meta, el.actions);
  return el;
}

function setText(node, text) { if (node.textContent !== text) node.textContent = text; }

function fillAlert(el, { alert: a, last }) {
  const who = patientName(a.patient_id);
  el.li.className = `alert sev-${a.severity} status-${a.status}`;
  el.li.setAttribute("aria-label", `${a.severity} alert for ${who}: ${a.rule_id}, ${a.status}`);
  setText(el.sev, a.severity); setText(el.pat, who); setText(el.rule, a.rule_id); setText(el.status, a.status);
  setText(el.msg, a.message);

  const meta = [span("age", `raised ${age(a.raised_at)}`)];
  meta[0].dataset.raised = a.raised_at;
  const cd = countdown(a);
  if (cd) { const c = span("countdown", cd); c.dataset.countdown = ""; meta.push(c); }
  const count = span("count", `×${a.count}`);
  count.title = `${a.count} firing${a.count === 1 ? "" : "s"}`;
  meta.push(count);
  if (last) meta.push(span("last", `${last.action} by ${last.actor}${last.at ? ` ${age(last.at)}` : ""}`));
  el.meta.replaceChildren(...meta.flatMap((m, i) => (i ? [sep(), m] : [m])));

  // The buttons change only with the status (or the patient's name).
  const label = `${who}, ${a.rule_id}`;
  const key = `${a.status}|${label}`;
  if (el.actionsKey !== key) {
    const focused = el.actions.contains(document.activeElement) ? document.activeElement.id : null;
    const buttons = [];
    if (a.status === "open" || a.status === "escalated") buttons.push(actButton(`ack-${a.id}`, "Acknowledge", label, () => act(a.id, "acknowledge")));
    if (a.status === "open" || a.status === "acknowledged") buttons.push(actButton(`esc-${a.id}`, "Escalate", label, () => act(a.id, "escalate")));
    buttons.push(actButton(`res-${a.id}`, "Resolve", label, () => toggleResolve(a.id)));
    el.actions.replaceChildren(...buttons);
    el.actionsKey = key;
    const again = focused && (el.actions.querySelector(`[id="${focused}"]`) || buttons[buttons.length - 1]);
    if (again) again.focus();
  }
  el.actions.lastChild.setAttribute("aria-expanded", String(resolving === a.id));
  if (resolving === a.id && !el.form) { el.form = resolveForm(a, who); el.li.append(el.form); }
  if (resolving !== a.id && el.form) { el.form.remove(); el.form = null; }
}

function toggleResolve(id) {
  resolving = resolving === id ? null : id;
  renderAlerts();
  if (resolving === id) $("resolve-note").focus();
}

function span(cls, text) { const s = document.createElement("span"); s.className = cls; s.textContent = text; return s; }
function sep() { return span("sep", " · "); }

function actButton(id, text, label, onClick) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = text; b.id = id;
  b.setAttribute("aria-label", `${text}: ${label}`);
  b.addEventListener("click", onClick);
  return b;
}

/** Resolve in two clicks: "Resolve" opens this; one outcome button resolves (the note is optional typing). */
function resolveForm(a, who) {
  const form = document.createElement("form");
  form.className = "resolve";
  form.setAttribute("aria-label", `Resolve alert for ${who}`);
  const lab = document.createElement("label");
  lab.htmlFor = "resolve-note"; lab.textContent = "Note (optional)";
  const input = document.createElement("input");
  input.id = "resolve-note"; input.name = "note"; input.maxLength = 4000;
  const outcomes = document.createElement("fieldset");
  const legend = document.createElement("legend");
  legend.textContent = "Outcome (resolves the alert)";
  outcomes.append(legend);
  for (const [value, text] of OUTCOMES) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = text; b.dataset.outcome = value;
    b.addEventListener("click", () => {
      const n = input.value.trim();
      if (value === "other" && !n) { notice("Add a note to resolve with outcome Other."); input.focus(); return; }
      act(a.id, "resolve", { outcome: value, note: n });
    });
    outcomes.append(b);
  }
  const cancel = document.createElement("button");
  cancel.type = "button"; cancel.textContent = "Cancel"; cancel.className = "cancel";
  const close = () => { resolving = null; renderAlerts(); $(`res-${a.id}`)?.focus(); };
  cancel.addEventListener("click", close);
  form.addEventListener("submit", (e) => e.preventDefault());
  form.addEventListener("keydown", (e) => { if (e.key === "Escape") close(); });
  form.append(lab, input, outcomes, cancel);
  return form;
}

function notice(text) { $("notice").textContent = text; }

async function act(id, action, body) {
  const entry = alerts.get(id);
  const who = entry ? patientName(entry.alert.patient_id) : `alert ${id}`;
  const words = { acknowledge: "Acknowledged", escalate: "Escalated", resolve: "Resolved" };
  try {
    const a = await api(`/api/v1/alerts/${id}/${action}`, { method: "POST", body: JSON.stringify(body || {}) });
    if (action === "resolve") resolving = null;
    upsertAlert(a, { action: `${action}d`, actor: me?.username, at: a.updated_at });
    notice(`${words[action]}: ${who}, ${a.rule_id}${body?.outcome ? ` (${body.outcome})` : ""}.`);
  } catch (e) {
    notice(`Could not ${action} the alert for ${who}: ${e.message}. The queue has been refreshed.`);
    sync().catch(() => {});
  }
}

function upsertAlert(a, last) {
  const prev = alerts.get(a.id);
  // Never let an older copy (a late event) overwrite a newer one.
  if (prev && Date.parse(prev.alert.updated_at) > Date.parse(a.updated_at)) return;
  if (a.status === "resolved") alerts.delete(a.id);
  else alerts.set(a.id, { alert: a, last: last && last.action !== "updated" ? last : prev?.last || null });
  renderAlerts();
}

// ---------------------------------------------------------------- live

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/api/v1/stream`);
  socket = ws;
  ws.onopen = async () => {
    // Anything may have happened before the socket opened: reload, then say live.
    try { await sync(); markLive(ws); } catch { if (socket === ws) setConn("out of date: could not load the ward", "down"); }
  };
  ws.onclose = () => {
    if (socket !== ws) return; // replaced or signed out
    socket = null;
    setConn("reconnecting… (data may be out of date)", "down");
    setTimeout(() => start(), 2000);
  };
  ws.onmessage = (m) => {
    if (socket !== ws) return;
    const ev = JSON.parse(m.data);
    if (syncing && ev.type !== "resync") { queued.push(ev); return; }
    handle(ev);
  };
}

/** Say "live" only if this socket is still the open one. */
function markLive(ws) { if (socket === ws && ws.readyState === WebSocket.OPEN) setConn("live", "live"); }

function handle(ev) {
  switch (ev.type) {
    case "session_ended":
      showSignIn(SESSION_ENDED);
      return;
    case "resync":
      setConn(`resyncing (missed ${ev.missed} updates)…`, "down");
      { const ws = socket; sync().then(() => markLive(ws), () => { if (socket === ws) setConn("out of date: resync failed", "down"); }); }
      return;
    case "observation": {
      const p = patients.get(ev.patient_id);
      if (!p) { sync().catch(() => {}); return; }
      const changed = new Set();
      for (const o of ev.obs) {
        const prev = p.latest[o.code];
        // Late readings (store-and-forward backfill) never replace a newer one.
        if (prev && Date.parse(prev.at) > Date.parse(ev.measured_at)) continue;
        p.latest[o.code] = { value: o.value, at: ev.measured_at };
        changed.add(`${ev.patient_id}:${o.code === "systolic" || o.code === "diastolic" ? "bp" : o.code}`);
      }
      renderPatients(changed);
      return;
    }
    case "score": {
      const p = patients.get(ev.patient_id);
      if (!p) { sync().catch(() => {}); return; }
      p.news2 = ev.score;
      renderPatients(new Set([`${ev.patient_id}:news2`]));
      return;
    }
    case "alert":
      upsertAlert(ev.alert, null);
      return;
    case "alert_update":
      upsertAlert(ev.alert, { action: ev.action, actor: ev.actor, at: ev.alert.updated_at });
      if (ev.alert.status === "resolved" && ev.actor !== me?.username) {
        notice(`Resolved by ${ev.actor}: ${patientName(ev.alert.patient_id)}, ${ev.alert.rule_id}${ev.alert.outcome ? ` (${ev.alert.outcome})` : ""}.`);
      }
      return;
    default:
  }
}

/** Every second: ages and escalation countdowns, without rebuilding anything. */
function tick() {
  if ($("ward").hidden) return;
  for (const el of document.querySelectorAll("#alert-list [data-raised]")) el.textContent = `raised ${age(el.dataset.raised)}`;
  for (const li of document.querySelectorAll("#alert-list li[data-alert]")) {
    const a = alerts.get(Number(li.dataset.alert))?.alert;
    const el = li.querySelector("[data-countdown]");
    if (a && el) el.textContent = countdown(a) || "";
  }
}

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("signin-error").textContent = "";
  const res = await fetch("/api/v1/login", { method: "POST", credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }) });
  if (!res.ok) { $("signin-error").textContent = "Sign-in failed: check your username and password."; return; }
  try { csrf = (await res.json()).csrf_token || null; } catch { /* /api/v1/me gives it too */ }
  $("password").value = "";
  start();
});

$("signout").addEventListener("click", async () => {
  await fetch("/api/v1/logout", { method: "POST", credentials: "same-origin",
    headers: csrf ? { "x-csrf-token": csrf } : {} });
  showSignIn();
});

setInterval(() => { if (!$("ward").hidden) renderPatients(); }, 15000);
setInterval(tick, 1000);
start();
