// Admission and discharge, for admins: a patient admitted from the ward
// page (POST /api/v1/patients), discharged from their own page after a
// confirmation that names them (POST /api/v1/patients/{id}/discharge). The
// server checks the role, the NHS number and that one person is admitted
// once; what it answers is shown as it says it.
import { api } from "./api";
import { notice } from "./alerts";
import { $, el } from "./format";
import { alerts } from "./state";
import type { Me, PathwayInfo, PatientDetail } from "./types";

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

function isAdmin(me: Me | null): boolean { return me?.role === "admin"; }

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

let provisioning: { patient: number; added: () => Promise<void> } | null = null;

/**
 * Offer an admin to provision a device for the patient whose page is open
 * (their kit); `added` reloads the page's device list.
 */
export function showProvision(me: Me | null, p: PatientDetail | null, added: () => Promise<void>): void {
  const open = !!p?.episode && !p.episode.discharged_at;
  provisioning = isAdmin(me) && open && p ? { patient: p.id, added } : null;
  $("provision").hidden = !provisioning;
  $("assign").hidden = !provisioning;
  hideCredentials();
  $("provision-error").textContent = "";
  $("assign-status").textContent = "";
  ($("assign-device") as HTMLInputElement).value = "";
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
    await added();
  } catch (err) {
    status.textContent = `Not assigned: ${(err as Error).message}.`;
  }
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
    await added();
  } catch (err) {
    $("provision-error").textContent = `Not provisioned: ${(err as Error).message}.`;
  }
});

$("provisioned-done").addEventListener("click", () => {
  hideCredentials();
  ($("provision-go") as HTMLButtonElement).focus();
});
