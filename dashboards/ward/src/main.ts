// The Vigil ward page: sign in, work the alert queue (acknowledge, escalate,
// resolve with an outcome), watch the ward's patients sorted by NEWS2
// acuity, and open a patient's page (#/patients/{id}) with their charts,
// scores, devices, alerts and ECG, all kept live over the websocket.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { showAdmission } from "./admission";
import { api, setCsrf, csrfToken, whenSignedOut } from "./api";
import { clearAlerts, notice, renderAlerts, showOnly, tickAlerts, upsertAlert, whenActionFails } from "./alerts";
import { alertArrived, alertsReloaded, forgetAlerts, showNotifySwitch } from "./attention";
import { clearDischarged, refreshDischarged } from "./discharged";
import { clearHandover, refreshHandover } from "./handover";
import { clearKit, drawKit, hideKit, refreshKit, showKit } from "./kit";
import { clearNotes } from "./notes";
import { $ } from "./format";
import { showPasswordButton, whenPasswordChanged } from "./password";
import { closePatient, openPatient, patientEvent, tickPatient } from "./patient";
import { clearReport, showReport } from "./report";
import { showSignInMethods } from "./signin";
import { clearStaff, showStaff } from "./staff";
import { alerts, patientName, patients, session, takeEarlier, type PatientState } from "./state";
import type { Alert, AlertEvent, LiveEvent, Me, WardRow } from "./types";
import { focusPatient, renderPatients, showWard } from "./ward";

const LIVE = ["open", "acknowledged", "escalated"];
const REFRESH_MS = 5 * 60_000; // refetch so readings that age past the freshness window show as stale
const SESSION_ENDED = "Your session has ended (signed out elsewhere, timed out or revoked). Sign in again.";
const PASSWORD_CHANGED = "Your password is changed: sign in with the new one.";

let socket: WebSocket | null = null;
let syncing: Promise<void> | null = null; // while REST state is being (re)loaded
let queued: LiveEvent[] = []; // websocket events that arrived while syncing
let refreshTimer: number | undefined;

function setConn(text: string, cls = ""): void { $("conn").textContent = text; $("conn").className = `conn ${cls}`.trim(); }

/**
 * Back to the sign-in form, forgetting everything shown; `why` says why when
 * something went wrong, `note` what the user should know otherwise.
 */
function showSignIn(why = "", note = ""): void {
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
  clearInterval(refreshTimer); refreshTimer = undefined;
  setCsrf(null); session.me = null;
  patients.clear(); clearAlerts(); forgetAlerts();
  closePatient();
  clearNotes();
  $("patients").querySelector("tbody")!.replaceChildren();
  clearDischarged();
  clearHandover();
  clearKit();
  clearStaff();
  clearReport();
  $("signin").hidden = false; $("ward").hidden = true; $("patient").hidden = true; $("signout").hidden = true;
  $("who").textContent = ""; setConn("");
  showAdmission(null);
  showNotifySwitch(false);
  showPasswordButton(false);
  $("signin-error").textContent = why;
  $("signin-notice").textContent = note;
  void showSignInMethods();
}
// A 401 while signed in: the session ended. One while the sign-in form is
// already showing (a second request of the same refresh) leaves the form
// and its message as they are.
whenSignedOut(() => {
  if (session.me) showSignIn(SESSION_ENDED);
  else if ($("signin").hidden) showSignIn("");
});
whenActionFails(() => { sync().catch(() => {}); });
// The server ended every session of the account, this page's too.
whenPasswordChanged(() => showSignIn("", PASSWORD_CHANGED));

async function start(): Promise<void> {
  let me: Me;
  try {
    me = await api<Me>("/api/v1/me");
  } catch {
    // Signed out (the form shows), or the server is unreachable: keep trying.
    if ($("signin").hidden) { setConn("offline: retrying… (data may be out of date)", "down"); setTimeout(start, 5000); }
    return;
  }
  const signingIn = !session.me;
  session.me = me;
  if (me.csrf_token) setCsrf(me.csrf_token);
  // A consultant starts on the escalations waiting for their review.
  if (signingIn) showOnly(me.role === "consultant" ? "escalated" : "all");
  $("who").textContent = `${me.username} (${me.role})`;
  showAdmission(me);
  showNotifySwitch(true);
  showPasswordButton(true);
  $("signin").hidden = true; $("signout").hidden = false;
  route();
  setConn("connecting…", "down");
  // Show what REST has now; the socket's open reloads once more, so nothing
  // between this snapshot and the socket's first event is missed.
  await sync().catch(() => {});
  if (!session.me) return;
  void refreshDischarged();
  void refreshHandover();
  connect();
  clearInterval(refreshTimer);
  refreshTimer = window.setInterval(() => sync().catch(() => {}), REFRESH_MS);
}

/**
 * Reload patients and alerts from REST; websocket events arriving meanwhile
 * are queued and replayed after. A sync already running may have taken its
 * snapshot too early, so one more follows it: one, however many asked
 * meanwhile (each admission of a big ward asks; chained one per asker, the
 * page reloaded the whole ward back to back for seconds, holding every
 * live event in the queue all the while).
 */
