// Admission and discharge, for admins: a patient admitted from the ward
// page (POST /api/v1/patients), discharged from their own page after a
// confirmation that names them (POST /api/v1/patients/{id}/discharge). The
// server checks the role, the NHS number and that one person is admitted
// once; what it answers is shown as it says it. On an admitted patient's
// page, their kit: provisioned, given from the free devices, taken back
// mid-stay or revoked when lost.
import { api } from "./api";
import { notice } from "./alerts";
import { $, age, el } from "./format";
import { alerts } from "./state";
import type { DeviceListed, Me, PathwayInfo, PatientDetail, PatientDevice } from "./types";

interface Admitted { id: number; readmitted: boolean }
interface Discharged { id: number; discharged_at: string; resolved_alerts: number[] }
interface Provisioned { device_id: string; mqtt_username: string; mqtt_password: string }

const form = $("admit") as HTMLFormElement;
const opener = $("admit-open") as HTMLButtonElement;
const wardSelect = $("admit-ward") as HTMLSelectElement;
const nameInput = $("admit-name") as HTMLInputElement;
const nhsInput = $("admit-nhs") as HTMLInputElement;
const pathwaySelect = $("admit-pathway") as HTMLSelectElement;
let pathways: PathwayInfo[] = [];

export function isAdmin(me: Me | null): boolean { return me?.role === "admin"; }

/** Offer admission on the ward page to an admin; nobody else sees it. */
export function showAdmission(me: Me | null): void {
  $("admit-actions").hidden = !isAdmin(me);
  if (!isAdmin(me)) closeForm();
  wardSelect.replaceChildren(...(me?.wards || []).map((w) => {
    const o = el("option", "", w.name); o.value = w.name; return o;
  }));
}

function closeForm(): void {
  form.hidden = true;
  opener.setAttribute("aria-expanded", "false");
}

opener.addEventListener("click", async () => {
  if (!form.hidden) { closeForm(); return; }
  $("admit-status").textContent = "";
  $("admit-error").textContent = "";
  form.reset();
  form.hidden = false;
  opener.setAttribute("aria-expanded", "true");
  nameInput.focus();
  try {
    pathways = await api<PathwayInfo[]>("/api/v1/pathways");
  } catch (e) {
    $("admit-error").textContent = `Could not load the pathways: ${(e as Error).message}.`;
    return;
  }
  pathwaySelect.replaceChildren(...pathways.map((p) => {
    const o = el("option", "", `${p.title} (${p.name})`); o.value = p.name; return o;
  }));
  pathwayHint();
});

function pathwayHint(): void {
  const p = pathways.find((x) => x.name === pathwaySelect.value);
  $("admit-pathway-hint").textContent = p?.spo2_target
    ? `Its rules watch SpO2 against a target of ${p.spo2_target[0]}–${p.spo2_target[1]} %.`
    : "";
}
pathwaySelect.addEventListener("change", pathwayHint);

$("admit-cancel").addEventListener("click", () => { closeForm(); opener.focus(); });

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const error = $("admit-error");
  error.textContent = "";
  const name = nameInput.value.trim();
  const body = { ward: wardSelect.value, name, nhs_number: nhsInput.value, pathway: pathwaySelect.value };
  try {
    const r = await api<Admitted>("/api/v1/patients", { method: "POST", body: JSON.stringify(body) });
    closeForm();
    // The new row comes with the server's `patient` event.
    const status = $("admit-status");
    status.replaceChildren(`${r.readmitted ? `Admitted again: ${name}, on their earlier record` : `Admitted ${name}`} (NHS number ${body.nhs_number.trim()}). `);
    const link = el("a", "", `Open ${name}'s page`);
    link.href = `#/patients/${r.id}`;
    status.append(link, ".");
    opener.focus();
  } catch (err) {
    error.textContent = `Not admitted: ${(err as Error).message}.`;
  }
});

// ---------------------------------------------------------------- discharge

let discharging: PatientDetail | null = null;
const confirmBox = $("discharge-confirm");
const dischargeOpen = $("discharge-open") as HTMLButtonElement;

/** Offer discharge on a patient's page to an admin, while the patient has an open episode. */
export function showDischarge(me: Me | null, p: PatientDetail | null): void {
  const open = !!p?.episode && !p.episode.discharged_at;
  discharging = isAdmin(me) && open ? p : null;
  $("discharge-actions").hidden = !discharging;
  confirmBox.hidden = true;
  dischargeOpen.setAttribute("aria-expanded", "false");
  $("discharge-error").textContent = "";
}

