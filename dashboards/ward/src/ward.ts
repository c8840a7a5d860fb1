// The patients table: sorted by acuity, each reading with its NEWS2
// sub-score as colour and as text, each name a link to the patient page.
import { $, age, el, news2View, RISK_RANK } from "./format";
import { patients, type PatientState } from "./state";

const CODES = ["spo2", "pulse", "resp_rate", "bp", "temp"];
// The NEWS2 row behind each reading column.
const SUB_PARAM: Record<string, string> = { spo2: "spo2", pulse: "pulse", resp_rate: "resp_rate", bp: "systolic", temp: "temp" };

function fmt(latest: PatientState["latest"], code: string): string {
  if (code === "bp") {
    const s = latest.systolic, d = latest.diastolic;
    return s && d ? `${s.value}/${d.value}` : "—";
  }
  const r = latest[code];
  return r ? String(r.value) : "—";
}

export function lastAt(p: PatientState): string | null {
  let t = p.summary.last_reading_at;
  for (const r of Object.values(p.latest)) if (!t || Date.parse(r.at) > Date.parse(t)) t = r.at;
  return t;
}

// Sorting and filtering: acuity (sickest first) unless a header says otherwise.
type SortKey = "news2" | "name" | "pathway" | "last";
const ORDER_TEXT: Record<SortKey, [string, string]> = {
  news2: ["least sick first (NEWS2 risk, then total)", "sickest first (NEWS2 risk, then total)"],
  name: ["by name, A to Z", "by name, Z to A"],
  pathway: ["by pathway, A to Z", "by pathway, Z to A"],
  last: ["oldest last reading first", "newest last reading first"],
};
let sortKey: SortKey = "news2";
let descending = true;
let filter = "";

for (const b of document.querySelectorAll<HTMLButtonElement>("#patients button.sort")) {
  b.addEventListener("click", () => {
    const key = b.dataset.sort as SortKey;
    // A new column starts in its natural order: names A–Z, the sickest and the newest first.
    descending = key === sortKey ? !descending : key === "news2" || key === "last";
    sortKey = key;
    for (const th of document.querySelectorAll<HTMLElement>("#patients thead th[aria-sort]")) {
      const k = th.querySelector<HTMLElement>("button.sort")?.dataset.sort;
      th.setAttribute("aria-sort", k === sortKey ? (descending ? "descending" : "ascending") : "none");
    }
    $("order").textContent = ORDER_TEXT[sortKey][descending ? 1 : 0];
    renderPatients();
  });
}
$("patient-filter").addEventListener("input", (e) => {
  filter = (e.target as HTMLInputElement).value.trim().toLowerCase();
  renderPatients();
});

// One collator for every comparison: String.localeCompare builds one per call.
const collator = new Intl.Collator();

function compare(a: PatientState, b: PatientState): number {
  const byName = collator.compare(a.summary.name, b.summary.name);
  let c: number;
  switch (sortKey) {
    case "name": c = byName; break;
    case "pathway": c = collator.compare(a.summary.pathway, b.summary.pathway) || byName; break;
    case "last": c = (Date.parse(lastAt(a) || "") || 0) - (Date.parse(lastAt(b) || "") || 0); break;
    default: { const [ra, ta] = acuity(a), [rb, tb] = acuity(b); c = ra - rb || ta - tb; }
  }
  // Ties stay in name order whichever way the column is sorted (then by id, so equal names never swap).
  return (descending ? -c : c) || byName || a.summary.id - b.summary.id;
}

function acuity(p: PatientState): [number, number] {
  const s = p.news2;
  if (!s || s.not_applicable || s.total == null) return [0, -1];
  return [RISK_RANK[s.risk || ""] || 0, s.total];
}

// One row element per patient, kept across renders and updated in place, so
// a click that starts while a live update arrives still lands on its row.
const rowsById = new Map<number, HTMLTableRowElement>();
// While the pointer is over the rows their order is held (values still
// update): a row must not move away under a nurse's click. Nor may the
// table itself move: the alert queue above it keeps its height while held
// (a new alert shows inside it, which scrolls), where a new alert used to
// push every row down under the pointer. Both catch up when the pointer
// leaves.
let heldOrder: Map<number, number> | null = null;
{
  const body = $("patients").querySelector("tbody")!;
  const above = $("alerts");
  body.addEventListener("pointerenter", () => {
    heldOrder = new Map([...body.rows].map((tr, i) => [Number(tr.dataset.patient), i]));
    above.style.height = `${above.getBoundingClientRect().height}px`;
    above.classList.add("held");
  });
  body.addEventListener("pointerleave", () => {
    heldOrder = null;
    above.style.removeProperty("height");
    above.classList.remove("held");
    renderPatients();
  });
}

