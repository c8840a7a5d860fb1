// The alert queue: open, acknowledged and escalated alerts, most severe
// first, worked in place (acknowledge, escalate, resolve with an outcome).
import { api } from "./api";
import { updateTitle } from "./attention";
import { $, age, countdown, el, followUpReason, nhsFormat, RISK_RANK, span } from "./format";
import { planLine } from "./plan";
import { alerts, patientName, patientNhs, patients, session, type AlertEntry, type LastAction } from "./state";
import type { Alert } from "./types";

const STATUS_RANK: Record<string, number> = { open: 0, escalated: 1, acknowledged: 2 };
export const OUTCOMES: [string, string][] = [
  ["advice-given", "Advice given"], ["treatment-changed", "Treatment changed"], ["home-visit", "Home visit"],
  ["escalated-999", "999 called"], ["admitted", "Admitted"],
  ["false-alarm-device", "False alarm (device)"], ["reviewed-no-action", "Reviewed, no action"],
  ["other", "Other (add a note)"],
];

let resolving: number | null = null; // id of the alert whose resolve form is open
let shown = "all"; // the queue's filter: all, or one status
const NONE_TEXT: Record<string, string> = {
  all: "No open, acknowledged or escalated alerts.", open: "No open alerts.",
  acknowledged: "No acknowledged alerts.", escalated: "No escalated alerts waiting for review.",
};

const filterEl = $("alert-filter") as HTMLSelectElement;
filterEl.addEventListener("change", () => { shown = filterEl.value; renderAlerts(); });
/** The consultant's view: escalated alerts waiting for review. */
export function showOnly(status: string): void { filterEl.value = status; shown = filterEl.value; renderAlerts(); }
let onFailure: () => void = () => {};
/** What to do when a write fails: refetch the REST state. */
export function whenActionFails(f: () => void): void { onFailure = f; }

function sortedAlerts(): AlertEntry[] {
  return [...alerts.values()].sort((x, y) => {
    const a = x.alert, b = y.alert;
    return (RISK_RANK[b.severity] || 0) - (RISK_RANK[a.severity] || 0)
      || (STATUS_RANK[a.status] ?? 9) - (STATUS_RANK[b.status] ?? 9)
      || Date.parse(a.raised_at) - Date.parse(b.raised_at);
  });
}

interface AlertEls {
  li: HTMLLIElement; sev: HTMLSpanElement; pat: HTMLSpanElement; rule: HTMLSpanElement; status: HTMLSpanElement;
  msg: HTMLParagraphElement; reason: HTMLParagraphElement; plan: HTMLParagraphElement; meta: HTMLParagraphElement; actions: HTMLDivElement; actionsKey: string | null;
  form: HTMLFormElement | null;
}

// Alert items are kept and updated in place (keyed by id), so a repeat that
// bumps a count never replaces a button under the nurse's pointer or the
// note being typed in an open resolve form.
const alertEls = new Map<number, AlertEls>();

export function clearAlerts(): void {
  resolving = null;
  alerts.clear(); alertEls.clear();
  $("alert-list").replaceChildren();
  $("notice").textContent = "";
  updateTitle();
}

export function renderAlerts(): void {
  const list = $("alert-list");
  if (resolving != null && !alerts.has(resolving)) resolving = null;
  for (const [id, e] of alertEls) if (!alerts.has(id)) { e.li.remove(); alertEls.delete(id); }
  sortedAlerts().forEach((entry, i) => {
    let e = alertEls.get(entry.alert.id);
    if (!e) { e = buildAlert(entry.alert.id); alertEls.set(entry.alert.id, e); }
    fillAlert(e, entry);
    if (list.children[i] !== e.li) list.insertBefore(e.li, list.children[i] || null);
  });
  let visible = 0;
  for (const [id, e] of alertEls) {
    e.li.hidden = shown !== "all" && alerts.get(id)?.alert.status !== shown;
    if (!e.li.hidden) visible++;
  }
  $("no-alerts").hidden = visible > 0;
  $("no-alerts").textContent = NONE_TEXT[shown] || NONE_TEXT.all;
  $("alert-count").textContent = alerts.size ? `(${alerts.size})` : "";
  $("alert-shown").textContent = shown === "all" ? "" : `showing ${visible} of ${alerts.size}`;
  updateTitle();
}

