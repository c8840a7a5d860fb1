// The ward page's "Kit", for admins: every device they look after (GET
// /api/v1/devices: their wards' patients' and the free ones on the shelf),
// each with its patient, its state and battery as it last reported, and
// when it last sent, so a kit gone silent at a patient's home or one free to
// give is seen without opening each patient. Read when the ward page shows,
// every 30 s while it does, and on Refresh; hidden from everyone else.
import { api } from "./api";
import { isAdmin } from "./admission";
import { $, age, el } from "./format";
import { patients } from "./state";
import type { DeviceListed, Me } from "./types";

const REFRESH_MS = 30_000;
/** An assigned device that has sent nothing for this long is marked silent. */
const SILENT_MS = 24 * 3600_000;

const section = $("kit");
const freeOnly = $("kit-free") as HTMLInputElement;
let devices: DeviceListed[] | null = null; // as last read; kept when a read fails
let timer: number | undefined;
let loading = 0;

const isFree = (d: DeviceListed): boolean => d.patient_id === null && d.revoked_at === null;

/** The ward page is shown: for an admin, the kit, read now and every 30 s; hidden for anyone else. */
export function showKit(me: Me | null): void {
  if (!isAdmin(me)) { clearKit(); return; }
  section.hidden = false;
  clearInterval(timer);
  timer = window.setInterval(() => { void refreshKit(); }, REFRESH_MS);
  void refreshKit();
}

/** The ward page is left: no more reads until it shows again. */
export function hideKit(): void {
  clearInterval(timer);
  timer = undefined;
}

/** Signed out (or not an admin): hidden, and nothing of it stays on the page. */
export function clearKit(): void {
  hideKit();
  loading++;
  devices = null;
  section.hidden = true;
  freeOnly.checked = false;
  $("kit-table").querySelector("tbody")!.replaceChildren();
  $("kit-count").textContent = "";
  $("kit-status").textContent = "";
}

/** Read the devices again, while the kit is shown (a patient admitted or discharged frees or takes kit). */
export async function refreshKit(): Promise<void> {
  if (timer === undefined) return;
  const load = ++loading;
  try {
    const list = await api<DeviceListed[]>("/api/v1/devices");
    if (load !== loading) return;
    devices = list;
    $("kit-status").textContent = "";
    drawKit();
  } catch (e) {
    // The last table stays, as it was read.
    if (load === loading) $("kit-status").textContent = `Kit not read: ${(e as Error).message}.`;
  }
}

/** Draw the devices as last read: again when the ward's patients (their names) are read again. */
export function drawKit(): void {
  if (!devices) return;
  const body = $("kit-table").querySelector("tbody")!;
  // A redraw must not take the keyboard focus off the patient link it is on.
  const focused = (document.activeElement as HTMLElement | null)?.closest<HTMLElement>("#kit-table tr[data-device]")?.dataset.device;
  const shown = freeOnly.checked ? devices.filter(isFree) : devices;
  body.replaceChildren(...shown.map(row));
  const free = shown.filter(isFree).length;
  const count = shown.length
    ? `${shown.length} device${shown.length === 1 ? "" : "s"}, ${free} free.`
    : freeOnly.checked && devices.length ? "No free devices." : "No devices.";
  if ($("kit-count").textContent !== count) $("kit-count").textContent = count;
  if (focused) body.querySelector<HTMLElement>(`tr[data-device="${CSS.escape(focused)}"] a`)?.focus();
}

function row(d: DeviceListed): HTMLTableRowElement {
  const tr = el("tr");
  tr.dataset.device = d.id;
  const id = el("th", "", d.id);
  id.scope = "row";

  const patient = el("td");
  if (d.patient_id !== null) {
    const link = el("a", "", patients.get(d.patient_id)?.summary.name || `patient ${d.patient_id}`);
    link.href = `#/patients/${d.patient_id}`;
    patient.append(link);
  } else {
    patient.textContent = d.revoked_at ? "—" : "Free";
  }

  let state = d.status === null ? "never reported" : d.status.online === false ? "offline" : "online";
  if (d.revoked_at) state = `revoked ${age(d.revoked_at)}`;
  const st = el("td", !d.revoked_at && d.status?.online === false ? "warn" : "", state);

  const pct = d.status?.battery_pct;
  const battery = pct != null ? `${pct} %${pct < 30 ? " (low)" : ""}` : "—";

  const silent = d.patient_id !== null && !d.revoked_at && !!d.last_message_at
    && Date.now() - Date.parse(d.last_message_at) > SILENT_MS;
  const sent = el("td", silent ? "warn" : "", `${age(d.last_message_at)}${silent ? " (silent)" : ""}`);

  tr.append(id, el("td", "", d.kind), patient, st, el("td", "num", battery), sent);
  return tr;
}

freeOnly.addEventListener("change", drawKit);
$("kit-refresh").addEventListener("click", () => { void refreshKit(); });
