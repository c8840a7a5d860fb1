// The patient page's "Follow-ups": a call or a check a clinician means to
// make later. Asked for here (POST /api/v1/patients/{id}/follow-ups), each
// is listed until it is due; then the server puts a `follow-up` alert in
// the ward's queue (docs/alerts.md "Follow-ups") and it leaves this list.
import { api } from "./api";
import { $, el, span, when } from "./format";
import { summaryChanged } from "./summary";
import { refreshHandover } from "./handover";
import type { FollowUp } from "./types";

const section = $("follow-ups");
const form = $("follow-up-form") as HTMLFormElement;
const inMinutes = $("follow-up-in") as HTMLSelectElement;
const reason = $("follow-up-reason") as HTMLInputElement;
const status = $("follow-up-status");
const list = $("follow-up-list");

let patient: number | null = null;
let loading = 0;

/** The follow-ups of a patient's open stay; `null` (no open stay, another page): hidden. */
export function showFollowUps(id: number | null): void {
  patient = id;
  loading++;
  status.textContent = "";
  reason.value = "";
  list.replaceChildren();
  $("no-follow-ups").hidden = true;
  section.hidden = id === null;
  if (id !== null) void load(id);
}

/** A follow-up of this patient may have become due (its alert came): read the list again. */
export function followUpsChanged(id: number): void {
  if (id === patient) void load(id);
}

async function load(id: number): Promise<void> {
  const n = ++loading;
  try {
    const items = await api<FollowUp[]>(`/api/v1/patients/${id}/follow-ups`);
    if (n !== loading || patient !== id) return;
    render(items);
  } catch (e) {
    if (n === loading) status.textContent = `Could not load the follow-ups: ${(e as Error).message}.`;
  }
}

function render(items: FollowUp[]): void {
  list.replaceChildren(...items.map((f) => {
    const li = el("li", "follow-up");
    li.dataset.followUp = String(f.id);
    const due = el("time", "due", `Due ${when(f.due_at)}`);
    due.dateTime = f.due_at;
    const cancel = el("button", "", "Cancel");
    cancel.type = "button";
    cancel.setAttribute("aria-label", `Cancel the follow-up due ${when(f.due_at)}: ${f.reason}`);
    cancel.addEventListener("click", () => void take(f));
    li.append(due, ": ", span("reason", f.reason), " ", span("by", `(asked for by ${f.set_by}, ${when(f.set_at)})`), " ", cancel);
    return li;
  }));
  $("no-follow-ups").hidden = items.length > 0;
}

async function take(f: FollowUp): Promise<void> {
  const id = patient;
  if (id === null) return;
  status.textContent = "Cancelling…";
  try {
    await api<FollowUp>(`/api/v1/patients/${id}/follow-ups/${f.id}/cancel`, { method: "POST", body: "{}" });
    if (patient !== id) return;
    status.textContent = `Cancelled: the follow-up due ${when(f.due_at)}.`;
  } catch (e) {
    if (patient === id) status.textContent = `Not cancelled: ${(e as Error).message}.`;
  }
  if (patient === id) { summaryChanged(id); await load(id); }
  void refreshHandover();
  reason.focus();
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const id = patient;
  if (id === null) return;
  const what = reason.value.trim();
  if (!what) {
    status.textContent = "Say what the follow-up is for.";
    reason.focus();
    return;
  }
  status.textContent = "Asking…";
  void api<FollowUp>(`/api/v1/patients/${id}/follow-ups`, { method: "POST",
    body: JSON.stringify({ in_minutes: Number(inMinutes.value), reason: what }) })
    .then(async (f) => {
      if (patient !== id) return;
      reason.value = "";
      status.textContent = `Asked for: due ${when(f.due_at)}. It goes to the ward's alert queue then.`;
      summaryChanged(id);
      void refreshHandover();
      await load(id);
    }, (err) => {
      if (patient === id) status.textContent = `Not asked for: ${(err as Error).message}.`;
    });
});
