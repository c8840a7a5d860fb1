// The patient page's clinical assessment: what NEWS2 needs and no device
// measures (air or oxygen; consciousness when the hub has not asked), the
// SpO2 scale, and whether NEWS2 applies at all. A clinician records it here;
// the server keeps each entry with who and when, and scores again at once
// (PATCH /api/v1/patients/{id}/episode, docs/http.md). Also how often this
// patient's readings are expected, which the missed-reading alerts follow
// instead of the pathway's interval.
import { recordEpisode } from "./api";
import { $, el, when } from "./format";
import type { EpisodeSettings } from "./types";

const ACVPU_WORDS: Record<string, string> = {
  A: "A: alert", C: "C: new confusion", V: "V: responds to voice", P: "P: responds to pain", U: "U: unresponsive",
};

interface Shown {
  patient: number;
  settings: EpisodeSettings;
  /** How long a recorded consciousness level counts in NEWS2 (the pathway's freshness), seconds. */
  freshnessS: number | null;
  changed: (s: EpisodeSettings) => Promise<void>;
}
let shown: Shown | null = null;

const form = $("assessment-form") as HTMLFormElement;
const status = $("assessment-status");
const confirmBox = $("a-confirm") as HTMLInputElement;
const confirmLabel = $("a-confirm-label");
const acvpu = $("a-acvpu") as HTMLSelectElement;
const under16 = $("a-under16") as HTMLInputElement;
const pregnant = $("a-pregnant") as HTMLInputElement;
const obsEvery = $("a-obs-every") as HTMLSelectElement;

function radios(name: string): HTMLInputElement[] {
  return [...form.querySelectorAll<HTMLInputElement>(`input[type=radio][name=${name}]`)];
}
function chosen(name: string): string | null { return radios(name).find((r) => r.checked)?.value ?? null; }
function choose(name: string, value: string | null): void { for (const r of radios(name)) r.checked = r.value === value; }

function by(who: string | null, at: string | null): string {
  return `${who ? ` by ${who}` : ""}${at ? `, ${when(at)}` : ""}`;
}

/** Show the form for a patient's open episode (hidden without one). */
export function showAssessment(patient: number, settings: EpisodeSettings | null | undefined, freshnessS: number | null | undefined,
  changed: (s: EpisodeSettings) => Promise<void>): void {
  const section = $("assessment");
  status.textContent = "";
  edited = false;
  if (!settings) { shown = null; section.hidden = true; return; }
  shown = { patient, settings, freshnessS: freshnessS ?? null, changed };
  section.hidden = false;
  fill(settings);
}

/**
 * Someone recorded the patient's settings (pushed to every open page). The
 * form shows it at once, unless this user has started changing the form:
 * then their choices stay, the "Recorded:" lines change, and they are told.
 */
export function settingsRecorded(patient: number, settings: EpisodeSettings): void {
  // While this page's own change is on its way, its answer fills the form.
  if (recording || shown?.patient !== patient) return;
  const same = assessed(shown.settings) === assessed(settings);
  shown.settings = settings;
  // A change of the escalation plan only is the plan's to show (plan.ts).
  if (same) return;
  if (edited) {
    const mine = { o2: chosen("oxygen"), acvpu: acvpu.value, scale: chosen("scale"), u16: under16.checked, preg: pregnant.checked,
      every: Number(obsEvery.value) };
    fill(settings);
    choose("oxygen", mine.o2); acvpu.value = mine.acvpu; choose("scale", mine.scale);
    under16.checked = mine.u16; pregnant.checked = mine.preg; chooseEvery(mine.every);
    confirmLabel.hidden = !(mine.scale === "2" && settings.spo2_scale !== 2);
    status.textContent = "Someone else recorded this patient's assessment meanwhile (the \"Recorded\" lines): check your changes before recording them.";
  } else {
    fill(settings);
    status.textContent = "Updated: recorded by someone else just now.";
  }
  void shown.changed(settings);
}

