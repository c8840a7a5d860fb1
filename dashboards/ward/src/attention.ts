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

/**
 * An alert event reached the page; `before` is the copy the page held
 * (undefined: new to the page), `actor` who changed it. Notifies, with the
 * tab in the background, when an alert has just come to wait for this
 * user: for a nurse a new alert above low, or one whose severity rose past
 * low; for a consultant one just escalated, by someone else.
 */
export function alertArrived(a: Alert, before: Alert | undefined, actor?: string): void {
  if (!wanted() || document.visibilityState !== "hidden" || (actor && actor === session.me?.username)) return;
  const rank = (x: Alert | undefined) => (x ? RISK_RANK[x.severity] || 0 : 0);
  const escalation = waitingStatus() === "escalated";
  const now = escalation
    ? a.status === "escalated" && before?.status !== "escalated"
    : a.status === "open" && rank(a) > RISK_RANK.low && rank(a) > rank(before);
  if (!now) return;
  const ward = session.me?.wards?.find((w) => w.id === a.ward_id)?.name;
  const what = escalation ? `${a.severity} alert escalated for review` : `new ${a.severity} alert`;
  const n = new Notification(`Vigil: ${what}`, {
    body: `${ward ? `${ward}: ` : ""}a patient needs review. Open Vigil to see who.`,
    tag: `vigil-alert-${a.id}`,
  });
  n.onclick = () => { window.focus(); n.close(); };
}
