// The alert queue's "Handover: the last 12 hours": what the shift going off
// dealt with, and how, for the one coming on: the alerts it resolved
// (GET /api/v1/alerts/resolved), the notes it wrote (GET
// /api/v1/patients/notes) and the escalation plans it recorded, reviewed
// or cleared (GET /api/v1/patients/plans: whose agreed response changed);
// and, ahead, the follow-ups due in as many hours (GET
// /api/v1/patients/follow-ups: the calls the shift coming on inherits). Twelve hours is a shift; the team coming on after
// a day off, or a weekend, can widen it to 24 hours or 3 days. Loaded when
// opened or widened, again when an alert is resolved or a note written, and
// every 5 minutes while open (as the ward list), so what is older than the
// window leaves it; each load is a read of patient data on the audit trail.
import { api } from "./api";
import { $, el, nhsFormat, span, when } from "./format";
import { OUTCOMES } from "./alerts";
import { PLANS } from "./plan";
import type { Alert, FollowUp, Note } from "./types";

interface Resolved extends Alert { patient_name: string; nhs_number: string; resolved_by: string }
interface WardNote extends Note { ward_id: number; patient_name: string; nhs_number: string }
interface WardFollowUp extends FollowUp { ward_id: number; patient_name: string; nhs_number: string }
interface WardPlan {
  patient_id: number; ward_id: number; patient_name: string; nhs_number: string;
  escalation_plan: string | null; escalation_note: string | null; set_by: string; set_at: string;
}

/** The outcomes a person chooses, and the ones Vigil sets itself (alerts.md): also the ward report's words. */
export const OUTCOME_TEXT: Record<string, string> = {
  ...Object.fromEntries(OUTCOMES),
  "other": "Other",
  "discharged": "Patient discharged",
  "data-resumed": "Readings resumed",
  "device-unassigned": "Device unassigned",
};

const section = $("handover-section") as HTMLDetailsElement;
const hoursSelect = $("handover-hours") as HTMLSelectElement;
let loading = 0;

/** The window chosen, in words: "the last 24 hours", "the last 3 days" (or "the next …"). */
function windowText(hours: number, which = "last"): string {
  return hours % 24 === 0 && hours > 24 ? `the ${which} ${hours / 24} days` : `the ${which} ${hours} hours`;
}

/** Name the window in the summary and both captions; returns its words. */
function showWindow(hours: number): string {
  const span = windowText(hours);
  $("handover-span").textContent = span;
  for (const s of section.querySelectorAll(".handover-window")) s.textContent = span;
  for (const s of section.querySelectorAll(".handover-ahead")) s.textContent = windowText(hours, "next");
  return span;
}

export async function refreshHandover(): Promise<void> {
  if (!section.open) return;
  const hours = Number(hoursSelect.value) || 12;
  const span = showWindow(hours);
  const load = ++loading;
  await Promise.all([
    fill("handover", `/api/v1/alerts/resolved?hours=${hours}`, resolvedRow,
      `No alerts resolved in ${span}.`, "the resolved alerts", load),
    fill("handover-notes", `/api/v1/patients/notes?hours=${hours}`, noteRow,
      `No notes written in ${span}.`, "the notes", load),
    fill("handover-plans", `/api/v1/patients/plans?hours=${hours}`, planRow,
      `No escalation plans recorded, reviewed or cleared in ${span}.`, "the escalation plans", load),
    fill("handover-follow-ups", `/api/v1/patients/follow-ups?hours=${hours}`, followUpRow,
      `No follow-ups due in ${windowText(hours, "next")}.`, "the follow-ups", load),
  ]);
}

async function fill<T>(table: string, path: string, row: (x: T) => HTMLTableRowElement,
  none: string, what: string, load: number): Promise<void> {
  const status = $(`${table}-status`);
  try {
    const rows = await api<T[]>(path);
    if (load !== loading) return;
    $(table).querySelector("tbody")!.replaceChildren(...rows.map(row));
    status.textContent = rows.length ? "" : none;
  } catch (e) {
    if (load === loading) status.textContent = `Could not load ${what}: ${(e as Error).message}.`;
  }
}

/** The patient, named with their NHS number and linked to their page. */
function patientCell(id: number, name: string, nhs: string): HTMLTableCellElement {
  const th = el("th");
  th.scope = "row";
  const link = el("a", "", name);
  link.href = `#/patients/${id}`;
  th.append(link, el("br"), span("nhs", `NHS ${nhsFormat(nhs)}`));
  return th;
}

function resolvedRow(a: Resolved): HTMLTableRowElement {
  const tr = el("tr", `sev-${a.severity}`);
  tr.dataset.alert = String(a.id);
  const alert = el("td");
  alert.append(span("severity", a.severity), " ", span("rule", a.rule_id), el("br"), span("message", a.message));
  tr.append(
    el("td", "", a.resolved_at ? when(a.resolved_at) : ""),
    patientCell(a.patient_id, a.patient_name, a.nhs_number),
    alert,
    el("td", "", OUTCOME_TEXT[a.outcome || ""] || a.outcome || ""),
    el("td", "note", a.note || ""),
    el("td", "", a.resolved_by),
  );
  return tr;
}

function noteRow(n: WardNote): HTMLTableRowElement {
  const tr = el("tr");
  tr.dataset.note = String(n.id);
  tr.append(el("td", "", when(n.at)), patientCell(n.patient_id, n.patient_name, n.nhs_number),
    el("td", "note", n.text), el("td", "", n.author));
  return tr;
}

function followUpRow(f: WardFollowUp): HTMLTableRowElement {
  const tr = el("tr");
  tr.dataset.followUp = String(f.id);
  tr.append(el("td", "", when(f.due_at)), patientCell(f.patient_id, f.patient_name, f.nhs_number),
    el("td", "note", f.reason), el("td", "", `${f.set_by}, ${when(f.set_at)}`));
  return tr;
}

function planRow(p: WardPlan): HTMLTableRowElement {
  const tr = el("tr");
  tr.dataset.patient = String(p.patient_id);
  const plan = p.escalation_plan
    ? el("td", `plan ${p.escalation_plan}`, PLANS[p.escalation_plan]?.words ?? p.escalation_plan)
    : el("td", "plan none", "Cleared: none recorded now");
  tr.append(el("td", "", when(p.set_at)), patientCell(p.patient_id, p.patient_name, p.nhs_number),
    plan, el("td", "note", p.escalation_note || ""), el("td", "", p.set_by));
  return tr;
}

section.addEventListener("toggle", () => { void refreshHandover(); });
hoursSelect.addEventListener("change", () => { void refreshHandover(); });
setInterval(() => { void refreshHandover(); }, 5 * 60_000);

/** Signed out: nothing of these patients stays on the page. */
export function clearHandover(): void {
  loading++;
  section.open = false;
  // The next user starts on a shift's worth.
  hoursSelect.value = "12";
  showWindow(12);
  for (const table of ["handover", "handover-notes", "handover-plans", "handover-follow-ups"]) {
    $(table).querySelector("tbody")!.replaceChildren();
    $(`${table}-status`).textContent = "";
  }
}