/** What this form shows of the settings: all but the escalation plan. */
function assessed(s: EpisodeSettings): string {
  return JSON.stringify({ ...s, escalation_plan: null, escalation_note: null, escalation_set_by: null, escalation_set_at: null });
}

// Whether this user has changed the form since it was last filled, and
// whether their change is being recorded.
let edited = false;
let recording = false;
form.addEventListener("input", () => { edited = true; });
form.addEventListener("change", () => { edited = true; });

export function hideAssessment(): void { shown = null; $("assessment").hidden = true; }

function duration(s: number): string {
  return s % 3600 === 0 ? `${s / 3600} h` : `${Math.round(s / 60)} min`;
}

/**
 * The recorded consciousness level, and until when NEWS2 counts it: like a
 * device's reading, it stops counting after the pathway's freshness window,
 * and NEWS2 is partial from then until it is recorded again.
 */
function acvpuLine(s: EpisodeSettings): void {
  const line = $("a-acvpu-recorded");
  const fresh = shown?.freshnessS;
  if (!s.acvpu) {
    line.textContent = "Not recorded here; NEWS2 uses the hub's answer, if any.";
    line.classList.remove("missing");
    return;
  }
  const recorded = `Recorded: ${ACVPU_WORDS[s.acvpu] ?? s.acvpu}${by(s.acvpu_set_by, s.acvpu_set_at)}`;
  const until = s.acvpu_set_at && fresh != null ? Date.parse(s.acvpu_set_at) + fresh * 1000 : null;
  const stale = until != null && Date.now() > until;
  line.textContent = until == null
    ? `${recorded}. NEWS2 uses this or the hub's later answer.`
    : stale
      ? `${recorded}: older than ${duration(fresh ?? 0)}, so NEWS2 no longer counts it. Choose the level now to record it again.`
      : `${recorded}. NEWS2 counts it until ${when(new Date(until).toISOString())} (${duration(fresh ?? 0)}), or the hub's later answer.`;
  line.classList.toggle("missing", stale);
}
// The line turns when the level stops counting, with the page left open.
setInterval(() => { if (shown) acvpuLine(shown.settings); }, 30_000);

function fill(s: EpisodeSettings): void {
  choose("oxygen", s.oxygen == null ? null : s.oxygen ? "oxygen" : "air");
  const o2 = $("a-oxygen-recorded");
  o2.textContent = s.oxygen == null
    ? "Not recorded: NEWS2 is partial until it is."
    : `Recorded: ${s.oxygen ? "on oxygen" : "on air"}${by(s.oxygen_set_by, s.oxygen_set_at)}.`;
  o2.classList.toggle("missing", s.oxygen == null);
  // Consciousness is assessed at a time, not a standing state like air or
  // oxygen: the list never starts on the last level, and choosing any level
  // (the same one too) records an assessment made now.
  acvpu.value = "";
  acvpuLine(s);
  choose("scale", String(s.spo2_scale));
  $("a-scale-recorded").textContent = s.spo2_scale_set_by
    ? `Recorded: scale ${s.spo2_scale}${by(s.spo2_scale_set_by, s.spo2_scale_set_at)}.`
    : `Scale ${s.spo2_scale}: the default, until a clinician records otherwise.`;
  confirmBox.checked = false;
  confirmLabel.hidden = true;
  under16.checked = s.under_16;
  pregnant.checked = s.pregnant;
  fillEvery(s);
}

/** "every hour", "every 4 hours", "every 90 minutes". */
export function everyWords(minutes: number): string {
  if (minutes === 60) return "every hour";
  return minutes % 60 === 0 ? `every ${minutes / 60} hours` : `every ${minutes} minutes`;
}

/**
 * Select an interval, first adding it to the list if it is none of the
 * usual ones (recorded through the API, say), so what is recorded always
 * shows as it is.
 */