function heldCompare(a: PatientState, b: PatientState): number {
  const ia = heldOrder!.get(a.summary.id) ?? Infinity, ib = heldOrder!.get(b.summary.id) ?? Infinity;
  return ia === ib ? compare(a, b) : ia < ib ? -1 : 1;
}

// Live updates come many times a second on a big ward. They are drawn
// together at most every LIVE_DRAW_MS, touching only the rows of the
// patients they changed (plus the order): redrawing all 500 rows per message
// kept the page busy for longer than messages took to come, and even one
// draw per frame left no time for a nurse's typing (docs/benchmarks.md).
const LIVE_DRAW_MS = 250;
let pendingFlash = new Set<string>();
let pendingRows = new Set<number>();
let timer = 0, frame = 0;

/**
 * Render the table. With `changed` (`patient:code` or `patient:news2` keys,
 * which flash), a live update: drawn within LIVE_DRAW_MS, only those
 * patients' rows. Without, everything now (a reload, a new filter or sort, the ages).
 */
export function renderPatients(changed?: Set<string>): void {
  if (changed) {
    for (const k of changed) { pendingFlash.add(k); pendingRows.add(Number(k.split(":")[0])); }
    if (!timer) timer = window.setTimeout(() => { frame = requestAnimationFrame(() => draw(false)); }, LIVE_DRAW_MS);
    return;
  }
  draw(true);
}

function draw(everyRow: boolean): void {
  clearTimeout(timer);
  cancelAnimationFrame(frame);
  timer = frame = 0;
  const changed = pendingFlash, dirty = pendingRows;
  pendingFlash = new Set();
  pendingRows = new Set();
  const body = $("patients").querySelector("tbody")!;
  // A row that moves loses the keyboard focus: put it back on the same patient's link.
  const focused = (document.activeElement as HTMLElement | null)?.closest<HTMLElement>("#patients tr[data-patient]")?.dataset.patient;
  const all = [...patients.values()];
  const rows = all.filter((p) => !filter || p.summary.name.toLowerCase().includes(filter)
    || p.summary.pathway.toLowerCase().includes(filter)).sort(heldOrder ? heldCompare : compare);
  $("patient-shown").textContent = filter ? `${rows.length} of ${all.length} patients match “${filter}”` : "";
  for (const id of rowsById.keys()) if (!patients.has(id)) rowsById.delete(id);
  const trs = rows.map((p) => {
    let tr = rowsById.get(p.summary.id);
    if (!tr) rowsById.set(p.summary.id, (tr = newRow(p)));
    else if (!everyRow && !dirty.has(p.summary.id)) return tr;
    updateRow(tr, p, changed);
    return tr;
  });
  placeRows(body, trs);
  $("empty").hidden = rows.length > 0;
  $("empty").textContent = all.length ? "No patients match the filter." : "No patients on your wards.";
  const link = focused && body.querySelector<HTMLElement>(`tr[data-patient="${focused}"] a`);
  if (link && document.activeElement !== link) link.focus();
}

/**
 * Put `trs` in `body` in that order with as few DOM moves as possible: rows
 * no longer shown go, the longest run already in order stays put, and only
 * the others move. A moved row is laid out and styled again (about a dozen
 * boxes), so a patient dropping from first to last must move one row, not
 * shift 499 (a focused link also keeps its focus when its row stays put).
 */
function placeRows(body: HTMLTableSectionElement, trs: HTMLTableRowElement[]): void {
  const keep = new Set(trs);
  for (const tr of [...body.rows]) if (!keep.has(tr)) tr.remove();
  const at = new Map([...body.rows].map((tr, i) => [tr, i]));
  const stay = inOrder(trs.map((tr) => at.get(tr) ?? -1));
  let next: HTMLTableRowElement | null = null;
  for (let i = trs.length - 1; i >= 0; i--) {
    if (!stay.has(i)) body.insertBefore(trs[i], next);
    next = trs[i];
  }
}

