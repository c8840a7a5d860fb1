// The ward page's "Discharged in the last 30 days": whom a nurse looks up
// when a discharged patient calls back (GET /api/v1/patients/discharged).
// Loaded when opened, and again when a patient joins or leaves the ward.
import { api } from "./api";
import { $, el, nhsFormat, when } from "./format";

interface Discharged {
  id: number; ward_id: number; name: string; nhs_number: string; pathway: string;
  admitted_at: string; discharged_at: string;
}

const section = $("discharged-section") as HTMLDetailsElement;
let loading = 0;

export async function refreshDischarged(): Promise<void> {
  if (!section.open) return;
  const load = ++loading;
  const status = $("discharged-status");
  try {
    const rows = await api<Discharged[]>("/api/v1/patients/discharged?days=30");
    if (load !== loading) return;
    const body = $("discharged").querySelector("tbody")!;
    body.replaceChildren(...rows.map((p) => {
      const tr = el("tr");
      tr.dataset.patient = String(p.id);
      const name = el("th");
      name.scope = "row";
      const link = el("a", "", p.name);
      link.href = `#/patients/${p.id}`;
      name.append(link);
      tr.append(name, el("td", "", nhsFormat(p.nhs_number)), el("td", "", p.pathway),
        el("td", "", when(p.admitted_at)), el("td", "", when(p.discharged_at)));
      return tr;
    }));
    status.textContent = rows.length ? "" : "No one discharged in the last 30 days.";
  } catch (e) {
    if (load === loading) status.textContent = `Could not load the discharged patients: ${(e as Error).message}.`;
  }
}

section.addEventListener("toggle", () => { void refreshDischarged(); });

/** Signed out: nothing of these patients stays on the page. */
export function clearDischarged(): void {
  loading++;
  section.open = false;
  $("discharged").querySelector("tbody")!.replaceChildren();
  $("discharged-status").textContent = "";
}
