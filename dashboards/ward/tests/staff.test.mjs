// "Staff" on the ward page, in a real Chromium against a real `vigil demo`:
// an admin adds a member of staff to their ward, who then signs in on
// another computer; changes their role (their sessions end), disables and
// enables them, moves them between wards and sets their password, each
// told in words; accounts also on a ward not the admin's say why they
// cannot be changed. A nurse has none of it, and never reads the list.

import { test } from "node:test";
import assert from "node:assert/strict";
import { TEST_TIMEOUT, UI_TIMEOUT, assertAccessible, screenshot, signIn, withWard } from "./harness.mjs";
import { CLIENT, LABEL, ssoEnv, startOidcProvider } from "./oidc-provider.mjs";

const isUsers = (url) => new URL(url).pathname.startsWith("/api/v1/users");

/** GET from inside the page, with the page's own cookie. */
function pageGet(page, path) {
  return page.evaluate(async (path) => (await fetch(path, { credentials: "same-origin" })).json(), path);
}

/** The staff table as shown, by username: {role, wards, state, changes, manage (has a Manage button)}. */
function staffRows(page) {
  return page.locator("#staff-table tbody tr[data-user]").evaluateAll((trs) => Object.fromEntries(trs.map((tr) => {
    const [name, role, wards, state, changes] = [...tr.cells].map((c) => c.textContent);
    return [name, { role, wards, state, changes, manage: !!tr.querySelector("button") }];
  })));
}

/** The row of `username` in the staff table. */
const staffRow = (page, username) => page.locator("#staff-table tbody tr[data-user]")
  .filter({ has: page.getByRole("rowheader", { name: username, exact: true }) });

