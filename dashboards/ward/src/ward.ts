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

function compare(a: PatientState, b: PatientState): number {
  const byName = a.summary.name.localeCompare(b.summary.name);
  let c: number;
  switch (sortKey) {
    case "name": c = byName; break;
    case "pathway": c = a.summary.pathway.localeCompare(b.summary.pathway) || byName; break;
    case "last": c = (Date.parse(lastAt(a) || "") || 0) - (Date.parse(lastAt(b) || "") || 0); break;
    default: { const [ra, ta] = acuity(a), [rb, tb] = acuity(b); c = ra - rb || ta - tb; }
  }
  // Ties stay in name order whichever way the column is sorted.
  return (descending ? -c : c) || byName;
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
// update): a row must not move away under a nurse's click. The order
// catches up when the pointer leaves.
let heldOrder: Map<number, number> | null = null;
{
  const body = $("patients").querySelector("tbody")!;
  body.addEventListener("pointerenter", () => {
    heldOrder = new Map([...body.rows].map((tr, i) => [Number(tr.dataset.patient), i]));
  });
  body.addEventListener("pointerleave", () => { heldOrder = null; renderPatients(); });
}

function heldCompare(a: PatientState, b: PatientState): number {
  const ia = heldOrder!.get(a.summary.id) ?? Infinity, ib = heldOrder!.get(b.summary.id) ?? Infinity;
  return ia === ib ? compare(a, b) : ia < ib ? -1 : 1;
}

/** Render the table; `changed` holds `patient:code` (or `patient:news2`) keys to flash. */
export function renderPatients(changed = new Set<string>()): void {
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
    updateRow(tr, p, changed);
    return tr;
  });
  // Only move rows that are out of place (appending a row moves it; a
  // focused link keeps its focus when its row does not move).
  trs.forEach((tr, i) => { if (body.rows[i] !== tr) body.insertBefore(tr, body.rows[i] || null); });
  while (body.rows.length > trs.length) body.rows[trs.length].remove();
  $("empty").hidden = rows.length > 0;
  $("empty").textContent = all.length ? "No patients match the filter." : "No patients on your wards.";
  const link = focused && body.querySelector<HTMLElement>(`tr[data-patient="${focused}"] a`);
  if (link && document.activeElement !== link) link.focus();
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
    setText(td, fmt(p.latest, code));
    const sub = subs[SUB_PARAM[code]];
    td.className = "num";
    // The sub-score is shown as text (CSS ::after from data-sub, so the
    // cell's text stays the reading) as well as by colour.
    if (sub && td.textContent !== "—") {
      td.dataset.sub = `+${sub.score}`;
      td.classList.add(`sub-${Math.min(3, sub.score)}`);
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

/** Restart the highlight animation on a cell whose value just arrived. */
function flash(td: HTMLElement): void {
  td.classList.remove("fresh");
  void td.offsetWidth;
  td.classList.add("fresh");
}

function updateNews2(td: HTMLTableCellElement, p: PatientState, fresh: boolean): void {
  const v = news2View(p.news2);
  td.className = `news2 ${v.cls}`;
  if (p.news2?.scored_at) td.dataset.scoredAt = p.news2.scored_at;
  else delete td.dataset.scoredAt;
  td.title = v.detail;
  td.replaceChildren(el("span", "score", v.text), ...(v.sub ? [el("span", "risk", v.sub)] : []),
    el("span", "visually-hidden", `. ${v.detail}`));
  if (fresh) flash(td);
}