function chooseEvery(minutes: number): void {
  const value = String(minutes);
  if (![...obsEvery.options].some((o) => o.value === value)) {
    const o = el("option", "", everyWords(minutes).replace(/^e/, "E"));
    o.value = value;
    o.dataset.extra = "";
    obsEvery.append(o);
  }
  obsEvery.value = value;
}

function fillEvery(s: EpisodeSettings): void {
  for (const o of obsEvery.querySelectorAll("option[data-extra]")) o.remove();
  chooseEvery(s.obs_every_minutes ?? 0);
  $("a-obs-every-recorded").textContent = s.obs_every_minutes != null
    ? `Recorded: ${everyWords(s.obs_every_minutes)}${by(s.obs_every_set_by, s.obs_every_set_at)}.`
    : s.obs_every_set_by
      ? `Recorded: as the pathway says,${by(s.obs_every_set_by, s.obs_every_set_at)}.`
      : "As the pathway says.";
}

// Scale 2 scores SpO2 88–92 % as 0: chosen for the wrong patient it hides
// hypoxaemia, so it is asked for twice (RCP NEWS2 2017: a clinical
// decision, recorded).
for (const r of radios("scale")) {
  r.addEventListener("change", () => {
    confirmLabel.hidden = !(chosen("scale") === "2" && shown?.settings.spo2_scale !== 2);
  });
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  void record();
});

async function record(): Promise<void> {
  if (!shown) return;
  const { patient, settings: s } = shown;
  const change: Record<string, unknown> = {};
  const o2 = chosen("oxygen");
  if (o2 && (o2 === "oxygen") !== s.oxygen) change.oxygen = o2 === "oxygen";
  if (acvpu.value) change.acvpu = acvpu.value;
  const scale = Number(chosen("scale") ?? s.spo2_scale);
  if (scale !== s.spo2_scale) {
    if (scale === 2 && !confirmBox.checked) {
      status.textContent = "Scale 2 not recorded: tick that a clinician has confirmed hypercapnic respiratory failure.";
      confirmBox.focus();
      return;
    }
    change.spo2_scale = scale;
  }
  if (under16.checked !== s.under_16) change.under_16 = under16.checked;
  if (pregnant.checked !== s.pregnant) change.pregnant = pregnant.checked;
  const every = Number(obsEvery.value);
  if (every !== (s.obs_every_minutes ?? 0)) change.obs_every_minutes = every;
  if (!Object.keys(change).length) { status.textContent = "Nothing to record: nothing was changed."; return; }
  status.textContent = "Recording…";
  recording = true;
  try {
    const next = await recordEpisode(patient, change)
      .finally(() => { recording = false; });
    if (shown?.patient !== patient) return;
    shown.settings = next;
    fill(next);
    edited = false;
    status.textContent = `Recorded: ${describe(change)}. NEWS2 is scored again.`;
    await shown.changed(next);
  } catch (err) {
    if (shown?.patient === patient) status.textContent = `Not recorded: ${(err as Error).message}.`;
  }
}

function describe(c: Record<string, unknown>): string {
  const parts: string[] = [];
  if (c.oxygen !== undefined) parts.push(c.oxygen ? "on oxygen" : "on air");
  if (typeof c.acvpu === "string") parts.push(`consciousness ${ACVPU_WORDS[c.acvpu] ?? c.acvpu}`);
  if (c.spo2_scale !== undefined) parts.push(`SpO2 scale ${c.spo2_scale}`);
  if (c.under_16 !== undefined) parts.push(c.under_16 ? "under 16" : "not under 16");
  if (c.pregnant !== undefined) parts.push(c.pregnant ? "pregnant" : "not pregnant");
  if (typeof c.obs_every_minutes === "number") {
    parts.push(c.obs_every_minutes ? `observations ${everyWords(c.obs_every_minutes)}` : "observations as the pathway says");
  }
  return parts.join(", ");
}