dischargeOpen.addEventListener("click", () => {
  if (!discharging) return;
  const p = discharging;
  const live = [...alerts.values()].filter((a) => a.alert.patient_id === p.id && a.alert.status !== "resolved").length;
  $("discharge-question").textContent = `Discharge ${p.name} (NHS number ${p.nhs_number}) from the ward? `
    + (live ? `Their ${live} live alert${live === 1 ? "" : "s"} will be resolved as discharged, their devices unassigned,`
      : "Their devices will be unassigned,")
    + " and they will leave the ward list. Their record is kept.";
  ($("discharge-yes") as HTMLButtonElement).textContent = `Discharge ${p.name}`;
  confirmBox.hidden = false;
  dischargeOpen.setAttribute("aria-expanded", "true");
  ($("discharge-no") as HTMLButtonElement).focus();
});

$("discharge-no").addEventListener("click", () => {
  confirmBox.hidden = true;
  dischargeOpen.setAttribute("aria-expanded", "false");
  dischargeOpen.focus();
});

$("discharge-yes").addEventListener("click", async () => {
  if (!discharging) return;
  const p = discharging;
  try {
    const r = await api<Discharged>(`/api/v1/patients/${p.id}/discharge`, { method: "POST", body: "{}" });
    const n = r.resolved_alerts.length;
    location.hash = "#/";
    notice(`Discharged ${p.name}${n ? `; ${n} alert${n === 1 ? "" : "s"} resolved as discharged` : ""}.`);
  } catch (err) {
    $("discharge-error").textContent = `Not discharged: ${(err as Error).message}.`;
  }
});

// ---------------------------------------------------------------- devices

let provisioning: { patient: number; name: string; added: () => Promise<void> } | null = null;

/**
 * Offer an admin to provision a device for the patient whose page is open
 * (their kit), to give them a free one, and to take back or revoke theirs;
 * `added` reloads the page's device list.
 */
export function showProvision(me: Me | null, p: PatientDetail | null, added: () => Promise<void>): void {
  const open = !!p?.episode && !p.episode.discharged_at;
  provisioning = isAdmin(me) && open && p ? { patient: p.id, name: p.name, added } : null;
  $("provision").hidden = !provisioning;
  $("assign").hidden = !provisioning;
  hideCredentials();
  closeDeviceQuestion(false);
  $("provision-error").textContent = "";
  $("assign-status").textContent = "";
  ($("assign-device") as HTMLInputElement).value = "";
  void refreshFree();
}

/** Whether the device rows carry an admin's buttons (see deviceButtons). */
export function managesDevices(): boolean { return !!provisioning; }

// The devices an admin can give (no one's now, not revoked) offered under
// the id input, with when each last sent: a kit back on the shelf is picked,
// not copied from its label. Typing any id still works.
let freeLoad = 0;
async function refreshFree(): Promise<void> {
  const load = ++freeLoad;
  let free: DeviceListed[] = [];
  if (provisioning) {
    // Unreadable: nothing offered, and the id is typed as before.
    try { free = await api<DeviceListed[]>("/api/v1/devices?unassigned=true"); } catch { free = []; }
  }
  if (load !== freeLoad) return;
  $("free-devices").replaceChildren(...free.filter((d) => d.revoked_at === null).map((d) => {
    const o = el("option");
    o.value = d.id;
    o.label = `${d.kind}, last sent ${age(d.last_message_at)}`;
    return o;
  }));
}

// A returned kit given to this patient (POST /api/v1/devices/{id}/assign):
// only a device that is no one's now; the server says why not otherwise.
$("assign-go").addEventListener("click", async () => {
  if (!provisioning) return;
  const { patient, added } = provisioning;
  const input = $("assign-device") as HTMLInputElement;
  const device = input.value.trim();
  const status = $("assign-status");
  if (!device) { status.textContent = "Type the device's id, as on its label."; input.focus(); return; }
  try {
    await api(`/api/v1/devices/${encodeURIComponent(device)}/assign`, { method: "POST", body: JSON.stringify({ patient_id: patient }) });
    if (provisioning?.patient !== patient) return;
    input.value = "";
    status.textContent = `${device} is now this patient's.`;
    void refreshFree();
    await added();
  } catch (err) {
    status.textContent = `Not assigned: ${(err as Error).message}.`;
  }
});

// ------------------------------------------ a device returned or revoked

type DeviceAction = "return" | "revoke";
let asking: { action: DeviceAction; device: PatientDevice; opener: HTMLButtonElement } | null = null;
let answering = false;
const deviceBox = $("device-confirm");
const deviceYes = $("device-yes") as HTMLButtonElement;

/**
 * An admin's buttons for a row of the patient's devices, none once it is
 * revoked: take it back (a kit swapped mid-stay) or revoke it (lost or
 * stolen), each after a question. Each is named with its device, as the
 * table has a pair per row.
 */
export function deviceButtons(d: PatientDevice): HTMLButtonElement[] {
  if (!provisioning || d.revoked_at) return [];
  const button = (action: DeviceAction, text: string, name: string): HTMLButtonElement => {
    const b = el("button", "", text);
    b.type = "button";
    b.dataset.action = action;
    b.setAttribute("aria-label", name);
    b.setAttribute("aria-controls", "device-confirm");
    b.setAttribute("aria-expanded", "false");
    b.addEventListener("click", () => askDevice(action, d, b));
    return b;
  };
  // "Revoke (lost)…", not "Lost…": the visible words must be in the name
  // (WCAG 2.5.3, for speech input), and a parenthesis does not count there.
  return [button("return", "Return", `Return ${d.id}`), button("revoke", "Revoke (lost)…", `Revoke ${d.id} (lost or stolen)`)];
}

