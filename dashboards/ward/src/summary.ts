// The patient's "Summary for a call or a transfer": the open stay as text
// (GET /api/v1/patients/{id}/summary), in the order of SBAR, for the nurse
// to read out on a call to 999 or the hospital team, or to paste into a
// referral. The server writes it from the record (docs/clinical.md, hazard
// DB-25); the page only shows it, copies it, and says when the record has
// changed since it was written, so that an old summary is not read out as
// the patient now.
import { apiText } from "./api";
import { $ } from "./format";

const section = $("summary");
const writeButton = $("summary-write") as HTMLButtonElement;
const copyButton = $("summary-copy") as HTMLButtonElement;
const hideButton = $("summary-hide") as HTMLButtonElement;
const text = $("summary-text");
const status = $("summary-status");
const outdated = $("summary-outdated");

let patient: number | null = null;
let loading = 0;

/** The section for a patient's open stay, collapsed; `null` (no open stay, another page): hidden. */
export function showSummary(id: number | null): void {
  collapse();
  patient = id;
  section.hidden = id === null;
}

/** Something of the patient's record changed: a summary on show is out of date. */
export function summaryChanged(id: number): void {
  if (id !== patient || text.hidden) return;
  text.classList.add("outdated");
  outdated.hidden = false;
}

function collapse(): void {
  loading++;
  text.textContent = "";
  text.hidden = true;
  text.classList.remove("outdated");
  outdated.hidden = true;
  copyButton.hidden = true;
  hideButton.hidden = true;
  writeButton.textContent = "Write the summary";
  writeButton.disabled = false;
  status.textContent = "";
}

async function write(): Promise<void> {
  const id = patient;
  if (id === null) return;
  const n = ++loading;
  writeButton.disabled = true;
  status.textContent = "Writing…";
  try {
    const t = await apiText(`/api/v1/patients/${id}/summary`);
    if (n !== loading) return;
    text.textContent = t;
    text.hidden = false;
    text.classList.remove("outdated");
    outdated.hidden = true;
    copyButton.hidden = false;
    hideButton.hidden = false;
    writeButton.textContent = "Write it again";
    status.textContent = "";
  } catch (e) {
    if (n === loading) status.textContent = `Could not write the summary: ${(e as Error).message}.`;
  } finally {
    if (n === loading) writeButton.disabled = false;
  }
}

/** Copy what is shown (what was read, not a newer summary); where the page may not write the clipboard, select it. */
async function copy(): Promise<void> {
  try {
    await navigator.clipboard.writeText(text.textContent || "");
    status.textContent = outdated.hidden ? "Copied." : "Copied, as written before the latest changes.";
  } catch {
    const range = document.createRange();
    range.selectNodeContents(text);
    const sel = window.getSelection();
    sel?.removeAllRanges();
    sel?.addRange(range);
    text.focus();
    status.textContent = "This page may not copy for you: the summary is selected, copy it with Ctrl+C.";
  }
}

writeButton.addEventListener("click", () => void write());
copyButton.addEventListener("click", () => void copy());
hideButton.addEventListener("click", () => { collapse(); writeButton.focus(); });
