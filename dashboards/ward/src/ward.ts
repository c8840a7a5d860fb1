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

/** Rebuild the table; `changed` holds `patient:code` (or `patient:news2`) keys to flash. */
export function renderPatients(changed = new Set<string>()): void {
  const body = $("patients").querySelector("tbody")!;
  // The rows are rebuilt: keep the keyboard focus on the same patient's link.
  const focused = (document.activeElement as HTMLElement | null)?.closest<HTMLElement>("#patients tr[data-patient]")?.dataset.patient;
  body.replaceChildren();
  const all = [...patients.values()];
  const rows = all.filter((p) => !filter || p.summary.name.toLowerCase().includes(filter)
    || p.summary.pathway.toLowerCase().includes(filter)).sort(compare);
  $("patient-shown").textContent = filter ? `${rows.length} of ${all.length} patients match “${filter}”` : "";
  for (const p of rows) {
    const tr = el("tr");
    tr.dataset.patient = String(p.summary.id);
    const name = el("th");
    name.scope = "row";
    const link = el("a", "", p.summary.name);
    link.href = `#/patients/${p.summary.id}`;
    name.append(link);
    tr.append(name, el("td", "", p.summary.pathway), news2Cell(p, changed.has(`${p.summary.id}:news2`)));
    const subs = Object.fromEntries((p.news2?.subscores || []).map((x) => [x.parameter, x]));
    for (const code of CODES) {
      const td = el("td", "num", fmt(p.latest, code));
      td.dataset.code = code;
      const sub = subs[SUB_PARAM[code]];
      // The sub-score is shown as text (CSS ::after from data-sub, so the
      // cell's text stays the reading) as well as by colour.
      if (sub && td.textContent !== "—") {
        td.dataset.sub = `+${sub.score}`;
        td.classList.add(`sub-${Math.min(3, sub.score)}`);
        td.title = sub.reason || `NEWS2 sub-score ${sub.score}`;
        td.setAttribute("aria-description", `NEWS2 sub-score ${sub.score}`);
      }
      if (changed.has(`${p.summary.id}:${code}`)) td.classList.add("fresh");
      tr.append(td);
    }
    tr.append(el("td", "", age(lastAt(p))));
    body.append(tr);
  }
  $("empty").hidden = rows.length > 0;
  $("empty").textContent = all.length ? "No patients match the filter." : "No patients on your wards.";
  if (focused) body.querySelector<HTMLElement>(`tr[data-patient="${focused}"] a`)?.focus();
}

function news2Cell(p: PatientState, fresh: boolean): HTMLTableCellElement {
  const v = news2View(p.news2);
  const td = el("td", `news2 ${v.cls}${fresh ? " fresh" : ""}`);
  td.dataset.news2 = String(p.summary.id);
  if (p.news2?.scored_at) td.dataset.scoredAt = p.news2.scored_at;
  td.title = v.detail;
  td.append(el("span", "score", v.text));
  if (v.sub) td.append(el("span", "risk", v.sub));
  td.append(el("span", "visually-hidden", `. ${v.detail}`));
  return td;
}