/** Another computer: a browser context of its own, its page's uncaught errors kept. */
async function elsewhere(context, demo) {
  const ctx = await context.browser().newContext({ viewport: { width: 1100, height: 520 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(UI_TIMEOUT);
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(demo.base + "/");
  return { ctx, page, errors };
}

test("an admin adds a nurse who then signs in, changes their role (signed out), disables and enables them; accounts not theirs say why; a nurse has no Staff", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo, context }) => {
    const ward = "Demo ward";
    await demo.admin(["ward", "add", "--name", "Other ward"]);
    await demo.admin(["user", "add", "--username", "other-only", "--role", "nurse", "--ward", "Other ward"], "other-only-password\n");
    await demo.admin(["user", "add", "--username", "both-wards", "--role", "consultant", "--ward", ward, "--ward", "Other ward"], "both-wards-password\n");

    // Every write the admin's page makes to the staff API.
    const writes = [];
    page.on("request", (r) => { if (isUsers(r.url()) && r.method() !== "GET") writes.push({ method: r.method(), path: new URL(r.url()).pathname, body: r.postDataJSON() }); });

    const listed = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/v1/users" && r.request().method() === "GET");
    await page.goto(demo.base + "/");
    await signIn(page, demo.login);
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();
    const served = (await (await listed).json()).users;
    const wardId = (await pageGet(page, "/api/v1/me")).wards.find((w) => w.name === ward).id;
    t.diagnostic(`GET /api/v1/users: ${JSON.stringify(served)}`);

    const section = page.getByRole("region", { name: "Staff" });
    await section.getByRole("heading", { level: 2, name: "Staff" }).waitFor();
    await staffRow(page, "both-wards").waitFor();
    let rows = await staffRows(page);
    assert.deepEqual(Object.keys(rows), served.map((u) => u.username), "a row per account served, by username");
    assert.ok(!("other-only" in rows), "an account only on a ward not the admin's is not listed");
    assert.ok(!served.some((u) => u.username === "other-only"));
    // Not the admin's to change: their own, and one also on another ward. Why, instead of controls.
    const own = served.find((u) => u.username === demo.login.username);
    assert.equal(own.manageable, false);
    assert.deepEqual(rows[demo.login.username], { role: "Admin", wards: ward, state: "Active", changes: own.why_not, manage: false });
    const both = served.find((u) => u.username === "both-wards");
    assert.equal(both.manageable, false);
    assert.ok(both.why_not, "why_not is given");
    assert.deepEqual(rows["both-wards"], { role: "Consultant", wards: `${ward} and Other ward`, state: "Active", changes: both.why_not, manage: false });
    assert.equal(await section.getByRole("button", { name: /^Manage / }).count(), 0, "no Manage button for an account not the admin's to change");

    // The form: the admin's one ward ticked already.
    const opener = section.getByRole("button", { name: "Add a member of staff" });
    await opener.click();
    assert.equal(await opener.getAttribute("aria-expanded"), "true");
    const form = page.getByRole("form", { name: "Add a member of staff" });
    await form.waitFor();
    assert.equal(await form.getByLabel("Username").evaluate((e) => e === document.activeElement), true, "the username has the focus");
    assert.equal(await form.getByRole("checkbox", { name: ward }).isChecked(), true, "the admin's only ward is ticked");
    assert.equal(await form.getByLabel(/single sign-on/).count(), 0, "no single sign-on choice where it is not configured");
    await assertAccessible(page, t, "the ward page with the Staff section and its add form");
    const error = form.getByRole("alert");

    // Checked in the page first: nothing sent.
    await form.getByLabel("Username").fill("nurse.new");
    await form.getByLabel("Password", { exact: true }).fill("short");
    await form.getByLabel("Password again").fill("short");
    await form.getByRole("button", { name: "Add" }).click();
    await error.filter({ hasText: /^The password needs at least 8 characters\.$/ }).waitFor();
    await form.getByLabel("Password", { exact: true }).fill("nurse-new-password");
    await form.getByLabel("Password again").fill("nurse-new-passw0rd");
    await form.getByRole("button", { name: "Add" }).click();
    await error.filter({ hasText: /^The two passwords differ\.$/ }).waitFor();
    assert.deepEqual(writes, [], "nothing sent for a short or differing password");

    // A name taken, in another letter case: the server's reason, the form kept.
    await form.getByLabel("Password again").fill("nurse-new-password");
    await form.getByLabel("Username").fill(demo.login.username.toUpperCase());
    const taken = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/v1/users" && r.request().method() === "POST");
    await form.getByRole("button", { name: "Add" }).click();
    const takenAnswer = await taken;
    assert.equal(takenAnswer.status(), 409);
    const takenMessage = (await takenAnswer.json()).error.message;
    await error.filter({ hasText: "Not added: " }).waitFor();
    assert.equal(await error.textContent(), `Not added: ${takenMessage.replace(/\.$/, "")}.`, "the server's message, as it says it");
    assert.equal(await form.getByLabel("Username").inputValue(), demo.login.username.toUpperCase(), "the form is kept");
    assert.equal(await form.getByLabel("Password", { exact: true }).inputValue(), "nurse-new-password");
    await assertAccessible(page, t, "the add form with the server's refusal");

    // Added: said, and the list read again with them on it.
    const password = "nurse-new-password";
    await form.getByLabel("Username").fill("nurse.new");
    const reread = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/v1/users" && r.request().method() === "GET");
    await form.getByRole("button", { name: "Add" }).click();
    await section.getByText(`Added nurse.new as nurse on ${ward}.`).waitFor();
    await reread;
    await form.waitFor({ state: "detached" });
    assert.equal(await page.locator("#staff input[type=password]").count(), 0, "no password input left in the page");
    assert.equal(await opener.evaluate((e) => e === document.activeElement), true, "the focus is back on the opener");
    assert.deepEqual(writes.at(-1).body, { username: "nurse.new", role: "nurse", wards: [wardId], password });
    await staffRow(page, "nurse.new").waitFor();
    rows = await staffRows(page);
    assert.deepEqual(rows["nurse.new"], { role: "Nurse", wards: ward, state: "Active", changes: "Manage", manage: true });

    // The new nurse, on another computer: signs in and sees the ward, with no Staff and no read of the list.
    const nurse = await elsewhere(context, demo);
    const nurseReads = [];
    nurse.page.on("request", (r) => { if (isUsers(r.url())) nurseReads.push(r.url()); });
    await signIn(nurse.page, { username: "nurse.new", password });
    await nurse.page.getByText("nurse.new (nurse)").waitFor();
    await nurse.page.getByRole("status").filter({ hasText: "live" }).waitFor();
    await nurse.page.locator("#patients tbody tr[data-patient]").first().waitFor();
    assert.equal(await nurse.page.getByRole("heading", { name: "Staff" }).count(), 0, "no Staff heading for a nurse");
    assert.equal(await nurse.page.locator("#staff").isHidden(), true);
    assert.equal(await nurse.page.getByRole("button", { name: "Add a member of staff" }).count(), 0);

    // A consultant now: said, the row changed, and their session ended.
    await section.getByRole("button", { name: "Manage nurse.new" }).click();
    const changes = section.getByRole("group", { name: "Changes to nurse.new" });
    await changes.waitFor();
    assert.equal(await changes.getByLabel("Role", { exact: true }).evaluate((e) => e === document.activeElement), true, "the role has the focus");
    assert.equal(await changes.getByLabel("New password", { exact: true }).count(), 1, "a password can be set where passwords sign in");
    await assertAccessible(page, t, "the Staff section with an account's changes open");
    await screenshot(page, "staff-manage");
    await changes.getByLabel("Role", { exact: true }).selectOption("consultant");
    await changes.getByRole("button", { name: "Save role" }).click();
    const said = changes.getByRole("status");
    await said.filter({ hasText: "nurse.new is now a consultant; their sessions have ended, so they sign in again." }).waitFor();
    const changedAt = Date.now();
    assert.deepEqual(writes.at(-1).body, { role: "consultant" });
    assert.equal((await staffRows(page))["nurse.new"].role, "Consultant");
    // At once, for any request of theirs; their open page within the stream's 15 s re-check.
    assert.equal((await nurse.ctx.request.get(demo.base + "/api/v1/me")).status(), 401, "their next request is refused");
    await nurse.page.getByRole("alert").filter({ hasText: "session has ended" }).waitFor({ timeout: 30_000 });
    t.diagnostic(`the nurse's open page signed itself out ${Date.now() - changedAt} ms after the role changed`);
    await signIn(nurse.page, { username: "nurse.new", password });
    await nurse.page.getByText("nurse.new (consultant)").waitFor();

    // Disable asks first, saying what it ends; keeping them changes nothing.
    const toggle = changes.getByRole("button", { name: "Disable…" });
    await toggle.click();
    const question = changes.getByRole("group", { name: /^Disable nurse\.new\?/ });
    await question.waitFor();
    assert.match(await question.textContent(), /sessions and API tokens end now/);
    assert.equal(await toggle.getAttribute("aria-expanded"), "true");
    await assertAccessible(page, t, "the question before disabling an account");
    const before = writes.length;
    await question.getByRole("button", { name: "Keep nurse.new active" }).click();
    await question.waitFor({ state: "hidden" });
    assert.equal(writes.length, before, "nothing sent when kept");
    assert.equal(await toggle.evaluate((e) => e === document.activeElement), true, "the focus is back on Disable…");
    await toggle.click();
    await question.getByRole("button", { name: "Yes, disable nurse.new" }).click();
    await said.filter({ hasText: "nurse.new is disabled: they cannot sign in, and their sessions and API tokens have ended." }).waitFor();
    assert.deepEqual(writes.at(-1).body, { disabled: true });
    assert.match((await staffRows(page))["nurse.new"].state, /^Disabled since /);
    assert.equal((await nurse.ctx.request.get(demo.base + "/api/v1/me")).status(), 401, "their session ended");

    // Disabled, they cannot sign in; the sign-in form says so.
    await nurse.page.goto(demo.base + "/");
    const refused = nurse.page.waitForResponse((r) => r.url().endsWith("/api/v1/login"));
    await signIn(nurse.page, { username: "nurse.new", password });
    assert.equal((await refused).status(), 401);
    await nurse.page.getByRole("alert").filter({ hasText: "Sign-in failed: check your username and password." }).waitFor();

    // Enabled again: said, and they sign in.
    const enable = changes.getByRole("button", { name: "Enable" });
    await enable.click();
    await said.filter({ hasText: /^nurse\.new is enabled: they can sign in again\./ }).waitFor();
    assert.deepEqual(writes.at(-1).body, { disabled: false });
    assert.equal((await staffRows(page))["nurse.new"].state, "Active");
    await signIn(nurse.page, { username: "nurse.new", password });
    await nurse.page.getByText("nurse.new (consultant)").waitFor();
    await nurse.page.locator("#patients tbody tr[data-patient]").first().waitFor();
    assert.deepEqual(nurseReads, [], "the nurse's page never read the staff list, as a nurse or as a consultant");
    assert.deepEqual(nurse.errors, [], "the other computer's page threw nothing");
    await nurse.ctx.close();

    // Signed out: nothing of it left.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Username").waitFor({ state: "visible" });
    assert.equal(await page.locator("#staff").isHidden(), true);
    assert.equal(await page.locator("#staff-table tbody tr").count(), 0, "no row left after signing out");
    assert.equal(await page.locator("#staff input").count(), 0, "no input left");
    assert.equal(await page.locator("#staff-notice").textContent(), "");
  }, { patients: 2 });
});