function buildAlert(id: number): AlertEls {
  const li = el("li");
  li.dataset.alert = String(id);
  const head = el("div", "alert-head");
  const e: AlertEls = { li, sev: span("severity", ""), pat: span("patient", ""), rule: span("rule", ""), status: span("status", ""),
    msg: el("p", "message"), reason: el("p", "reason"), plan: el("p", "plan"), meta: el("p", "meta"), actions: el("div", "actions"),
    actionsKey: null, form: null };
  head.append(e.sev, e.pat, e.rule, e.status);
  li.append(head, e.msg, e.reason, e.plan, e.meta, e.actions);
  return e;
}

function setText(node: Node, text: string): void { if (node.textContent !== text) node.textContent = text; }
const sep = () => span("sep", " · ");

function fillAlert(e: AlertEls, { alert: a, last }: AlertEntry): void {
  const who = patientName(a.patient_id);
  e.li.className = `alert sev-${a.severity} status-${a.status}`;
  e.li.setAttribute("aria-label", `${a.severity} alert for ${who}: ${a.rule_id}, ${a.status}`);
  setText(e.sev, a.severity); setText(e.rule, a.rule_id); setText(e.status, a.status);
  const nhs = patientNhs(a.patient_id);
  if (e.pat.dataset.who !== `${who}|${nhs}` || !e.pat.firstChild) {
    const link = el("a", "", who);
    link.href = `#/patients/${a.patient_id}`;
    e.pat.replaceChildren(link, ...(nhs ? [span("nhs", ` NHS ${nhsFormat(nhs)}`)] : []));
    e.pat.dataset.who = `${who}|${nhs}`;
  }
  setText(e.msg, a.message);
  // A follow-up's reason: free text, so on the card, never in the message
  // (which the alert webhook posts).
  const reason = followUpReason(a);
  e.reason.hidden = !reason;
  setText(e.reason, reason ? `For: ${reason}` : "");
  // What was agreed about a deterioration, where answering it: on every
  // alert about the patient, not those about a device (battery, offline).
  const row = patients.get(a.patient_id)?.summary;
  e.plan.hidden = a.rule_id.startsWith("device-") || !row;
  if (row) {
    setText(e.plan, planLine(row.escalation_plan, row.escalation_note));
    e.plan.className = `plan${row.escalation_plan ? "" : " none"}`;
  }

  const meta = [span("age", `raised ${age(a.raised_at)}`)];
  meta[0].dataset.raised = a.raised_at;
  const cd = countdown(a);
  if (cd) { const c = span("countdown", cd); c.dataset.countdown = ""; meta.push(c); }
  const count = span("count", `×${a.count}`);
  count.title = `${a.count} firing${a.count === 1 ? "" : "s"}`;
  meta.push(count);
  if (last) meta.push(span("last", `${last.action} by ${last.actor}${last.at ? ` ${age(last.at)}` : ""}`));
  e.meta.replaceChildren(...meta.flatMap((m, i) => (i ? [sep(), m] : [m])));

  // The buttons change only with the status (or the patient's name).
  const label = `${who}, ${a.rule_id}`;
  const key = `${a.status}|${label}`;
  if (e.actionsKey !== key) {
    const focused = e.actions.contains(document.activeElement) ? document.activeElement?.id : null;
    const buttons: HTMLButtonElement[] = [];
    if (a.status === "open" || a.status === "escalated") buttons.push(actButton(`ack-${a.id}`, "Acknowledge", label, () => act(a.id, "acknowledge")));
    if (a.status === "open" || a.status === "acknowledged") buttons.push(actButton(`esc-${a.id}`, "Escalate", label, () => act(a.id, "escalate")));
    buttons.push(actButton(`res-${a.id}`, "Resolve", label, () => toggleResolve(a.id)));
    e.actions.replaceChildren(...buttons);
    e.actionsKey = key;
    const again = focused ? (e.actions.querySelector<HTMLElement>(`[id="${focused}"]`) || buttons[buttons.length - 1]) : null;
    if (again) again.focus();
  }
  (e.actions.lastChild as HTMLElement).setAttribute("aria-expanded", String(resolving === a.id));
  if (resolving === a.id && !e.form) { e.form = resolveForm(a, who); e.li.append(e.form); }
  if (resolving !== a.id && e.form) { e.form.remove(); e.form = null; }
}