/** Indexes of a longest strictly increasing run in `xs` (ignoring -1), in O(n log n). */
function inOrder(xs: number[]): Set<number> {
  const tails: number[] = []; // tails[k]: index in xs ending the best run of length k+1
  const prev = new Array<number>(xs.length).fill(-1);
  xs.forEach((x, i) => {
    if (x < 0) return;
    let lo = 0, hi = tails.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (xs[tails[mid]] < x) lo = mid + 1; else hi = mid; }
    if (lo > 0) prev[i] = tails[lo - 1];
    tails[lo] = i;
  });
  const run = new Set<number>();
  for (let i = tails.length ? tails[tails.length - 1] : -1; i >= 0; i = prev[i]) run.add(i);
  return run;
}

function newRow(p: PatientState): HTMLTableRowElement {
  const tr = el("tr");
  tr.dataset.patient = String(p.summary.id);
  const name = el("th");
  name.scope = "row";
  const link = el("a");
  link.href = `#/patients/${p.summary.id}`;
  name.append(link);
  const news2 = el("td");
  news2.dataset.news2 = String(p.summary.id);
  tr.append(name, el("td"), news2);
  for (const code of CODES) {
    const td = el("td", "num");
    td.dataset.code = code;
    tr.append(td);
  }
  tr.append(el("td"));
  return tr;
}

function updateRow(tr: HTMLTableRowElement, p: PatientState, changed: Set<string>): void {
  const cells = tr.cells;
  setText(cells[0].firstElementChild as HTMLElement, p.summary.name);
  setText(cells[1], p.summary.pathway);
  updateNews2(cells[2], p, changed.has(`${p.summary.id}:news2`));
  const subs = Object.fromEntries((p.news2?.subscores || []).map((x) => [x.parameter, x]));
  CODES.forEach((code, i) => {
    const td = cells[3 + i];
    const text = fmt(p.latest, code);
    const sub = text !== "—" ? subs[SUB_PARAM[code]] : undefined;
    // Only what differs is written: an unchanged cell costs no style work.
    if (unchanged(td, `${text}|${sub?.score}|${sub?.reason}`)) {
      if (changed.has(`${p.summary.id}:${code}`)) flash(td);
      return;
    }
    setText(td, text);
    for (let s = 0; s <= 3; s++) td.classList.toggle(`sub-${s}`, !!sub && Math.min(3, sub.score) === s);
    // The sub-score is shown as text (CSS ::after from data-sub, so the
    // cell's text stays the reading) as well as by colour.
    if (sub) {
      td.dataset.sub = `+${sub.score}`;
      td.title = sub.reason || `NEWS2 sub-score ${sub.score}`;
      td.setAttribute("aria-description", `NEWS2 sub-score ${sub.score}`);
    } else {
      delete td.dataset.sub;
      td.removeAttribute("title");
      td.removeAttribute("aria-description");
    }
    if (changed.has(`${p.summary.id}:${code}`)) flash(td);
  });
  setText(cells[3 + CODES.length], age(lastAt(p)));
}

function setText(e: HTMLElement, text: string): void {
  if (e.textContent !== text) e.textContent = text;
}

// What each cell last showed, so a redraw can skip the cells it would not change.
const shown = new WeakMap<HTMLElement, string>();
function unchanged(e: HTMLElement, what: string): boolean {
  if (shown.get(e) === what) return true;
  shown.set(e, what);
  return false;
}

/**
 * Restart the highlight animation on a cell whose value just arrived, by
 * swapping between two classes with identical animations (a new animation
 * name restarts it) rather than forcing a layout of the whole table.
 */
function flash(td: HTMLElement): void {
  const again = td.classList.contains("fresh");
  td.classList.toggle("fresh", !again);
  td.classList.toggle("fresh-again", again);
}

function updateNews2(td: HTMLTableCellElement, p: PatientState, fresh: boolean): void {
  const v = news2View(p.news2);
  if (!unchanged(td, `${v.cls}|${v.text}|${v.sub}|${v.detail}|${p.news2?.scored_at}`)) {
    for (const c of [...td.classList]) if (c.startsWith("risk-") || c === "partial") td.classList.remove(c);
    td.classList.add("news2", ...v.cls.split(" "));
    if (p.news2?.scored_at) td.dataset.scoredAt = p.news2.scored_at;
    else delete td.dataset.scoredAt;
    td.title = v.detail;
    td.replaceChildren(el("span", "score", v.text), ...(v.sub ? [el("span", "risk", v.sub)] : []),
      el("span", "visually-hidden", `. ${v.detail}`));
  }
  if (fresh) flash(td);
}
