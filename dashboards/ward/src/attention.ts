// Getting attention when the dashboard is not in front: a nurse works in
// the trust's record system and on the phone, with Vigil in a tab behind
// them (hazard DB-14). The tab's title counts the alerts waiting for this
// user, and, if they ask for it, a new alert above low (from NEWS2's
// low-medium, a single parameter scoring 3, up; an escalation, for a
// consultant) becomes a desktop notification while the tab is in the
// background. Low alerts (a device's battery or silence, a possible-AF
// prompt) are left to the queue. A notification can show on a locked or shared screen, so it
// names the ward and the severity, never the patient.
import { $, RISK_RANK } from "./format";
import { alerts, session } from "./state";
import type { Alert } from "./types";

const BASE_TITLE = document.title;
const KEY = "vigil.desktop-alerts";
const button = $("notify") as HTMLButtonElement;

/** What waits for this user: open alerts, or for a consultant escalated ones. */
function waitingStatus(): string { return session.me?.role === "consultant" ? "escalated" : "open"; }

/** The tab's title: "(3) Vigil — virtual ward" while three wait. */
export function updateTitle(): void {
  const want = waitingStatus();
  let n = 0;
  for (const { alert } of alerts.values()) if (alert.status === want) n++;
  document.title = n ? `(${n}) ${BASE_TITLE}` : BASE_TITLE;
}

function supported(): boolean { return "Notification" in window; }
function wanted(): boolean {
  return supported() && Notification.permission === "granted" && localStorage.getItem(KEY) === "on";
}

function label(): void {
  if (!supported()) return;
  const blocked = Notification.permission === "denied";
  const on = wanted();
  button.disabled = blocked;
  button.setAttribute("aria-pressed", String(on));
  button.textContent = blocked ? "Desktop alerts: blocked in this browser's settings" : `Desktop alerts: ${on ? "on" : "off"}`;
}

/** Offer the switch to a signed-in user whose browser can notify. */
export function showNotifySwitch(signedIn: boolean): void {
  button.hidden = !signedIn || !supported();
  label();
}

button.addEventListener("click", async () => {
  if (wanted()) {
    localStorage.setItem(KEY, "off");
  } else {
    const answer = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
    if (answer === "granted") localStorage.setItem(KEY, "on");
  }
  label();
});

// What the page last judged of each alert, kept across its reloads. A
// reload (the first on a socket's open, one after a reconnect or a
// resync, the periodic one) replaces the queue's copies wholesale, so
// "new to the queue" cannot tell whether an alert was ever told: one
// raised or escalated while the socket was down, or during a reload whose
// snapshot already held it, would never be notified. Judging against
// this record instead tells each alert once, whichever way it came.
interface Judged { status: string; rank: number; at: number; seen: number }
const judged = new Map<number, Judged>();
// The first reload after sign-in shows what already waits: the user sees
// it on the page they have just opened, so it seeds the record silently.
let seeded = false;
// An entry absent from the reloads this long is dropped (resolved, or its
// patient gone): no late event is ever that late.
const FORGET_MS = 60 * 60 * 1000;

/** Signed out, or in as someone else: nothing this page judged carries over. */
export function forgetAlerts(): void { judged.clear(); seeded = false; }

/**
 * A copy of an alert reached the page, from an event or a reload; `actor`
 * is who changed it, if known. Notifies, with the tab in the background,
 * when the alert has just come to wait for this user, against what the
 * page last judged of it: for a nurse a new alert above low, or one whose
 * severity rose past low; for a consultant one just escalated, by someone
 * else. An older copy than the one judged (a late event) changes nothing.
 */
export function alertArrived(a: Alert, actor?: string): void {
  const before = judged.get(a.id);
  const at = Date.parse(a.updated_at);
  if (before && before.at > at) { before.seen = Date.now(); return; }
  const rank = RISK_RANK[a.severity] || 0;
  judged.set(a.id, { status: a.status, rank, at, seen: Date.now() });
  if (!seeded || !wanted() || document.visibilityState !== "hidden" || (actor && actor === session.me?.username)) return;
  const escalation = waitingStatus() === "escalated";
  const now = escalation
    ? a.status === "escalated" && before?.status !== "escalated"
    : a.status === "open" && rank > RISK_RANK.low && rank > (before?.rank ?? 0);
  if (!now) return;
  const ward = session.me?.wards?.find((w) => w.id === a.ward_id)?.name;
  const what = escalation ? `${a.severity} alert escalated for review` : `new ${a.severity} alert`;
  const n = new Notification(`Vigil: ${what}`, {
    body: `${ward ? `${ward}: ` : ""}a patient needs review. Open Vigil to see who.`,
    tag: `vigil-alert-${a.id}`,
  });
  n.onclick = () => { window.focus(); n.close(); };
}

/**
 * A reload's live alerts, each with who last acted on it (for one a person
 * has touched). Each is judged as if it had come by event, so one that
 * came to wait unseen is told now; the first reload after sign-in only
 * seeds the record.
 */
export function alertsReloaded(list: { alert: Alert; last: { actor: string } | null }[]): void {
  for (const { alert, last } of list) alertArrived(alert, last?.actor);
  seeded = true;
  const stale = Date.now() - FORGET_MS;
  for (const [id, j] of judged) if (j.seen < stale) judged.delete(id);
}
