// The ward page's "Staff", for admins: the accounts that share a ward with
// them (GET /api/v1/users), each with its role, its wards and whether it is
// disabled, and a new member of staff added to the admin's own wards (POST
// /api/v1/users). Until now every account change was `vigil admin user …`
// on the server, so a ward manager who needed a bank nurse on tonight's
// shift needed someone with a shell. An account the admin may change opens
// under its row for the changes a ward makes: another role, other wards,
// disabled (a leaver) or enabled again, a new password (a forgotten one).
// The server decides who may change what (never one's own account, nor one
// also on a ward not the admin's) and says why not in words: shown in the
// row instead of the controls. What ends someone's sessions is said before
// it is done (disabling, after an in-page question, as a discharge is) and
// after. Read when the ward page shows and on Refresh: accounts change
// seldom, so nothing polls. Hidden, and never read, for anyone but an admin;
// nothing of it stays on the page once signed out.
// The forms with a password in them are built when opened and dropped when
// closed, as the header's password form is: no password, nor an input for
// one, stays in the page.
import { api, ApiError } from "./api";
import { isAdmin } from "./admission";
import { $, el, timeEl, when } from "./format";
import { signInMethods } from "./signin";
import type { AuthMethods, Me, StaffAccount, StaffRole, WardName } from "./types";

const ROLES: { role: StaffRole; text: string }[] = [
  { role: "nurse", text: "Nurse" },
  { role: "consultant", text: "Consultant" },
  { role: "admin", text: "Admin" },
];
const ROLE_WORD: Record<StaffRole, string> = { nurse: "nurse", consultant: "consultant", admin: "admin" };
/** As the server's rule (crates/vigil-web/src/admin.rs): checked here too, so a slip costs no round trip. */
const MIN_PASSWORD = 8;
const COLUMNS = 5;

const section = $("staff");
const addOpener = $("staff-add-open") as HTMLButtonElement;
const addBox = $("staff-add");
const notice = $("staff-notice");
const tbody = (): HTMLTableSectionElement => $("staff-table").querySelector("tbody")!;

interface AddForm {
  username: HTMLInputElement; role: HTMLSelectElement; wards: HTMLInputElement[];
  sso: HTMLInputElement | null; next: HTMLInputElement | null; again: HTMLInputElement | null;
  submit: HTMLButtonElement; error: HTMLElement;
}

/** The changes to one account, open under its row. */
interface Panel {
  user: StaffAccount; tr: HTMLTableRowElement; role: HTMLSelectElement; wards: HTMLInputElement[];
  toggle: HTMLButtonElement; question: HTMLElement; next: HTMLInputElement | null; again: HTMLInputElement | null;
  status: HTMLElement; error: HTMLElement; busy: boolean;
}

let me: Me | null = null;
let methods: AuthMethods = { password: true, sso: null };
let users: StaffAccount[] | null = null; // as last read; kept when a read fails
let loading = 0; // increments per read and on clearing, so a late answer is dropped
let signedIn = 0; // increments on clearing: a change answered after a sign-out is not drawn
let adding: AddForm | null = null;
let openId: number | null = null; // whose changes are open
let panel: Panel | null = null;

// ---------------------------------------------------------------- words

const article = (role: StaffRole): string => `${role === "admin" ? "an" : "a"} ${ROLE_WORD[role]}`;

