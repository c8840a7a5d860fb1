// The patient page's "Enter readings": vital signs a clinician took or was
// told (breaths counted on a video call, a blood pressure read out over the
// phone) for a patient on the ward. The server validates them as a device's,
// stores them with the clinician as their source, and scores and alerts on
// them as it does a device's (hazard DB-17); they reach the charts over the
// websocket like any reading.
import { ApiError, api } from "./api";
import { $, when } from "./format";

interface Entered { patient_id: number; measured_at: string; source: string; observation_ids: number[] }

const form = $("entry-form") as HTMLFormElement;
const whenInput = $("entry-when") as HTMLInputElement;
let patientId: number | null = null;

function fields(): HTMLInputElement[] { return [...form.querySelectorAll<HTMLInputElement>("input[data-code]")]; }
/** The field's label without its unit: "Respiration rate". */
function label(i: HTMLInputElement): string { return (i.parentElement?.firstChild?.textContent || i.dataset.code || "").trim(); }

/** Offered for a patient on the ward (an open stay); hidden otherwise. */
export function showEntry(id: number | null): void {
  if (id !== patientId) {
    for (const i of fields()) i.value = "";
    whenInput.value = "";
    $("entry-error").textContent = "";
    $("entry-status").textContent = "";
  }
  patientId = id;
  $("entry").hidden = id == null;
}

/** A server refusal in the words of the form: `obs "spo2": range` names the field. */
function explain(message: string): string {
  const m = /^obs "([^"]+)": (\w+)$/.exec(message);
  if (!m) return message;
  const field = fields().find((i) => i.dataset.code === m[1]);
  const name = field ? label(field) : m[1];
  const why: Record<string, string> = {
    range: `is outside what any device could read: check the number`,
    value_type: "must be a number",
    unit: "has the wrong unit",
    unknown_code: "is not a reading Vigil knows",
  };
  return `${name} ${why[m[2]] || m[2]}`;
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const id = patientId;
  if (id == null) return;
  $("entry-error").textContent = "";
  $("entry-status").textContent = "";
  const obs: { code: string; value: number; unit: string }[] = [];
  for (const i of fields()) {
    const text = i.value.trim().replace(",", ".");
    if (!text) continue;
    const value = Number(text);
    if (!Number.isFinite(value)) {
      $("entry-error").textContent = `${label(i)} must be a number.`;
      i.focus();
      return;
    }
    obs.push({ code: i.dataset.code!, value, unit: i.dataset.unit! });
  }
  if (!obs.length) { $("entry-error").textContent = "Enter at least one reading."; fields()[0].focus(); return; }
  const body: { obs: typeof obs; measured_at?: string } = { obs };
  if (whenInput.value) body.measured_at = new Date(whenInput.value).toISOString();
  const button = form.querySelector("button")!;
  button.disabled = true;
  try {
    const r = await api<Entered>(`/api/v1/patients/${id}/observations`, { method: "POST", body: JSON.stringify(body) });
    if (patientId !== id) return;
    const what = fields().filter((i) => i.value.trim()).map((i) => `${label(i)} ${i.value.trim()}`).join(", ");
    for (const i of fields()) i.value = "";
    whenInput.value = "";
    $("entry-status").textContent = `Entered, measured ${when(r.measured_at)}: ${what}.`;
  } catch (err) {
    // What was typed stays, to be corrected. A server error may come after
    // the commit: the readings may be stored all the same.
    $("entry-error").textContent = err instanceof ApiError && err.status >= 500
      ? "Not confirmed: the readings may have been stored all the same. Look at the charts before entering them again."
      : `Not entered: ${explain((err as Error).message)}.`;
  } finally {
    button.disabled = false;
  }
});
