// The patient page's notes: what clinicians wrote on the record (a call, the
// advice given, a plan), the newest first, and a form to add one. Notes are
// never edited or deleted (the server refuses both); a correction is a new
// note. Another user's note comes over the websocket (`note`).
import { api } from "./api";
import { $, el, span, when } from "./format";
import type { Note } from "./types";

const form = $("note-form") as HTMLFormElement;
const text = $("note-text") as HTMLTextAreaElement;
let patientId: number | null = null;
let shown = new Map<number, Note>();
/** A note typed but not added, per patient, kept while the user looks elsewhere. */
const drafts = new Map<number, string>();

/** Show a patient's notes, and the form to add one. */
export async function showNotes(id: number): Promise<void> {
  patientId = id;
  text.value = drafts.get(id) || "";
  shown = new Map();
  $("note-error").textContent = "";
  $("notes-status").textContent = "Loading notes…";
  render();
  try {
    const notes = await api<Note[]>(`/api/v1/patients/${id}/notes`);
    if (patientId !== id) return;
    for (const n of notes) shown.set(n.id, n);
    $("notes-status").textContent = "";
  } catch (e) {
    if (patientId === id) $("notes-status").textContent = `Could not load the notes: ${(e as Error).message}.`;
  }
  render();
}

/** A note written on any page (this one's own answer, or the websocket's). */
export function noteArrived(n: Note): void {
  if (n.patient_id !== patientId || shown.has(n.id)) return;
  shown.set(n.id, n);
  render();
}

/** Off the patient's page: a note being typed is kept for when they come back. */
export function leaveNotes(): void {
  if (patientId != null) {
    if (text.value.trim()) drafts.set(patientId, text.value); else drafts.delete(patientId);
  }
  patientId = null;
  shown = new Map();
  text.value = "";
  render();
}

/** Signed out: nothing of any patient's stays, drafts neither. */
export function clearNotes(): void {
  leaveNotes();
  drafts.clear();
}

function render(): void {
  const items = [...shown.values()].sort((a, b) => b.id - a.id).map((n) => {
    const li = el("li", "note");
    li.dataset.note = String(n.id);
    const meta = el("p", "meta");
    meta.append(span("when", when(n.at)), " · ", span("author", n.author));
    li.append(meta, el("p", "text", n.text));
    return li;
  });
  $("notes").replaceChildren(...items);
  $("no-notes").hidden = items.length > 0 || $("notes-status").textContent !== "";
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const id = patientId;
  const body = text.value.trim();
  if (id == null) return;
  if (!body) { $("note-error").textContent = "Write the note first."; text.focus(); return; }
  const button = form.querySelector("button")!;
  button.disabled = true;
  $("note-error").textContent = "";
  try {
    const n = await api<Note>(`/api/v1/patients/${id}/notes`, { method: "POST", body: JSON.stringify({ text: body }) });
    drafts.delete(id);
    if (patientId === id) text.value = "";
    noteArrived(n);
  } catch (err) {
    // The text stays in the box, so nothing typed is lost.
    $("note-error").textContent = `Not saved: ${(err as Error).message}.`;
  } finally {
    button.disabled = false;
  }
});