/** "Ward A", "Ward A and Ward B", "Ward A, Ward B and Ward C". */
function wardWords(wards: WardName[]): string {
  const names = wards.map((w) => w.name);
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

/** The server's message, meant for people, without a full stop of its own (the sentence around it has one). */
const reason = (err: unknown): string => (err as Error).message.replace(/\.$/, "");

/** A 401 has already taken the page back to the sign-in form: nothing to say here. */
const signedOut = (err: unknown): boolean => err instanceof ApiError && err.status === 401;

// ---------------------------------------------------------------- shown, read, cleared

/** The ward page is shown: for an admin, the staff, read now; hidden, and not read, for anyone else. */
export function showStaff(m: Me | null): void {
  if (!isAdmin(m)) { clearStaff(); return; }
  me = m;
  section.hidden = false;
  void refreshStaff();
}

/** Signed out (or not an admin): hidden, and nothing of it stays on the page. */
export function clearStaff(): void {
  loading++;
  signedIn++;
  me = null;
  users = null;
  closePanel();
  closeAdd();
  section.hidden = true;
  tbody().replaceChildren();
  for (const id of ["staff-count", "staff-status", "staff-notice"]) $(id).textContent = "";
}

/** Read the accounts (and how one signs in here) again, while the section is shown. */
export async function refreshStaff(): Promise<void> {
  if (!me) return;
  const load = ++loading;
  try {
    const [list, m] = await Promise.all([api<{ users: StaffAccount[] }>("/api/v1/users"), signInMethods()]);
    if (load !== loading) return;
    users = list.users;
    methods = m;
    $("staff-status").textContent = "";
    draw();
  } catch (e) {
    // The last table stays, as it was read.
    if (load === loading && !signedOut(e)) $("staff-status").textContent = `Staff not read: ${reason(e)}.`;
  }
}

/** The control with the keyboard focus in the table, by what it is for (it is drawn anew). */
function focusedKey(): string | undefined {
  const a = document.activeElement as HTMLElement | null;
  return a && tbody().contains(a) ? a.dataset.focus : undefined;
}

function refocus(key: string | undefined): void {
  if (key) tbody().querySelector<HTMLElement>(`[data-focus="${CSS.escape(key)}"]`)?.focus();
}

/** Draw the accounts as last read, with the open one's changes under its row (anew: what was typed there goes). */
function draw(): void {
  if (!users) return;
  const key = focusedKey();
  const open = users.find((u) => u.id === openId && u.manageable);
  if (!open) { openId = null; panel = null; }
  const rows: HTMLTableRowElement[] = [];
  for (const u of users) {
    rows.push(row(u));
    if (u === open) rows.push((panel = buildPanel(u)).tr);
  }
  tbody().replaceChildren(...rows);
  const disabled = users.filter((u) => u.disabled_at).length;
  $("staff-count").textContent = users.length
    ? `${users.length} account${users.length === 1 ? "" : "s"}${disabled ? `, ${disabled} disabled` : ""}.`
    : "No accounts.";
  refocus(key);
}

function row(u: StaffAccount): HTMLTableRowElement {
  const tr = el("tr", u.disabled_at ? "disabled" : "");
  tr.dataset.user = String(u.id);
  const name = el("th", "", u.username);
  name.scope = "row";
  const state = el("td");
  if (u.disabled_at) {
    state.append("Disabled since ", timeEl(u.disabled_at, when(u.disabled_at)));
  } else {
    state.textContent = "Active";
  }
  const changes = el("td", "staff-changes");
  if (u.manageable) {
    const b = el("button", "", "Manage");
    b.type = "button";
    // The visible word first in the name (WCAG 2.5.3): there is one per row.
    b.setAttribute("aria-label", `Manage ${u.username}`);
    b.setAttribute("aria-expanded", String(u.id === openId));
    if (u.id === openId) b.setAttribute("aria-controls", panelId(u.id));
    b.dataset.focus = `${u.id}:manage`;
    b.addEventListener("click", () => toggleManage(u.id));
    changes.append(b);
  } else {
    changes.append(el("span", "why-not", u.why_not || "Not yours to change."));
  }
  tr.append(name, el("td", "", ROLES.find((r) => r.role === u.role)?.text || u.role), el("td", "", wardWords(u.wards) || "none"),
    state, changes);
  return tr;
}

const panelId = (id: number): string => `staff-manage-${id}`;

function toggleManage(id: number): void {
  const closing = openId === id;
  closePanel();
  if (!closing) openId = id;
  draw();
  if (closing) refocus(`${id}:manage`);
  else panel?.role.focus();
}

function closePanel(): void {
  openId = null;
  panel = null;
}

/** The account's row again, as the server now has it, and its open changes set to match. */
function replaceUser(u: StaffAccount): void {
  if (!users) return;
  const i = users.findIndex((x) => x.id === u.id);
  if (i < 0) return;
  users[i] = u;
  if (!u.manageable) { draw(); return; }
  tbody().querySelector(`tr[data-user="${u.id}"]`)?.replaceWith(row(u));
  if (panel?.user.id === u.id) matchPanel(panel, u);
  const disabled = users.filter((x) => x.disabled_at).length;
  $("staff-count").textContent = `${users.length} account${users.length === 1 ? "" : "s"}${disabled ? `, ${disabled} disabled` : ""}.`;
}

// ---------------------------------------------------------------- small builders

function button(text: string, type: "button" | "submit" = "button"): HTMLButtonElement {
  const b = el("button", "", text);
  b.type = type;
  return b;
}

/** A label and its input (or select), and a hint read with it. */
function labelled<T extends HTMLInputElement | HTMLSelectElement>(control: T, id: string, label: string, hint?: string): HTMLElement[] {
  control.id = id;
  const l = el("label", "", label);
  l.htmlFor = id;
  if (!hint) return [l, control];
  const h = el("span", "hint", hint);
  h.id = `${id}-hint`;
  control.setAttribute("aria-describedby", h.id);
  return [l, control, h];
}

function passwordInput(): HTMLInputElement {
  const i = el("input");
  i.type = "password";
  // Never the admin's own, offered by the browser: this is someone else's new one.
  i.setAttribute("autocomplete", "new-password");
  return i;
}

function roleSelect(value: StaffRole): HTMLSelectElement {
  const s = el("select");
  s.append(...ROLES.map((r) => { const o = el("option", "", r.text); o.value = r.role; return o; }));
  s.value = value;
  return s;
}

/** A checkbox per ward of the admin's, in a fieldset. */
function wardBoxes(legend: string, ticked: (w: WardName) => boolean, hint?: string): [HTMLFieldSetElement, HTMLInputElement[]] {
  const set = el("fieldset", "wards");
  set.append(el("legend", "", legend));
  if (hint) set.append(el("span", "hint", hint));
  const boxes = (me?.wards || []).map((w) => {
    const c = el("input");
    c.type = "checkbox";
    c.value = String(w.id);
    c.checked = ticked(w);
    const l = el("label");
    l.append(c, ` ${w.name}`);
    set.append(l);
    return c;
  });
  return [set, boxes];
}

const tickedWards = (boxes: HTMLInputElement[]): WardName[] =>
  (me?.wards || []).filter((w) => boxes.some((c) => c.checked && c.value === String(w.id)));

/** A new password and the same again: what is wrong with them, in words, or null. */
function passwordProblem(next: HTMLInputElement, again: HTMLInputElement): [string, HTMLInputElement] | null {
  if (next.value.length < MIN_PASSWORD) return [`The password needs at least ${MIN_PASSWORD} characters.`, next];
  if (next.value !== again.value) return ["The two passwords differ.", again];
  return null;
}

// ---------------------------------------------------------------- a member of staff added

function closeAdd(): void {
  adding = null;
  addBox.replaceChildren();
  addBox.hidden = true;
  addOpener.setAttribute("aria-expanded", "false");
}

addOpener.addEventListener("click", async () => {
  if (adding) { closeAdd(); return; }
  notice.textContent = "";
  // Whether to offer a password, single sign-on or both (asked once per sign-in).
  methods = await signInMethods();
  if (me && !adding) openAdd();
});

function openAdd(): void {
  const form = el("form", "staff-add");
  form.noValidate = true;
  form.setAttribute("aria-labelledby", "staff-add-title");
  const title = el("h3", "", "Add a member of staff");
  title.id = "staff-add-title";

  const sso = methods.sso;
  const username = el("input");
  username.required = true;
  username.spellcheck = false;
  username.setAttribute("autocomplete", "off");
  username.setAttribute("autocapitalize", "none");
  const nameHint = `What they sign in with${sso ? `; with ${sso.label}, the username they have there` : ""}. One taken already, in any letter case, cannot be used.`;
  const role = roleSelect("nurse");
  const mine = me?.wards || [];
  // The admin's ward, when they have just the one: who they add is almost always for it.
  const [wardSet, wards] = wardBoxes("Wards", () => mine.length === 1, "They see these wards' patients and alerts.");

  form.append(title, ...labelled(username, "staff-username", "Username", nameHint),
    ...labelled(role, "staff-role", "Role", "A consultant reviews escalations; an admin also admits, gives kit and manages staff."),
    wardSet);

  let ssoBox: HTMLInputElement | null = null, next: HTMLInputElement | null = null, again: HTMLInputElement | null = null;
  if (methods.password) {
    const passwords = el("div", "passwords");
    next = passwordInput();
    again = passwordInput();
    passwords.append(...labelled(next, "staff-password", "Password", `At least ${MIN_PASSWORD} characters. Tell it to them yourself; they can change it from the header once signed in.`),
      ...labelled(again, "staff-password-again", "Password again"));
    if (sso) {
      ssoBox = el("input");
      ssoBox.type = "checkbox";
      ssoBox.id = "staff-sso";
      const l = el("label", "check", "");
      l.append(ssoBox, ` Signs in only through single sign-on (${sso.label}): no password`);
      const box = ssoBox;
      box.addEventListener("change", () => { passwords.hidden = box.checked; });
      form.append(l);
    }
    form.append(passwords);
  } else if (sso) {
    form.append(el("p", "hint", `They sign in with ${sso.label}: passwords are off here.`));
  }

  const submit = button("Add", "submit"), cancel = button("Cancel");
  const actions = el("div", "actions");
  actions.append(submit, cancel);
  const error = el("p", "error");
  error.setAttribute("role", "alert");
  form.append(actions, error);
  form.addEventListener("submit", (e) => { e.preventDefault(); void add(); });
  cancel.addEventListener("click", () => { closeAdd(); addOpener.focus(); });

  adding = { username, role, wards, sso: ssoBox, next, again, submit, error };
  addBox.replaceChildren(form);
  addBox.hidden = false;
  addOpener.setAttribute("aria-expanded", "true");
  username.focus();
}

async function add(): Promise<void> {
  const f = adding;
  if (!f || f.submit.disabled) return;
  const fail = (text: string, focus?: HTMLElement): void => { f.error.textContent = text; focus?.focus(); };
  const username = f.username.value.trim();
  if (!username) { fail("Type their username.", f.username); return; }
  const wards = tickedWards(f.wards);
  if (!wards.length) { fail("Tick at least one ward.", f.wards[0]); return; }
  // Single sign-on only: ticked, or the only way in here.
  const ssoOnly = !f.next || !!f.sso?.checked;
  if (!ssoOnly && f.next && f.again) {
    const bad = passwordProblem(f.next, f.again);
    if (bad) { fail(...bad); return; }
  }
  const role = f.role.value as StaffRole;
  const body = { username, role, wards: wards.map((w) => w.id), ...(ssoOnly ? { sso_only: true } : { password: f.next!.value }) };
  f.error.textContent = "";
  f.submit.disabled = true;
  try {
    await api<{ id: number }>("/api/v1/users", { method: "POST", body: JSON.stringify(body) });
  } catch (err) {
    f.submit.disabled = false;
    // Closed meanwhile, or signed out.
    if (adding !== f || signedOut(err)) return;
    const msg = reason(err);
    // The field the server names (its messages start with it), or the username when it is taken.
    const field = err instanceof ApiError && err.status === 409 ? f.username
      : msg.startsWith("password") ? f.next : msg.startsWith("wards") ? f.wards[0] : msg.startsWith("role") ? f.role
        : msg.startsWith("username") ? f.username : undefined;
    fail(`Not added: ${msg}.`, field ?? undefined);
    return;
  }
  if (adding !== f) return;
  closeAdd();
  notice.textContent = `Added ${username} as ${ROLE_WORD[role]} on ${wardWords(wards)}.${ssoOnly && methods.sso ? ` They sign in with ${methods.sso.label}.` : ""}`;
  addOpener.focus();
  await refreshStaff();
}

// ---------------------------------------------------------------- one account changed

function buildPanel(u: StaffAccount): Panel {
  const tr = el("tr", "staff-panel");
  tr.dataset.panel = String(u.id);
  const td = el("td");
  td.colSpan = COLUMNS;
  const box = el("div", "staff-manage");
  box.id = panelId(u.id);
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", `Changes to ${u.username}`);
  const idp = `staff-${u.id}`;

  const roleSet = el("div", "part");
  const role = roleSelect(u.role);
  role.dataset.focus = `${u.id}:role`;
  const saveRole = button("Save role");
  saveRole.dataset.focus = `${u.id}:save-role`;
  roleSet.append(...labelled(role, `${idp}-role`, "Role", "Their sessions end: they sign in again with the new role."), saveRole);

  const [wardSet, wards] = wardBoxes("Wards", (w) => u.wards.some((x) => x.id === w.id));
  wardSet.classList.add("part");
  const saveWards = button("Save wards");
  saveWards.dataset.focus = `${u.id}:save-wards`;
  wardSet.append(saveWards);

  const accessSet = el("div", "part");
  const toggle = button("");
  toggle.dataset.focus = `${u.id}:toggle`;
  const question = el("div", "confirm");
  question.id = `${idp}-confirm`;
  question.setAttribute("role", "group");
  question.hidden = true;
  accessSet.append(toggle, question);

  let next: HTMLInputElement | null = null, again: HTMLInputElement | null = null;
  const parts: HTMLElement[] = [roleSet, wardSet, accessSet];
  if (methods.password) {
    const pwSet = el("fieldset", "part");
    pwSet.append(el("legend", "", "Set a new password"));
    next = passwordInput();
    again = passwordInput();
    const set = button("Set password");
    set.dataset.focus = `${u.id}:set-password`;
    pwSet.append(...labelled(next, `${idp}-password`, "New password", `At least ${MIN_PASSWORD} characters. Their sessions end; tell them the new one yourself.`),
      ...labelled(again, `${idp}-password-again`, "New password again"), set);
    parts.push(pwSet);
    set.addEventListener("click", () => { if (panel === p) void setPassword(p); });
  }

  const status = el("p", "notice");
  status.setAttribute("role", "status");
  const error = el("p", "error");
  error.setAttribute("role", "alert");
  box.append(...parts, status, error);
  td.append(box);
  tr.append(td);

  const p: Panel = { user: u, tr, role, wards, toggle, question, next, again, status, error, busy: false };
  matchPanel(p, u);

  saveRole.addEventListener("click", () => {
    const to = role.value as StaffRole;
    if (to === p.user.role) { say(p, `${p.user.username} is ${article(to)} already: nothing changed.`); return; }
    void change(p, { role: to }, (x) => `${x.username} is now ${article(x.role)}; their sessions have ended, so they sign in again.`);
  });
  saveWards.addEventListener("click", () => {
    const chosen = tickedWards(wards);
    if (!chosen.length) { fail(p, "Tick at least one ward.", wards[0]); return; }
    const same = chosen.length === p.user.wards.length && chosen.every((w) => p.user.wards.some((x) => x.id === w.id));
    if (same) { say(p, `${p.user.username} is on ${wardWords(chosen)} already: nothing changed.`); return; }
    void change(p, { wards: chosen.map((w) => w.id) }, (x) => `${x.username} is now on ${wardWords(x.wards)}.`);
  });
  toggle.addEventListener("click", () => {
    if (p.user.disabled_at) {
      void change(p, { disabled: false }, (x) => `${x.username} is enabled: they can sign in again. The sessions and API tokens that ended when it was disabled stay ended.`);
    } else if (question.hidden) {
      ask(p);
    } else {
      closeQuestion(p);
    }
  });
  return p;
}

/** The controls as the account now is; an open question closed. */
function matchPanel(p: Panel, u: StaffAccount): void {
  p.user = u;
  p.role.value = u.role;
  for (const c of p.wards) c.checked = u.wards.some((w) => String(w.id) === c.value);
  closeQuestion(p);
  p.toggle.textContent = u.disabled_at ? "Enable" : "Disable…";
  if (u.disabled_at) {
    p.toggle.removeAttribute("aria-expanded");
    p.toggle.removeAttribute("aria-controls");
  } else {
    p.toggle.setAttribute("aria-expanded", "false");
    p.toggle.setAttribute("aria-controls", p.question.id);
  }
}

/** Disable asks first, in the page (as a discharge or a revoked device does), saying what it ends. */
function ask(p: Panel): void {
  const name = p.user.username;
  const text = el("p", "", `Disable ${name}? They can no longer sign in, and their sessions and API tokens end now:`
    + " a page they have open signs out, and a script using one of their tokens stops. What they recorded stays, under their name."
    + " You can enable the account again; the sessions and tokens stay ended.");
  text.id = `${p.question.id}-text`;
  const yes = button(`Yes, disable ${name}`), no = button(`Keep ${name} active`);
  p.question.setAttribute("aria-labelledby", text.id);
  p.question.replaceChildren(text, yes, no);
  p.question.hidden = false;
  p.toggle.setAttribute("aria-expanded", "true");
  yes.addEventListener("click", () => {
    void change(p, { disabled: true }, (x) => `${x.username} is disabled: they cannot sign in, and their sessions and API tokens have ended.`);
  });
  no.addEventListener("click", () => { closeQuestion(p); p.toggle.focus(); });
  no.focus();
}

function closeQuestion(p: Panel): void {
  const back = p.question.contains(document.activeElement);
  p.question.hidden = true;
  p.question.replaceChildren();
  if (!p.user.disabled_at) p.toggle.setAttribute("aria-expanded", "false");
  if (back) p.toggle.focus();
}

function say(p: Panel, text: string): void {
  p.error.textContent = "";
  p.status.textContent = text;
}

function fail(p: Panel, text: string, focus?: HTMLElement | null): void {
  p.status.textContent = "";
  p.error.textContent = text;
  focus?.focus();
}

/** The panel now open for `id`, if any: a refresh may have drawn it anew while a change was on its way. */
const panelFor = (id: number): Panel | null => (panel?.user.id === id ? panel : null);

/** PATCH the account; its row and controls then show what the server answered, and `said` says it in words. */
async function change(p: Panel, what: { role?: StaffRole; wards?: number[]; disabled?: boolean },
  said: (u: StaffAccount) => string): Promise<void> {
  if (p.busy) return;
  p.busy = true;
  say(p, "Saving…");
  const id = p.user.id, session = signedIn;
  try {
    const u = await api<StaffAccount>(`/api/v1/users/${id}`, { method: "PATCH", body: JSON.stringify(what) });
    if (session !== signedIn) return;
    replaceUser(u);
    const now = panelFor(id);
    if (now) say(now, said(u)); else notice.textContent = said(u);
  } catch (err) {
    if (signedOut(err) || session !== signedIn) return;
    const now = panelFor(id);
    // The answer says the page is behind (gone, or no longer yours to change): Refresh shows it as it is.
    const behind = err instanceof ApiError && (err.status === 404 || err.status === 403) ? " Refresh to see the list as it is now." : "";
    if (now) { closeQuestion(now); fail(now, `Not changed: ${reason(err)}.${behind}`); }
  } finally {
    p.busy = false;
  }
}

async function setPassword(p: Panel): Promise<void> {
  const { next, again } = p;
  if (!next || !again || p.busy) return;
  const bad = passwordProblem(next, again);
  if (bad) { fail(p, ...bad); return; }
  p.busy = true;
  say(p, "Setting…");
  const { id, username } = p.user, session = signedIn;
  try {
    const r = await api<{ sessions_revoked: number }>(`/api/v1/users/${id}/password`, { method: "POST",
      body: JSON.stringify({ password: next.value }) });
    next.value = "";
    again.value = "";
    if (session !== signedIn) return;
    const n = r.sessions_revoked;
    const text = `${username}'s password is set: they sign in with it now${n ? `, and their ${n} open session${n === 1 ? "" : "s"} ended` : ""}.`
      + " They can change it from the header once signed in.";
    const now = panelFor(id);
    if (now) say(now, text); else notice.textContent = text;
  } catch (err) {
    if (signedOut(err) || session !== signedIn) return;
    const now = panelFor(id);
    if (now) fail(now, `Not set: ${reason(err)}.`, now === p ? next : null);
  } finally {
    p.busy = false;
  }
}

$("staff-refresh").addEventListener("click", () => { void refreshStaff(); });