let again: Promise<void> | null = null;
function sync(): Promise<void> {
  if (syncing) {
    again ||= syncing.catch(() => {}).then(() => { again = null; return sync(); });
    return again;
  }
  const run = (async () => {
    // Both settled before the queued events are replayed: were one to fail
    // first, the other's snapshot, taken before those events, would land
    // after them and undo them (an older NEWS2 over a newer one).
    const read = await Promise.allSettled([loadPatients(), loadAlerts()]);
    syncing = null;
    const q = queued; queued = [];
    for (const ev of q) handle(ev);
    const failed = read.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    renderPatients(); renderAlerts(); drawKit();
  })();
  syncing = run;
  return run;
}

/** Live scores and readings taken so far, each numbered by this count. */
let live = 0;

/**
 * The ward as REST has it now. A live score or reading taken after the
 * list was asked for is kept over the list's (which is as of the moment it
 * was asked, and may not have it): a snapshot never takes a row back in
 * time. (The big ward's test once saw a row scrolled into view with the
 * list's older NEWS2 after the live one had come.) Anything else is the
 * list's: what it no longer has is gone from the row.
 */
async function loadPatients(): Promise<void> {
  const asked = live;
  const list = await api<WardRow[]>("/api/v1/patients");
  const before = new Map(patients);
  patients.clear();
  for (const p of list) {
    const was = before.get(p.id);
    const row: PatientState = { summary: p, latest: {}, news2: p.news2 || null };
    for (const r of p.latest) row.latest[r.code] = { value: r.value, at: r.measured_at };
    for (const [code, n] of Object.entries(was?.latestLive || {})) {
      const mine = was!.latest[code], theirs = row.latest[code];
      if (n > asked && mine && (!theirs || Date.parse(mine.at) >= Date.parse(theirs.at))) {
        row.latest[code] = mine;
        (row.latestLive ||= {})[code] = n;
      }
    }
    if (was?.news2Live != null && was.news2Live > asked) {
      row.news2 = was.news2;
      row.news2Live = was.news2Live;
    }
    // None stored when the list was read, but some came live: every one of
    // those came after that read (the list would have had it), so the
    // first of them is still the stay's first.
    if (!p.news2_earlier && was?.earlierLive) {
      p.news2_earlier = was.summary.news2_earlier;
      row.earlierLive = true;
    }
    patients.set(p.id, row);
  }
}

async function loadAlerts(): Promise<void> {
  const lists = await Promise.all(LIVE.map((s) => api<Alert[]>(`/api/v1/alerts?status=${s}`)));
  const prev = new Map(alerts);
  alerts.clear();
  for (const a of lists.flat()) alerts.set(a.id, { alert: a, last: prev.get(a.id)?.last || null });
  // Who last acted on an alert that a person has touched: from its audit trail.
  await Promise.all([...alerts.values()].filter((e) => !e.last && e.alert.status !== "open").map(async (e) => {
    try {
      const { events } = await api<{ events: AlertEvent[] }>(`/api/v1/alerts/${e.alert.id}`);
      const ev = events.filter((x) => x.action !== "raised" && x.action !== "updated").pop();
      if (ev) e.last = { action: ev.action, actor: ev.actor, at: ev.at };
    } catch { /* shown without it */ }
  }));
  alertsReloaded([...alerts.values()]);
}

// ---------------------------------------------------------------- routing

/** `#/patients/{id}` shows that patient; anything else the ward. */
function route(): void {
  if (!session.me) return;
  const m = /^#\/patients\/(\d+)$/.exec(location.hash);
  if (m) {
    $("ward").hidden = true; $("patient").hidden = false;
    hideKit();
    void openPatient(Number(m[1]));
  } else {
    closePatient();
    $("patient").hidden = true; $("ward").hidden = false;
    showWard();
    showKit(session.me);
    showStaff(session.me);
    showReport(session.me);
    const from = Number(sessionStorage.getItem("vigil-last-patient") || NaN);
    sessionStorage.removeItem("vigil-last-patient");
    // Back on the ward: focus the row of the patient just left (drawn and scrolled to, wherever it is in the list).
    if (from) focusPatient(from);
  }
}
window.addEventListener("hashchange", route);

// A click anywhere on a patient's row opens them (the name is the link,
// which keyboards and screen readers use).
$("patients").addEventListener("click", (e) => {
  const t = e.target as HTMLElement;
  if (t.closest("a")) return;
  const tr = t.closest<HTMLElement>("tr[data-patient]");
  if (tr) location.hash = `#/patients/${tr.dataset.patient}`;
});

// ---------------------------------------------------------------- live

function connect(): void {
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
    const ev = JSON.parse(m.data as string) as LiveEvent;
    if (syncing && ev.type !== "resync") { queued.push(ev); return; }
    handle(ev);
  };
}

/** Say "live" only if this socket is still the open one. */
function markLive(ws: WebSocket | null): void { if (ws && socket === ws && ws.readyState === WebSocket.OPEN) setConn("live", "live"); }

