// The patient page's "Record access", for admins (the ward manager, the
// trust's information-governance lead): who has opened this patient's record
// and what they did, from the audit trail (GET /api/v1/audit?patient=),
// newest first as the server gives it. Reading the trail is itself audited
// (`audit.read`), so it is read only when asked, never on opening the page;
// it is collapsed again whenever the page shows another patient or the
// user signs out. Hidden, and never read, for anyone but an admin.
import { api } from "./api";
import { isAdmin } from "./admission";
import { $, el, timeEl, utcDays, when } from "./format";
import type { AuditEntry, Me } from "./types";

/** The newest this many entries are read (the server's default; one look at a patient's page is five or six). */
export const ACCESS_LIMIT = 1000;

/**
 * Entries by one person from one address no further apart than this are
 * one visit, shown as one row. A look at a patient's page is five or six
 * entries (the record, the readings, the NEWS2 history twice, the notes, the
 * alerts), and each change of the charts' range three more: listed one by
 * one, a morning's ward round buried who had looked under what they read.
 */
export const VISIT_GAP_MS = 10 * 60_000;

/** What each audited action means, in plain words. Unknown ones show as their code. */
const ACTION_WORDS: Record<string, string> = {
  "patient.read": "opened the record",
  "patient.observations": "read the readings",
  "patient.scores": "read the NEWS2 history",
  "patient.ecg": "read the ECG",
  "patient.notes": "read the notes",
  "note.add": "wrote a note",
  "patient.episode": "changed the clinical assessment",
  "patient.observations.enter": "entered readings",
  "patient.admit": "admitted the patient",
  "patient.discharge": "discharged the patient",
  "alerts.list": "read the alerts",
  "alert.read": "read an alert",
  "alert.acknowledged": "acknowledged an alert",
  "alert.escalated": "escalated an alert",
  "alert.resolved": "resolved an alert",
  // (the names in the store's documentation)
  "alert.acknowledge": "acknowledged an alert",
  "alert.escalate": "escalated an alert",
  "alert.resolve": "resolved an alert",
  "device.provision": "provisioned a device",
  "device.assign": "gave a device",
  "device.unassign": "took a device back",
  "device.revoke": "revoked a device",
  "audit.read": "looked at this list",
};

/** What a FHIR read (`fhir.<resource>.read`) took. */
const FHIR_WORDS: Record<string, string> = {
  patient: "the record",
  observation: "the readings",
  communication: "the notes",
  flag: "the alerts",
  episodeofcare: "the stay",
  "discharge-bundle": "the discharge summary",
};

/** The CLI's entries are under this name (run on the server, by whoever can reach its database). */
const CLI_USER = "vigil-admin";

const section = $("access");
const showButton = $("access-show") as HTMLButtonElement;
const refreshButton = $("access-refresh") as HTMLButtonElement;
const hideButton = $("access-hide") as HTMLButtonElement;
const list = $("access-list");
const status = $("access-status");
const daysForm = $("access-days") as HTMLFormElement;
const fromDay = $("access-from") as HTMLInputElement;
const toDay = $("access-to") as HTMLInputElement;

/** The UTC days looked through (`YYYY-MM-DD`, the last included), with their query's ends, or none: the newest entries. */
let days: { first: string; last: string; from: string; to: string } | null = null;

let patientId: number | null = null;
let nameOf: () => string = () => "";
let open = false;
let loading = 0; // increments per read and on closing, so a late answer is dropped

/** The action in plain words; an unknown one as its code. */
export function actionWords(action: string, detail: unknown): string {
  const d = (detail && typeof detail === "object" ? detail : {}) as Record<string, unknown>;
  const fhir = /^fhir\.(.+)\.read$/.exec(action);
  let words = fhir
    ? `read ${FHIR_WORDS[fhir[1]] || fhir[1]} through the FHIR API (another system)`
    : ACTION_WORDS[action] || action;
  if (action.startsWith("device.") && typeof d.device === "string") words += ` (${d.device})`;
  return words;
}

function who(e: AuditEntry): string {
  if (e.username !== CLI_USER || e.user_id !== null) return e.username;
  const os = e.detail && typeof e.detail === "object" ? (e.detail as { os_user?: unknown }).os_user : undefined;
  return `${CLI_USER} (command line on the server${typeof os === "string" && os ? `, as ${os}` : ""})`;
}

/**
 * A patient's page shows: for an admin, the section, collapsed (nothing
 * read); for anyone else, none of it. `name` gives the patient's name as the
 * page knows it when the table is drawn.
 */
export function showAccess(me: Me | null, id: number, name: () => string): void {
  closeAccess();
  if (!isAdmin(me)) return;
  patientId = id;
  nameOf = name;
  section.hidden = false;
}

/** Another patient, the ward, or signed out: collapsed and hidden, nothing of it left on the page. */
export function closeAccess(): void {
  loading++;
  patientId = null;
  section.hidden = true;
  collapse();
}

function collapse(): void {
  open = false;
  loading++;
  days = null;
  fromDay.value = "";
  toDay.value = "";
  list.hidden = true;
  $("access-table").querySelector("tbody")!.replaceChildren();
  $("access-caption").textContent = "";
  $("access-count").textContent = "";
  status.textContent = "";
  showButton.hidden = false;
  refreshButton.hidden = true;
  hideButton.hidden = true;
}