test("with single sign-on, an admin adds an account that signs in only through it; moves a nurse onto another of their wards and sets her password", { timeout: TEST_TIMEOUT }, async (t) => {
  const provider = await startOidcProvider(CLIENT);
  try {
    await withWard(t, async ({ page, demo, context }) => {
      // The admin has two wards; a nurse is on the first.
      await demo.admin(["ward", "add", "--name", "Ward B"]);
      await demo.admin(["user", "wards", "--username", demo.login.username, "--ward", "Demo ward", "--ward", "Ward B"]);
      const oldPassword = "night-nurse-password";
      await demo.admin(["user", "add", "--username", "night.nurse", "--role", "nurse", "--ward", "Demo ward"], `${oldPassword}\n`);
      const writes = [];
      page.on("request", (r) => { if (isUsers(r.url()) && r.method() !== "GET") writes.push({ method: r.method(), path: new URL(r.url()).pathname, body: r.postDataJSON() }); });

      await page.goto(demo.base + "/");
      await signIn(page, demo.login);
      await page.getByRole("status").filter({ hasText: "live" }).waitFor();
      const section = page.getByRole("region", { name: "Staff" });
      await staffRow(page, "night.nurse").waitFor();
      // Refresh reads the list again (nothing polls it).
      const [reread] = await Promise.all([
        page.waitForResponse((r) => new URL(r.url()).pathname === "/api/v1/users" && r.request().method() === "GET"),
        section.getByRole("button", { name: "Refresh" }).click(),
      ]);
      assert.equal(reread.status(), 200);
      const wardIds = Object.fromEntries((await pageGet(page, "/api/v1/me")).wards.map((w) => [w.name, w.id]));

      // Single sign-on only: no password asked, none sent.
      await section.getByRole("button", { name: "Add a member of staff" }).click();
      const form = page.getByRole("form", { name: "Add a member of staff" });
      await form.waitFor();
      assert.equal(await form.getByRole("checkbox", { name: "Demo ward" }).isChecked(), false, "with two wards, none is ticked for the admin");
      assert.equal(await form.getByRole("checkbox", { name: "Ward B" }).isChecked(), false);
      const ssoOnly = form.getByRole("checkbox", { name: /^Signs in only through single sign-on/ });
      await ssoOnly.check();
      await form.getByLabel("Password", { exact: true }).waitFor({ state: "hidden" });
      await form.getByLabel("Username").fill("dr.sso");
      await form.getByLabel("Role").selectOption("consultant");
      // No ward ticked: said in the page, nothing sent.
      await form.getByRole("button", { name: "Add" }).click();
      await form.getByRole("alert").filter({ hasText: /^Tick at least one ward\.$/ }).waitFor();
      assert.deepEqual(writes, []);
      await form.getByRole("checkbox", { name: "Ward B" }).check();
      await assertAccessible(page, t, "the add form with single sign-on");
      await form.getByRole("button", { name: "Add" }).click();
      await section.getByText(`Added dr.sso as consultant on Ward B. They sign in with ${LABEL}.`).waitFor();
      assert.deepEqual(writes.at(-1).body, { username: "dr.sso", role: "consultant", wards: [wardIds["Ward B"]], sso_only: true });
      await staffRow(page, "dr.sso").waitFor();
      assert.deepEqual((await staffRows(page))["dr.sso"], { role: "Consultant", wards: "Ward B", state: "Active", changes: "Manage", manage: true });

      // They sign in through the provider, on another computer.
      const other = await elsewhere(context, demo);
      provider.user = "dr.sso";
      await other.page.getByRole("link", { name: `Sign in with ${LABEL}` }).click();
      await other.page.getByText("dr.sso (consultant)").waitFor();
      assert.deepEqual(other.errors, []);
      await other.ctx.close();

      // The nurse onto Ward B too; none ticked is said, not sent.
      await section.getByRole("button", { name: "Manage night.nurse" }).click();
      const changes = section.getByRole("group", { name: "Changes to night.nurse" });
      const said = changes.getByRole("status"), error = changes.getByRole("alert");
      await changes.getByRole("checkbox", { name: "Demo ward" }).uncheck();
      await changes.getByRole("button", { name: "Save wards" }).click();
      await error.filter({ hasText: /^Tick at least one ward\.$/ }).waitFor();
      await changes.getByRole("checkbox", { name: "Demo ward" }).check();
      await changes.getByRole("checkbox", { name: "Ward B" }).check();
      await changes.getByRole("button", { name: "Save wards" }).click();
      await said.filter({ hasText: "night.nurse is now on Demo ward and Ward B." }).waitFor();
      assert.equal(writes.at(-1).method, "PATCH");
      assert.deepEqual(writes.at(-1).body, { wards: [wardIds["Demo ward"], wardIds["Ward B"]] });
      assert.equal((await staffRows(page))["night.nurse"].wards, "Demo ward and Ward B");
      // The same role again: said, nothing sent (it would end her sessions for nothing).
      const before = writes.length;
      await changes.getByRole("button", { name: "Save role" }).click();
      await said.filter({ hasText: "night.nurse is a nurse already: nothing changed." }).waitFor();
      assert.equal(writes.length, before);

      // A new password: checked in the page, then set; the old one no longer signs in.
      const next = changes.getByLabel("New password", { exact: true }), again = changes.getByLabel("New password again");
      await next.fill("short");
      await again.fill("short");
      await changes.getByRole("button", { name: "Set password" }).click();
      await error.filter({ hasText: /^The password needs at least 8 characters\.$/ }).waitFor();
      await next.fill("a-new-night-password");
      await again.fill("a-new-night-passw0rd");
      await changes.getByRole("button", { name: "Set password" }).click();
      await error.filter({ hasText: /^The two passwords differ\.$/ }).waitFor();
      assert.equal(writes.length, before, "nothing sent");
      await again.fill("a-new-night-password");
      await changes.getByRole("button", { name: "Set password" }).click();
      await said.filter({ hasText: /^night\.nurse's password is set: they sign in with it now\./ }).waitFor();
      assert.deepEqual(writes.at(-1), { method: "POST", path: writes.at(-1).path, body: { password: "a-new-night-password" } });
      assert.match(writes.at(-1).path, /^\/api\/v1\/users\/\d+\/password$/);
      assert.equal(await next.inputValue(), "", "the password typed is cleared");
      const login = (password) => fetch(`${demo.base}/api/v1/login`, { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "night.nurse", password }) }).then((r) => r.status);
      assert.equal(await login(oldPassword), 401, "the old password no longer signs in");
      assert.equal(await login("a-new-night-password"), 200, "the new one does");
      await screenshot(page, "staff-sso");
    }, { patients: 1, env: ssoEnv(provider) });
    assert.deepEqual(provider.refusals, [], "the provider refused nothing Vigil sent");
  } finally {
    await provider.close();
  }
});