function handle(ev: LiveEvent): void {
  patientEvent(ev);
  switch (ev.type) {
    case "session_ended":
      showSignIn(SESSION_ENDED);
      return;
    case "wards_changed":
      // The server closes this stream next; the reconnect (start) reads
      // who the user is and reloads everything for the new wards. A
      // patient's page open now may be of a ward taken away: back to the
      // ward, where the notice says why.
      notice("An administrator changed your wards: the ward list and the alerts are reloaded for them.");
      if (location.hash) location.hash = "";
      return;
    case "resync": {
      setConn(`resyncing (missed ${ev.missed} updates)…`, "down");
      const ws = socket;
      sync().then(() => markLive(ws), () => { if (socket === ws) setConn("out of date: resync failed", "down"); });
      return;
    }
    case "observation": {
      const p = patients.get(ev.patient_id);
      if (!p) { sync().catch(() => {}); return; }
      const changed = new Set<string>();
      for (const o of ev.obs) {
        const prev = p.latest[o.code];
        // Late readings (store-and-forward backfill) never replace a newer one.
        if (prev && Date.parse(prev.at) > Date.parse(ev.measured_at)) continue;
        p.latest[o.code] = { value: o.value, at: ev.measured_at };
        (p.latestLive ||= {})[o.code] = ++live;
        changed.add(`${ev.patient_id}:${o.code === "systolic" || o.code === "diastolic" ? "bp" : o.code}`);
      }
      renderPatients(changed);
      return;
    }
    case "score": {
      const p = patients.get(ev.patient_id);
      if (!p) { sync().catch(() => {}); return; }
      p.news2 = ev.score;
      p.news2Live = ++live;
      takeEarlier(p, ev.score);
      renderPatients(new Set([`${ev.patient_id}:news2`]));
      return;
    }
    case "alert": {
      upsertAlert(ev.alert, null);
      alertArrived(ev.alert);
      // A follow-up come due leaves the handover's list of those ahead.
      if (ev.alert.rule_id === "follow-up") void refreshHandover();
      return;
    }
    case "alert_update": {
      // A resolution is told once, for an alert that was in the queue: the
      // server may repeat one (a discharge's, from its patient sync).
      const wasLive = upsertAlert(ev.alert, { action: ev.action, actor: ev.actor, at: ev.alert.updated_at });
      alertArrived(ev.alert, ev.actor);
      if (wasLive && ev.alert.status === "resolved" && ev.actor !== session.me?.username) {
        notice(`Resolved by ${ev.actor}: ${patientName(ev.alert.patient_id)}, ${ev.alert.rule_id}${ev.alert.outcome ? ` (${ev.alert.outcome})` : ""}.`);
      }
      if (ev.alert.status === "resolved") void refreshHandover();
      return;
    }
    case "note":
      void refreshHandover();
      return;
    case "episode": {
      // The escalation plan on the ward list and the patient's alerts.
      const p = patients.get(ev.patient_id);
      if (!p) return;
      p.summary.escalation_plan = ev.settings.escalation_plan;
      p.summary.escalation_note = ev.settings.escalation_note;
      renderPatients();
      renderAlerts();
      void refreshHandover(); // its plans (episode changes are a clinician's, and few)
      return;
    }
    case "patient":
      // Admitted: fetch the list (the new row has no readings to come by
      // yet). Discharged: off the list now, not at the next refresh.
      if (ev.change === "discharged") {
        if (patients.delete(ev.patient_id)) renderPatients();
      } else {
        sync().catch(() => {});
      }
      void refreshDischarged();
      void refreshKit();
      return;
    default:
  }
}

// ---------------------------------------------------------------- sign-in

const form = $("signin-form") as HTMLFormElement;
form.addEventListener("submit", async (e) => {
  e.preventDefault();
  $("signin-error").textContent = ""; $("signin-notice").textContent = "";
  const username = ($("username") as HTMLInputElement).value;
  const password = $("password") as HTMLInputElement;
  const res = await fetch("/api/v1/login", { method: "POST", credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password: password.value }) });
  if (!res.ok) { $("signin-error").textContent = "Sign-in failed: check your username and password."; return; }
  try { setCsrf((await res.json()).csrf_token || null); } catch { /* /api/v1/me gives it too */ }
  password.value = "";
  void start();
});

$("signout").addEventListener("click", async () => {
  const token = csrfToken();
  const res = await fetch("/api/v1/logout", { method: "POST", credentials: "same-origin",
    headers: token ? { "x-csrf-token": token } : {} });
  showSignIn();
  // After a single sign-on, where the server is set to (sso.sign_out_provider):
  // on to the provider's sign-out, which comes back to this page, so the
  // next person at a shared computer is not signed in as this one.
  let next: unknown = null;
  try { next = ((await res.json()) as { provider_sign_out?: unknown }).provider_sign_out; } catch { /* signed out of Vigil all the same */ }
  if (typeof next === "string" && /^https?:\/\//.test(next)) window.location.assign(next);
});

setInterval(() => { if (!$("ward").hidden) renderPatients(); }, 15000);
setInterval(() => { if (session.me) { tickAlerts(); tickPatient(); } }, 1000);
void showSignInMethods();
void start();
