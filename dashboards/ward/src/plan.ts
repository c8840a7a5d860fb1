// The stay's treatment escalation plan: what was agreed with the patient
// about where they are cared for if they deteriorate. The plan itself (a
// ReSPECT form, a treatment escalation plan) is kept elsewhere; Vigil
// keeps its summary, so whoever answers an alert at 3 a.m. knows which
// response was agreed: on the patient's page (recorded here, through
// PATCH /api/v1/patients/{id}/episode), on the ward list and on each of
// the patient's clinical alerts. It changes nothing Vigil scores or alerts
// on (hazard DB-24, docs/clinical.md).
import { recordEpisode } from "./api";
import { $, when } from "./format";
import type { EpisodeSettings } from "./types";

/** Each plan: a few words for the ward list, and the plan in full. */
export const PLANS: Record<string, { short: string; words: string }> = {
  hospital: { short: "For hospital", words: "For transfer to hospital if they deteriorate" },
  home: { short: "Treat at home", words: "For treatment at home: not for transfer to hospital" },
  comfort: { short: "Comfort care", words: "For comfort care at home (end of life)" },
};

/** The plan and its details in a sentence, or that none is recorded (never left out). */
export function planLine(plan: string | null | undefined, note: string | null | undefined): string {
  if (!plan) return "No escalation plan recorded.";
  const details = note ? ` ${note}${/[.!?]$/.test(note) ? "" : "."}` : "";
  return `Escalation plan: ${PLANS[plan]?.words ?? plan}.${details}`;
}

/** The ward list's few words. */
export function planShort(plan: string | null | undefined): string {
  return plan ? PLANS[plan]?.short ?? plan : "No plan recorded";
}

/** Only the plan's fields, to tell a change of plan from another change to the episode. */
const planOf = (s: EpisodeSettings): string =>
  JSON.stringify([s.escalation_plan, s.escalation_note, s.escalation_set_by, s.escalation_set_at]);

const section = $("plan");
const form = $("plan-form") as HTMLFormElement;
const note = $("plan-note") as HTMLInputElement;
const clear = $("plan-clear") as HTMLButtonElement;
const status = $("plan-status");
const recordedLine = $("plan-recorded");

let shown: { patient: number; settings: EpisodeSettings } | null = null;
let edited = false;
let recording = false;

const radios = (): HTMLInputElement[] => [...form.querySelectorAll<HTMLInputElement>("input[name=plan]")];
const chosen = (): string | null => radios().find((r) => r.checked)?.value ?? null;

/** Show the plan of a patient's open stay, or hide the section (no open stay). */
export function showPlan(patient: number, settings: EpisodeSettings | null | undefined): void {
  status.textContent = "";
  edited = false;
  if (!settings) { hidePlan(); return; }
  shown = { patient, settings };
  section.hidden = false;
  fill(settings, true);
}

export function hidePlan(): void { shown = null; section.hidden = true; }

/**
 * Someone recorded the patient's episode (pushed to every open page). A
 * change of plan shows at once; while this user is changing the form,
 * their choices stay and they are told.
 */
export function planRecorded(patient: number, settings: EpisodeSettings): void {
  if (recording || shown?.patient !== patient) return;
  const changed = planOf(shown.settings) !== planOf(settings);
  shown.settings = settings;
  if (!changed) return;
  fill(settings, !edited);
  status.textContent = edited
    ? "Someone else recorded this patient's escalation plan meanwhile (the line above): check yours before recording it."
    : "Updated: recorded by someone else just now.";
}

function fill(s: EpisodeSettings, andForm: boolean): void {
  const by = s.escalation_set_by ? ` Recorded by ${s.escalation_set_by}${s.escalation_set_at ? `, ${when(s.escalation_set_at)}` : ""}.` : "";
  recordedLine.textContent = s.escalation_plan
    ? `${planLine(s.escalation_plan, s.escalation_note)}${by}`
    : `${planLine(null, null)}${s.escalation_set_by ? ` Cleared by ${s.escalation_set_by}${s.escalation_set_at ? `, ${when(s.escalation_set_at)}` : ""}.` : ""}`;
  recordedLine.classList.toggle("missing", !s.escalation_plan);
  clear.hidden = !s.escalation_plan;
  if (!andForm) return;
  for (const r of radios()) r.checked = r.value === s.escalation_plan;
  note.value = s.escalation_note ?? "";
}

form.addEventListener("input", () => { edited = true; });
form.addEventListener("change", () => { edited = true; });
form.addEventListener("submit", (e) => {
  e.preventDefault();
  const plan = chosen();
  if (!plan) {
    status.textContent = "Choose the plan to record it.";
    radios()[0]?.focus();
    return;
  }
  const details = note.value.trim();
  // The plan as recorded, recorded again: a review that found it still
  // right, kept as who reviewed it and when (plans are reviewed, and a
  // line saying who agreed it months ago is worth less than one of today).
  const reviewed = !!shown && plan === shown.settings.escalation_plan && details === (shown.settings.escalation_note ?? "");
  void record({ escalation_plan: plan, ...(details ? { escalation_note: details } : {}) }, reviewed);
});
clear.addEventListener("click", () => { void record({ escalation_plan: "not-recorded" }); });

async function record(change: { escalation_plan: string; escalation_note?: string }, reviewed = false): Promise<void> {
  if (!shown) return;
  const { patient } = shown;
  status.textContent = "Recording…";
  recording = true;
  try {
    const next = await recordEpisode(patient, change)
      .finally(() => { recording = false; });
    if (shown?.patient !== patient) return;
    shown.settings = next;
    edited = false;
    fill(next, true);
    status.textContent = !next.escalation_plan ? "Cleared: no escalation plan recorded."
      : reviewed ? "Reviewed: the plan is unchanged, recorded again with your name and the time."
        : `Recorded: ${planLine(next.escalation_plan, next.escalation_note)}`;
    if (!next.escalation_plan) radios()[0]?.focus(); // the Clear button pressed is gone
  } catch (err) {
    if (shown?.patient === patient) status.textContent = `Not recorded: ${(err as Error).message}.`;
  }
}
