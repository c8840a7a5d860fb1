// A user changes their own password from the header (POST
// /api/v1/me/password, docs/http.md): the current one is asked for, the new
// one twice. The server then ends every session of the account, this page's
// too, so a success goes back to the sign-in form like a sign-out does.
// The form is built when opened and dropped when closed: no password, nor
// an input for one, stays in the page.
import { api, ApiError } from "./api";
import { $, el } from "./format";
import { passwordsOn } from "./signin";

interface Open { form: HTMLFormElement; current: HTMLInputElement; next: HTMLInputElement; again: HTMLInputElement;
  submit: HTMLButtonElement; status: HTMLElement }

const box = $("password-change");
const opener = $("password-open") as HTMLButtonElement;
let open: Open | null = null;

let onChanged: () => void = () => {};
/** Called once the password is changed: every session of the account, this one too, has ended. */
export function whenPasswordChanged(f: () => void): void { onChanged = f; }

let signedInNow = false;

/**
 * The header's button, for a signed-in user only, and only where passwords
 * sign in (with single sign-on only, the password is the provider's to
 * change); signed out, the form closes too.
 */
export function showPasswordButton(signedIn: boolean): void {
  signedInNow = signedIn;
  opener.hidden = true;
  if (!signedIn) { closePassword(); return; }
  void passwordsOn().then((on) => { opener.hidden = !(on && signedInNow); });
}

/** Close the form, dropping it with whatever was typed in it. */
export function closePassword(): void {
  open = null;
  box.replaceChildren();
  box.hidden = true;
  opener.setAttribute("aria-expanded", "false");
}

function field(id: string, label: string, autocomplete: string, hint?: string): [HTMLInputElement, HTMLElement[]] {
  const l = el("label", "", label);
  l.htmlFor = id;
  const input = el("input");
  input.id = id; input.type = "password"; input.required = true;
  input.setAttribute("autocomplete", autocomplete);
  if (!hint) return [input, [l, input]];
  const h = el("span", "hint", hint);
  h.id = `${id}-hint`;
  input.setAttribute("aria-describedby", h.id);
  return [input, [l, input, h]];
}

function button(type: "submit" | "button", text: string): HTMLButtonElement {
  const b = el("button", "", text);
  b.type = type;
  return b;
}

function openPassword(): void {
  const form = el("form", "password");
  form.noValidate = true;
  form.setAttribute("aria-labelledby", "password-title");
  const title = el("h2", "", "Change password");
  title.id = "password-title";
  const [current, c] = field("pw-current", "Current password", "current-password");
  const [next, n] = field("pw-new", "New password", "new-password", "At least 8 characters.");
  const [again, a] = field("pw-again", "New password again", "new-password");
  const submit = button("submit", "Change password"), cancel = button("button", "Cancel");
  const actions = el("div", "actions");
  actions.append(submit, cancel);
  const status = el("p", "notice");
  status.setAttribute("aria-live", "polite");
  form.append(title, el("p", "hint", "Every session of your account then ends, this one too: you sign in again with the new password."),
    ...c, ...n, ...a, actions, status);
  form.addEventListener("submit", (e) => { e.preventDefault(); void change(); });
  cancel.addEventListener("click", () => { closePassword(); opener.focus(); });
  open = { form, current, next, again, submit, status };
  box.replaceChildren(form);
  box.hidden = false;
  opener.setAttribute("aria-expanded", "true");
  current.focus();
}

opener.addEventListener("click", () => { if (open) closePassword(); else openPassword(); });

async function change(): Promise<void> {
  const f = open;
  if (!f || f.submit.disabled) return;
  // Checked here, so a slip of the keyboard never costs a sign-in attempt.
  if (!f.current.value) { f.status.textContent = "Type your current password."; f.current.focus(); return; }
  if (f.next.value !== f.again.value) { f.status.textContent = "The new passwords differ."; f.again.focus(); return; }
  f.status.textContent = "Changing…";
  f.submit.disabled = true;
  try {
    await api<{ sessions_revoked: number }>("/api/v1/me/password", { method: "POST",
      body: JSON.stringify({ current_password: f.current.value, new_password: f.next.value }) });
  } catch (err) {
    f.submit.disabled = false;
    // Closed meanwhile, or a 401 that has taken the page back to sign-in.
    if (open !== f || (err instanceof ApiError && err.status === 401)) return;
    const msg = (err as Error).message;
    f.status.textContent = `Not changed: ${msg}.`;
    if (msg.startsWith("current_password:")) { f.current.value = ""; f.current.focus(); }
    return;
  }
  closePassword();
  onChanged();
}