test("with passwords turned off, the Staff section adds accounts for single sign-on only and offers no password to set", { timeout: TEST_TIMEOUT }, async (t) => {
  const provider = await startOidcProvider(CLIENT);
  try {
    await withWard(t, async ({ page, demo }) => {
      await demo.admin(["user", "add", "--username", "day.nurse", "--role", "nurse", "--ward", "Demo ward", "--sso-only"]);
      const writes = [];
      page.on("request", (r) => { if (isUsers(r.url()) && r.method() !== "GET") writes.push(r.postDataJSON()); });
      await page.goto(demo.base + "/");
      provider.user = demo.login.username;
      await page.getByRole("link", { name: `Sign in with ${LABEL}` }).click();
      await page.getByText(`${demo.login.username} (admin)`).waitFor();
      const section = page.getByRole("region", { name: "Staff" });
      await staffRow(page, "day.nurse").waitFor();

      await section.getByRole("button", { name: "Add a member of staff" }).click();
      const form = page.getByRole("form", { name: "Add a member of staff" });
      await form.getByText(`They sign in with ${LABEL}: passwords are off here.`).waitFor();
      assert.equal(await form.locator("input[type=password]").count(), 0, "no password to type");
      assert.equal(await form.getByRole("checkbox", { name: /single sign-on/ }).count(), 0, "no choice: single sign-on is the only way in");
      await assertAccessible(page, t, "the add form with passwords off");
      await form.getByLabel("Username").fill("bank.nurse");
      await form.getByRole("button", { name: "Add" }).click();
      await section.getByText(`Added bank.nurse as nurse on Demo ward. They sign in with ${LABEL}.`).waitFor();
      assert.equal(writes.at(-1).sso_only, true);
      assert.equal("password" in writes.at(-1), false);

      await section.getByRole("button", { name: "Manage day.nurse" }).click();
      const changes = section.getByRole("group", { name: "Changes to day.nurse" });
      await changes.getByRole("button", { name: "Save role" }).waitFor();
      assert.equal(await changes.locator("input[type=password]").count(), 0, "no password to set where passwords are off");
      assert.equal(await changes.getByRole("button", { name: "Set password" }).count(), 0);
    }, { patients: 1, env: ssoEnv(provider, { VIGIL_SSO_PASSWORD_LOGIN: "false" }) });
    assert.deepEqual(provider.refusals, [], "the provider refused nothing Vigil sent");
  } finally {
    await provider.close();
  }
});