function toggleResolve(id: number): void {
  resolving = resolving === id ? null : id;
  renderAlerts();
  if (resolving === id) $("resolve-note").focus();
}

function actButton(id: string, text: string, label: string, onClick: () => void): HTMLButtonElement {
  const b = el("button", "", text);
  b.type = "button"; b.id = id;
  b.setAttribute("aria-label", `${text}: ${label}`);
  b.addEventListener("click", onClick);
  return b;
}

/** Resolve in two clicks: "Resolve" opens this; one outcome button resolves (the note is optional typing). */
function resolveForm(a: Alert, who: string): HTMLFormElement {
  const form = el("form", "resolve");
  form.setAttribute("aria-label", `Resolve alert for ${who}`);
  const lab = el("label", "", "Note (optional)");
  lab.htmlFor = "resolve-note";
  const input = el("input");
  input.id = "resolve-note"; input.name = "note"; input.maxLength = 4000;
  const outcomes = el("fieldset");
  outcomes.append(el("legend", "", "Outcome (resolves the alert)"));
  for (const [value, text] of OUTCOMES) {
    const b = el("button", "", text);
    b.type = "button"; b.dataset.outcome = value;
    b.addEventListener("click", () => {
      const n = input.value.trim();
      if (value === "other" && !n) { notice("Add a note to resolve with outcome Other."); input.focus(); return; }
      void act(a.id, "resolve", { outcome: value, note: n });
    });
    outcomes.append(b);
  }
  const cancel = el("button", "cancel", "Cancel");
  cancel.type = "button";
  const close = () => { resolving = null; renderAlerts(); document.getElementById(`res-${a.id}`)?.focus(); };
  cancel.addEventListener("click", close);
  form.addEventListener("submit", (ev) => ev.preventDefault());
  form.addEventListener("keydown", (ev) => { if (ev.key === "Escape") close(); });
  form.append(lab, input, outcomes, cancel);
  return form;
}

export function notice(text: string): void { $("notice").textContent = text; }

const WORDS: Record<string, string> = { acknowledge: "Acknowledged", escalate: "Escalated", resolve: "Resolved" };

async function act(id: number, action: string, body?: { outcome: string; note: string }): Promise<void> {
  const entry = alerts.get(id);
  const who = entry ? patientName(entry.alert.patient_id) : `alert ${id}`;
  try {
    const a = await api<Alert>(`/api/v1/alerts/${id}/${action}`, { method: "POST", body: JSON.stringify(body || {}) });
    if (action === "resolve") resolving = null;
    upsertAlert(a, { action: `${action}d`, actor: session.me?.username || "you", at: a.updated_at });
    notice(`${WORDS[action]}: ${who}, ${a.rule_id}${body?.outcome ? ` (${body.outcome})` : ""}.`);
  } catch (e) {
    notice(`Could not ${action} the alert for ${who}: ${(e as Error).message}. The queue has been refreshed.`);
    onFailure();
  }
}

/** Take in a copy of an alert; `true` if it was in the queue before. */
export function upsertAlert(a: Alert, last: LastAction | null): boolean {
  const prev = alerts.get(a.id);
  // Never let an older copy (a late event) overwrite a newer one.
  if (prev && Date.parse(prev.alert.updated_at) > Date.parse(a.updated_at)) return true;
  if (a.status === "resolved") alerts.delete(a.id);
  else alerts.set(a.id, { alert: a, last: last && last.action !== "updated" ? last : prev?.last || null });
  renderAlerts();
  return prev !== undefined;
}

/** Every second: ages and escalation countdowns, without rebuilding anything. */
export function tickAlerts(): void {
  for (const s of document.querySelectorAll<HTMLElement>("#alert-list [data-raised]")) s.textContent = `raised ${age(s.dataset.raised)}`;
  for (const li of document.querySelectorAll<HTMLElement>("#alert-list li[data-alert]")) {
    const a = alerts.get(Number(li.dataset.alert))?.alert;
    const c = li.querySelector("[data-countdown]");
    if (a && c) c.textContent = countdown(a) || "";
  }
}