async function read(): Promise<void> {
  const id = patientId;
  if (id === null || !open) return;
  const load = ++loading;
  status.textContent = "Reading the audit trail…";
  try {
    const period = days ? `&from=${encodeURIComponent(days.from)}&to=${encodeURIComponent(days.to)}` : "";
    const asked = days;
    const rows = await api<AuditEntry[]>(`/api/v1/audit?patient=${id}&limit=${ACCESS_LIMIT}${period}`);
    if (load !== loading) return;
    draw(rows, asked);
    status.textContent = "";
  } catch (e) {
    // A table already shown stays, as it was read.
    if (load === loading) status.textContent = `Could not read who opened this record: ${(e as Error).message}.`;
  }
}

/**
 * The entries (newest first, as served) in visits, newest first, each's
 * entries newest first: consecutive entries by the same person from the
 * same address at most VISIT_GAP_MS apart. Nothing is dropped or reordered.
 */
export function visits(rows: AuditEntry[]): AuditEntry[][] {
  const out: AuditEntry[][] = [];
  for (const e of rows) {
    const v = out[out.length - 1], last = v?.[v.length - 1];
    if (last && who(last) === who(e) && last.addr === e.addr && Date.parse(last.at) - Date.parse(e.at) <= VISIT_GAP_MS) v.push(e);
    else out.push([e]);
  }
  return out;
}

/** A visit's row: its span, who, what they did (each kind once, oldest first, with how many times), from where. */
function visitRow(v: AuditEntry[]): HTMLTableRowElement {
  const tr = el("tr");
  const latest = v[0], earliest = v[v.length - 1];
  const at = el("td");
  // A time on the visit's first day without the date again.
  const day = new Date(earliest.at).toDateString();
  const short = (ts: string) => (new Date(ts).toDateString() === day
    ? new Date(ts).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : when(ts, true));
  const start = when(earliest.at, true), end = short(latest.at);
  at.append(timeEl(earliest.at, start));
  // Its end as well, unless it reads the same (within the second).
  if (!start.endsWith(end)) at.append(" to ", timeEl(latest.at, end));
  const words = v.map((e) => actionWords(e.action, e.detail)).reverse();
  const counts = new Map<string, number>();
  for (const w of words) counts.set(w, (counts.get(w) || 0) + 1);
  const what = el("td");
  what.append(el("span", "did", [...counts].map(([w, n]) => (n > 1 ? `${w} (${n} times)` : w)).join(", ")));
  if (v.length > 1) {
    // Each entry, for an investigation that needs the moment of each read.
    const details = el("details");
    details.append(el("summary", "", `${v.length} entries`));
    const ol = el("ol");
    ol.append(...[...v].reverse().map((e) => {
      const li = el("li");
      li.dataset.action = e.action;
      li.append(timeEl(e.at, short(e.at)), ` ${actionWords(e.action, e.detail)}`);
      return li;
    }));
    details.append(ol);
    what.append(details);
  }
  tr.dataset.actions = v.map((e) => e.action).join(" ");
  tr.append(at, el("td", "", who(latest)), what, el("td", "", latest.addr || "—"));
  return tr;
}

function draw(rows: AuditEntry[], period: typeof days): void {
  const body = $("access-table").querySelector("tbody")!;
  const vs = visits(rows);
  body.replaceChildren(...vs.map(visitRow));
  $("access-caption").textContent = `Who opened ${nameOf() || "this patient"}'s record, and what they did, newest first: `
    + `one row per visit (one person, from one address, no more than ${VISIT_GAP_MS / 60_000} minutes between entries).`;
  const n = rows.length;
  const entries = `${n} entr${n === 1 ? "y" : "ies"} in ${vs.length} visit${vs.length === 1 ? "" : "s"}`;
  const span = period ? (period.first === period.last ? ` on ${period.first}` : ` from ${period.first} to ${period.last}`) : "";
  $("access-count").textContent = period
    ? (n === 0
      ? `No entries${span} (UTC).`
      : n >= ACCESS_LIMIT
        ? `${entries} shown${span} (UTC): the newest ${ACCESS_LIMIT} of those days. Choose fewer days to see the rest.`
        : `${entries} shown${span} (UTC): all there are in those days.`)
    : n === 0
      ? "No entries: no one has opened this record yet."
      : n >= ACCESS_LIMIT
        ? `${entries} shown: the newest ${ACCESS_LIMIT} entries. Choose days above to look further back.`
        : `${entries} shown: all there are.`;
  list.hidden = false;
}

showButton.addEventListener("click", () => {
  if (patientId === null) return;
  open = true;
  showButton.hidden = true;
  refreshButton.hidden = false;
  hideButton.hidden = false;
  // The button pressed is gone: the keyboard goes on to the one in its place.
  refreshButton.focus();
  void read();
});
refreshButton.addEventListener("click", () => { void read(); });
daysForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  // The audit API's `to` is inclusive: the last millisecond of the last day.
  const chosen = utcDays(fromDay.value, toDay.value, true);
  if ("problem" in chosen) {
    status.textContent = chosen.problem;
    (chosen.at === "first" ? fromDay : toDay).focus();
    return;
  }
  days = { first: fromDay.value, last: toDay.value, ...chosen };
  void read();
});
$("access-newest").addEventListener("click", () => {
  days = null;
  fromDay.value = "";
  toDay.value = "";
  void read();
});
hideButton.addEventListener("click", () => {
  collapse();
  showButton.focus();
});