/** One question at a time, under the table, saying what the answer does. */
function askDevice(action: DeviceAction, d: PatientDevice, opener: HTMLButtonElement): void {
  if (!provisioning || answering) return;
  // Its button again: a toggle, as for any disclosure.
  if (asking?.opener === opener) { closeDeviceQuestion(true); return; }
  closeDeviceQuestion(false);
  asking = { action, device: d, opener };
  $("device-question").textContent = action === "return"
    ? `Return ${d.id} (${d.kind}) from ${provisioning.name}? It stops reporting for them: what it sends from now on is refused`
      + " until it is given to someone, and its device alerts are resolved. Its readings so far stay on their record."
    : `Revoke ${d.id}? Use this for a device that is lost or stolen: it can never connect again, and cannot be un-revoked`
      + " (a device found again is provisioned anew).";
  deviceYes.textContent = action === "return" ? `Yes, return ${d.id}` : `Yes, revoke ${d.id}`;
  deviceBox.hidden = false;
  opener.setAttribute("aria-expanded", "true");
  deviceYes.focus();
}

/** Close the question; `refocus`: back to the button that asked it, if its row is still shown. */
function closeDeviceQuestion(refocus: boolean): void {
  const was = asking;
  asking = null;
  deviceBox.hidden = true;
  if (!was) return;
  was.opener.setAttribute("aria-expanded", "false");
  if (refocus) rowButton(was)?.focus();
}

/** The row's button for a question: the one that asked it, or its like if the row was drawn again. */
function rowButton(q: { action: DeviceAction; device: PatientDevice; opener: HTMLButtonElement }): HTMLButtonElement | null {
  if (q.opener.isConnected) return q.opener;
  return document.querySelector<HTMLButtonElement>(
    `#device-table tr[data-device="${CSS.escape(q.device.id)}"] button[data-action="${q.action}"]`);
}

$("device-no").addEventListener("click", () => closeDeviceQuestion(true));

// Yes: POST /api/v1/devices/{id}/unassign or …/revoke, naming the patient
// (so a device moved meanwhile is not taken from someone else). Either way
// the list is read again: on a refusal too, as it says the page is behind.
deviceYes.addEventListener("click", async () => {
  if (!asking || !provisioning || answering) return;
  const q = asking, { patient, added } = provisioning, id = q.device.id;
  const status = $("assign-status");
  const path = `/api/v1/devices/${encodeURIComponent(id)}/${q.action === "return" ? "unassign" : "revoke"}`;
  answering = true;
  let done = false;
  try {
    await api(path, { method: "POST", body: JSON.stringify({ patient_id: patient }) });
    done = true;
    if (provisioning?.patient !== patient) return;
    status.textContent = q.action === "return"
      ? `${id} is no one's now: it can be given to another patient.`
      : `${id} is revoked: it cannot connect again.`;
  } catch (err) {
    if (provisioning?.patient !== patient) return;
    status.textContent = `${q.action === "return" ? "Not returned" : "Not revoked"}: ${(err as Error).message}.`;
  } finally {
    answering = false;
  }
  closeDeviceQuestion(false);
  void refreshFree();
  await added();
  if (provisioning?.patient !== patient) return;
  // Its buttons are gone once it is done: on to the next step of a swap
  // (a free kit given, or a new one provisioned); else back to the row.
  const next = !done ? rowButton(q) : null;
  (next || (q.action === "return" ? $("assign-device") : $("provision-kind"))).focus();
});

function hideCredentials(): void {
  for (const id of ["cred-device", "cred-user", "cred-pass"]) $(id).textContent = "";
  $("provisioned").hidden = true;
}

$("provision-go").addEventListener("click", async () => {
  if (!provisioning) return;
  const { patient, added } = provisioning;
  const kind = ($("provision-kind") as HTMLSelectElement).value;
  $("provision-error").textContent = "";
  try {
    const r = await api<Provisioned>("/api/v1/devices", { method: "POST", body: JSON.stringify({ kind, patient_id: patient }) });
    if (provisioning?.patient !== patient) return;
    $("cred-device").textContent = r.device_id;
    $("cred-user").textContent = r.mqtt_username;
    $("cred-pass").textContent = r.mqtt_password;
    $("provisioned").hidden = false;
    ($("provisioned-done") as HTMLButtonElement).focus();
    void refreshFree();
    await added();
  } catch (err) {
    $("provision-error").textContent = `Not provisioned: ${(err as Error).message}.`;
  }
});

$("provisioned-done").addEventListener("click", () => {
  hideCredentials();
  ($("provision-go") as HTMLButtonElement).focus();
});
