// The first Vigil page: sign in, list the ward's patients with their latest
// readings, and keep the table live over the websocket. The full dashboard
// (issue: clinical dashboard) grows from here.
"use strict";

const CODES = ["spo2", "pulse", "resp_rate", "bp", "temp"];
const patients = new Map(); // id -> {summary, latest: {code: {value, at}}}
let socket = null;

const $ = (id) => document.getElementById(id);

async function api(path, opts = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...opts,
    headers: { "content-type": "application/json", ...(opts.headers || {}) } });
  if (res.status === 401) { showSignIn(); throw new Error("signed out"); }
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

function showSignIn() {
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
  $("signin").hidden = false; $("ward").hidden = true; $("signout").hidden = true;
  $("who").textContent = ""; $("conn").textContent = ""; $("conn").className = "conn";
}

async function start() {
  let me;
  try { me = await api("/api/v1/me"); } catch { return; }
  $("who").textContent = `${me.username} (${me.role})`;
  $("signin").hidden = true; $("ward").hidden = false; $("signout").hidden = false;
  await loadPatients();
  connect();
}

async function loadPatients() {
  const list = await api("/api/v1/patients");
  patients.clear();
  for (const p of list) {
    const latest = {};
    for (const r of p.latest) latest[r.code] = { value: r.value, at: r.measured_at };
    patients.set(p.id, { summary: p, latest });
  }
  render();
}

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

function lastAt(p) {
  let t = p.summary.last_reading_at;
  for (const r of Object.values(p.latest)) if (!t || Date.parse(r.at) > Date.parse(t)) t = r.at;
  return t;
}

function render(changed = new Set()) {
  const body = $("patients").querySelector("tbody");
  body.replaceChildren();
  for (const p of patients.values()) {
    const tr = document.createElement("tr");
    tr.dataset.patient = p.summary.id;
    const cells = [p.summary.name, p.summary.pathway, ...CODES.map((c) => fmt(p.latest, c)), age(lastAt(p))];
    cells.forEach((text, i) => {
      const el = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) el.scope = "row";
      el.textContent = text;
      const code = CODES[i - 2];
      if (code) { el.className = "num"; el.dataset.code = code; }
      if (code && changed.has(`${p.summary.id}:${code}`)) el.classList.add("fresh");
      tr.appendChild(el);
    });
    body.appendChild(tr);
  }
  $("empty").hidden = patients.size > 0;
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${proto}://${location.host}/api/v1/stream`);
  socket.onopen = () => { $("conn").textContent = "live"; $("conn").className = "conn live"; };
  socket.onclose = () => {
    $("conn").textContent = "reconnecting…"; $("conn").className = "conn down";
    setTimeout(() => start(), 2000);
  };
  socket.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    if (ev.type === "resync") { loadPatients(); return; }
    if (ev.type !== "observation") return;
    const p = patients.get(ev.patient_id);
    if (!p) { loadPatients(); return; }
    const changed = new Set();
    for (const o of ev.obs) {
      const prev = p.latest[o.code];
      // Late readings (store-and-forward backfill) never replace a newer one.
      if (prev && Date.parse(prev.at) > Date.parse(ev.measured_at)) continue;
      p.latest[o.code] = { value: o.value, at: ev.measured_at };
      changed.add(`${ev.patient_id}:${o.code === "systolic" || o.code === "diastolic" ? "bp" : o.code}`);
    }
    render(changed);
  };
}

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("signin-error").textContent = "";
  const res = await fetch("/api/v1/login", { method: "POST", credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }) });
  if (!res.ok) { $("signin-error").textContent = "Sign-in failed: check your username and password."; return; }
  $("password").value = "";
  start();
});

$("signout").addEventListener("click", async () => {
  await fetch("/api/v1/logout", { method: "POST", credentials: "same-origin" });
  showSignIn();
});

setInterval(() => { if (!$("ward").hidden) render(); }, 15000);
start();
