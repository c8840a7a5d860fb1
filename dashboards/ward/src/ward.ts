// The patients table: sorted by acuity, each reading with its NEWS2
// sub-score as colour and as text, each name a link to the patient page.
// Only the rows in and near the viewport are drawn (see "virtualization").
import { $, age, el, news2Trend, news2View, nhsFormat, RISK_RANK } from "./format";
import { planLine, planShort } from "./plan";
import { lastAt, patients, type PatientState } from "./state";

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
// a click that starts while a live update arrives still lands on its row. A
// row element is never reused for another patient: one that leaves the
// viewport is detached and kept for when its patient scrolls back.
const rowsById = new Map<number, HTMLTableRowElement>();
// The full list as last drawn (filtered, sorted): patient ids, top to bottom.
let order: number[] = [];
// While the pointer is over the rows their order is held (values still
// update): a row must not move away under a nurse's click. Nor may the
// table itself move: the alert queue above it keeps its height while held
// (a new alert shows inside it, which scrolls), where a new alert used to
// push every row down under the pointer. Both catch up when the pointer
// leaves. The whole list's order is held, not only the rows drawn, so
// scrolling while held shows the held order further down too.
let heldOrder: Map<number, number> | null = null;
{
  const body = $("patients").querySelector("tbody")!;
  const above = $("alerts");
  body.addEventListener("pointerenter", () => {
    heldOrder = new Map(order.map((id, i) => [id, i]));
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
  const all = [...patients.values()];
  // An NHS number matches typed with or without its spaces.
  const digits = /^[\d\s]+$/.test(filter) ? filter.replace(/\s/g, "") : null;
  const rows = all.filter((p) => !filter || p.summary.name.toLowerCase().includes(filter)
    || p.summary.pathway.toLowerCase().includes(filter)
    || (!!digits && (p.summary.nhs_number || "").includes(digits))).sort(heldOrder ? heldCompare : compare);
  order = rows.map((p) => p.summary.id);
  $("patient-shown").textContent = filter ? `${rows.length} of ${all.length} patients match “${filter}”` : "";
  for (const id of rowsById.keys()) if (!patients.has(id)) { rowsById.delete(id); forget(id); }
  $("empty").hidden = rows.length > 0;
  $("empty").textContent = all.length ? "No patients match the filter." : "No patients on your wards.";
  paint(everyRow, dirty, changed);
}

// ------------------------------------------------------------ virtualization
//
// Only the rows in and near the viewport are in the DOM: a 500-row table is
// about 13,000 boxes, and styling, laying out and painting them took most of
// every draw (docs/benchmarks.md). Spacer rows above and below (aria-hidden,
// no content) take the height of the rows not drawn, so the scrollbar and
// the page's length are those of the whole list; `aria-rowcount` on the
// table and `aria-rowindex` on each row tell assistive technology where a
// row is among all of them.
//
// The table scrolls with the page, not inside a box of its own: one
// scrollbar, so the wheel, Space, Page Down and a tablet's swipe all scroll
// the patients without a nested scroller catching them halfway; the alert
// queue above keeps whatever height it needs at 1366×768 instead of sharing
// a fixed split of the screen with the table; and the browser's scroll
// anchoring keeps the rows in view still when rows or alerts above change
// height (the spacers opt out of it, so it anchors on a real row).
//
// Row heights vary (names and NEWS2 text wrap on a tablet), so each drawn
// row is measured and its height kept by patient; rows never drawn count as
// the mean of those measured.
const OVERSCAN_PX = 400; // rows drawn beyond each edge of the viewport
const FIRST_GUESS_PX = 42; // a row's height before any has been measured
const COLUMNS = 3 + CODES.length + 1;
const heights = new Map<number, number>();
let measuredSum = 0;
const mean = (): number => (heights.size ? measuredSum / heights.size : FIRST_GUESS_PX);
const heightOf = (id: number): number => heights.get(id) ?? mean();
function forget(id: number): void { measuredSum -= heights.get(id) ?? 0; heights.delete(id); }
function remember(id: number, h: number): void { forget(id); heights.set(id, h); measuredSum += h; }
function heightBetween(from: number, to: number): number {
  let h = 0;
  for (let i = from; i < to; i++) h += heightOf(order[i]);
  return h;
}

// At most three spacers: above the rows drawn, between them and a focused
// row far from the viewport, and below.
const spacers = [0, 1, 2].map(() => {
  const tr = el("tr", "spacer");
  tr.setAttribute("aria-hidden", "true");
  const td = el("td");
  td.colSpan = COLUMNS;
  tr.append(td);
  return tr;
});
// The table was hidden (a patient's page open) when a draw came: draw it all when it shows.
let missed = false;
type Range = [number, number];

/**
 * Which rows to draw: those within OVERSCAN_PX of the viewport (at least a
 * screenful, so a table starting below the fold still has its first rows),
 * and the focused row with one neighbour each side, so that Tab and
 * Shift+Tab always have the next patient's link to go to, and a keyboard
 * user who scrolls away with the wheel does not lose the focus.
 */
function ranges(body: HTMLTableSectionElement, focusAt: number): Range[] {
  const n = order.length;
  const top = -body.getBoundingClientRect().top - OVERSCAN_PX;
  const bottom = top + window.innerHeight + 2 * OVERSCAN_PX;
  const screenful = Math.ceil((window.innerHeight + OVERSCAN_PX) / mean());
  let a = 0, y = 0;
  while (a < n && y + heightOf(order[a]) <= top) y += heightOf(order[a++]);
  let b = a;
  while (b < n && y < bottom) y += heightOf(order[b++]);
  // Past the end (the list just got shorter): its last screenful.
  a = Math.max(0, Math.min(a, n - screenful));
  b = Math.min(n, Math.max(b, a + screenful));
  const out: Range[] = [[a, b]];
  if (focusAt >= 0) {
    const f: Range = [Math.max(0, focusAt - 1), Math.min(n, focusAt + 2)];
    if (f[1] < a) out.unshift(f);
    else if (f[0] > b) out.push(f);
    else out[0] = [Math.min(a, f[0]), Math.max(b, f[1])];
  }
  return out;
}

/**
 * Draw the rows `ranges` picks, in `order`, with spacers for the rest.
 * `everyRow` or `dirty` rows are brought up to date; a row that comes into
 * the window always is (its patient may have changed while it was not
 * drawn). Rows are measured once placed; if that moves the window (rows
 * shorter than guessed leave part of the screen empty) it is drawn again.
 */
function paint(everyRow: boolean, dirty: ReadonlySet<number>, changed: ReadonlySet<string>): void {
  const table = $("patients");
  if (!table.getClientRects().length) { missed = true; return; }
  missed = false;
  const body = table.querySelector("tbody")!;
  table.setAttribute("aria-rowcount", String(order.length + 1)); // + the header row
  // A row that moves loses the keyboard focus: put it back on the same
  // patient's link. A focused row on the screen stays on it: rows above it
  // that a live update makes taller (a value that now wraps) pushed it off
  // the bottom, out of sight of the keyboard user working down the list.
  const focusedRow = (document.activeElement as HTMLElement | null)?.closest<HTMLElement>("#patients tr[data-patient]");
  const focused = Number(focusedRow?.dataset.patient);
  const focusAt = focused ? order.indexOf(focused) : -1;
  // (Whole on the screen: the paint of a wheel's scroll runs after the
  // scroll, so a row the wheel is taking away is not whole then, and stays away.)
  // Within a pixel: the page scrolls by whole pixels, rows sit on fractions.
  const whole = (r: DOMRect) => r.top >= -1 && r.bottom <= window.innerHeight + 1;
  const wasOnScreen = !!focusedRow && whole(focusedRow.getBoundingClientRect());
  let drawn = "";
  for (let pass = 0; pass < 3; pass++) {
    const want = ranges(body, focusAt);
    if (JSON.stringify(want) === drawn) break;
    drawn = JSON.stringify(want);
    const items: HTMLTableRowElement[] = [];
    let at = 0, s = 0;
    const gap = (to: number) => { if (to > at) items.push(sized(spacers[s++], heightBetween(at, to))); };
    for (const [a, b] of want) {
      gap(a);
      for (let i = a; i < b; i++) items.push(rowAt(i, body, everyRow || dirty.has(order[i]), changed));
      at = b;
    }
    gap(order.length);
    placeRows(body, items);
    for (const tr of items) {
      if (!tr.dataset.patient) continue;
      const h = tr.getBoundingClientRect().height;
      if (h > 0) remember(Number(tr.dataset.patient), h);
    }
    everyRow = false;
    dirty = new Set();
  }
  const link = focused && body.querySelector<HTMLElement>(`tr[data-patient="${focused}"] a`);
  if (!link) return;
  // No scroll from focus() itself: one scrolled away from with the wheel stays scrolled away from.
  if (document.activeElement !== link) link.focus({ preventScroll: true });
  const row = link.closest("tr")!;
  if (wasOnScreen && !whole(row.getBoundingClientRect())) row.scrollIntoView({ block: "nearest" });
}

function rowAt(i: number, body: HTMLTableSectionElement, update: boolean, changed: ReadonlySet<string>): HTMLTableRowElement {
  const p = patients.get(order[i])!;
  let tr = rowsById.get(order[i]);
  if (!tr) rowsById.set(order[i], (tr = newRow(p)));
  if (update || tr.parentNode !== body) updateRow(tr, p, changed);
  if (tr.getAttribute("aria-rowindex") !== String(i + 2)) tr.setAttribute("aria-rowindex", String(i + 2));
  return tr;
}

function sized(tr: HTMLTableRowElement, h: number): HTMLTableRowElement {
  tr.style.height = `${h}px`;
  return tr;
}

/** Redraw the window only (the order and the rows already drawn stay as they are). */
function repaint(): void { paint(false, new Set(), new Set()); }
window.addEventListener("scroll", repaint, { passive: true });
let width = window.innerWidth;
window.addEventListener("resize", () => {
  // Rows wrap differently at another width: measure them again.
  if (window.innerWidth !== width) { width = window.innerWidth; heights.clear(); measuredSum = 0; }
  repaint();
});
// Tab from the last row drawn: the next patient's row is drawn as the focus arrives.
$("patients").querySelector("tbody")!.addEventListener("focusin", repaint);

/**
 * The ward is shown again (back from a patient's page): draw what it missed
 * meanwhile. With no patients known yet (signing in) there is nothing to
 * draw: the first load draws, rather than "No patients on your wards" first.
 */
export function showWard(): void { if (missed && patients.size) draw(true); }

/** Scroll a patient's row to a third of the way down the screen and focus its link. */
export function focusPatient(id: number): void {
  const i = order.indexOf(id);
  const body = $("patients").querySelector("tbody")!;
  if (i < 0 || !body.getClientRects().length) return;
  window.scrollTo(0, window.scrollY + body.getBoundingClientRect().top + heightBetween(0, i) - window.innerHeight / 3);
  repaint();
  body.querySelector<HTMLElement>(`tr[data-patient="${id}"] a`)?.focus();
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
  // The second identifier, never a name alone (two patients may share one).
  name.append(link, el("span", "nhs"));
  const news2 = el("td");
  news2.dataset.news2 = String(p.summary.id);
  // The pathway, and under it the escalation plan: a second line in a
  // cell of one, so a row is no taller (the big ward's rows are measured).
  const pathway = el("td");
  pathway.append(el("span", "pathway"), el("span", "plan"));
  tr.append(name, pathway, news2);
  for (const code of CODES) {
    const td = el("td", "num");
    td.dataset.code = code;
    tr.append(td);
  }
  tr.append(el("td"));
  return tr;
}

function updateRow(tr: HTMLTableRowElement, p: PatientState, changed: ReadonlySet<string>): void {
  const cells = tr.cells;
  setText(cells[0].firstElementChild as HTMLElement, p.summary.name);
  setText(cells[0].lastElementChild as HTMLElement, `NHS ${nhsFormat(p.summary.nhs_number)}`);
  const [pathway, plan] = cells[1].children as unknown as HTMLElement[];
  setText(pathway, p.summary.pathway);
  // The stay's escalation plan in a few words (in full on the alert and the patient's page).
  setText(plan, planShort(p.summary.escalation_plan));
  plan.className = `plan ${p.summary.escalation_plan ?? "none"}`;
  plan.title = planLine(p.summary.escalation_plan, p.summary.escalation_note);
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
  const t = news2Trend(p.news2, p.summary.news2_earlier, lastAt(p));
  if (!unchanged(td, `${v.cls}|${v.text}|${v.sub}|${v.detail}|${p.news2?.scored_at}|${t?.text}|${t?.detail}`)) {
    for (const c of [...td.classList]) if (c.startsWith("risk-") || c === "partial") td.classList.remove(c);
    td.classList.add("news2", ...v.cls.split(" "));
    if (p.news2?.scored_at) td.dataset.scoredAt = p.news2.scored_at;
    else delete td.dataset.scoredAt;
    td.title = v.detail;
    const trend = t ? el("span", `trend ${t.dir}`, t.text) : null;
    if (trend) trend.title = t!.detail;
    td.replaceChildren(el("span", "score", v.text), ...(v.sub ? [el("span", "risk", v.sub)] : []),
      el("span", "visually-hidden", `. ${v.detail}${t ? `. ${t.detail}` : ""}`));
    if (trend) {
      trend.setAttribute("aria-hidden", "true"); // said in words in the hidden text
      td.append(trend);
    }
  }
  if (fresh) flash(td);
}
