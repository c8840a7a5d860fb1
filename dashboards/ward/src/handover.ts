// The alert queue's "Resolved in the last 12 hours": what the shift going
// off dealt with, and how, for the one coming on (GET /api/v1/alerts/resolved).
// Loaded when opened, again when an alert is resolved, and every 5 minutes
// while open (as the ward list), so an alert resolved more than 12 hours ago
// leaves it; each load is a read of patient data on the audit trail.
import { api } from "./api";
import { $, el, nhsFormat, span, when } from "./format";
import { OUTCOMES } from "./alerts";
import type { Alert } from "./types";

interface Resolved extends Alert { patient_name: string; nhs_number: string; resolved_by: string }

/** The outcomes a person chooses, and the ones Vigil sets itself (alerts.md). */
const OUTCOME_TEXT: Record<string, string> = {
  ...Object.fromEntries(OUTCOMES),
  "other": "Other",
  "discharged": "Patient discharged",
  "data-resumed": "Readings resumed",
  "device-unassigned": "Device unassigned",
};

const HOURS = 12;
const section = $("handover-section") as HTMLDetailsElement;
let loading = 0;

export async function refreshHandover(): Promise<void> {
  if (!section.open) return;
  const load = ++loading;
  const status = $("handover-status");
  try {
    const rows = await api<Resolved[]>(`/api/v1/alerts/resolved?hours=${HOURS}`);
    if (load !== loading) return;
    $("handover").querySelector("tbody")!.replaceChildren(...rows.map(row));
    status.textContent = rows.length ? "" : `No alerts resolved in the last ${HOURS} hours.`;
  } catch (e) {
    if (load === loading) status.textContent = `Could not load the resolved alerts: ${(e as Error).message}.`;
  }
}

function row(a: Resolved): HTMLTableRowElement {
  const tr = el("tr", `sev-${a.severity}`);
  tr.dataset.alert = String(a.id);
  const patient = el("th");
  patient.scope = "row";
  const link = el("a", "", a.patient_name);
  link.href = `#/patients/${a.patient_id}`;
  patient.append(link, el("br"), span("nhs", `NHS ${nhsFormat(a.nhs_number)}`));
  const alert = el("td");
  alert.append(span("severity", a.severity), " ", span("rule", a.rule_id), el("br"), span("message", a.message));
  tr.append(
    el("td", "", a.resolved_at ? when(a.resolved_at) : ""),
    patient,
    alert,
    el("td", "", OUTCOME_TEXT[a.outcome || ""] || a.outcome || ""),
    el("td", "note", a.note || ""),
    el("td", "", a.resolved_by),
  );
  return tr;
}

section.addEventListener("toggle", () => { void refreshHandover(); });
setInterval(() => { void refreshHandover(); }, 5 * 60_000);

/** Signed out: nothing of these patients stays on the page. */
export function clearHandover(): void {
  loading++;
  section.open = false;
  $("handover").querySelector("tbody")!.replaceChildren();
  $("handover-status").textContent = "";
}
