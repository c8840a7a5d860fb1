// "Record access" on the patient page, in a real Chromium against a real
// `vigil demo`: an admin sees who opened a patient's record (from the audit
// trail, read only when asked: reading it is itself audited); a nurse has
// none of it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { TEST_TIMEOUT, UI_TIMEOUT, assertAccessible, screenshot, signIn, withWard } from "./harness.mjs";

/** GET from inside the page, with the page's own cookie. */
function pageGet(page, path) {
  return page.evaluate(async (path) => (await fetch(path, { credentials: "same-origin" })).json(), path);
}

/** The record-access table as shown: one {when, who, what, from} per row. */
function accessRows(page) {
  return page.locator("#access-table tbody tr").evaluateAll((trs) => trs.map((tr) => {
    const [when, who, what, from] = [...tr.cells].map((c) => c.textContent);
    return { when, who, what, from, action: tr.dataset.action };
  }));
}

test("an admin is shown who opened a patient's record, in plain words, only when asked; a nurse has no Record access", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo, context }) => {
    // Every read of the audit trail the admin's page makes.
    const auditReads = [];
    page.on("request", (r) => { if (new URL(r.url()).pathname === "/api/v1/audit") auditReads.push(r.url()); });

    await page.goto(demo.base + "/");
    await signIn(page, demo.login);
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();
    const me = await pageGet(page, "/api/v1/me");
    assert.equal(me.role, "admin", "the demo's login is an admin");
    const ward = me.wards[0].name;
    const password = "a-long-password";
    await demo.admin(["user", "add", "--username", "nurse-a", "--role", "nurse", "--ward", ward], `${password}\n`);

    const row = page.locator("#patients tbody tr[data-patient]").first();
    await row.waitFor();
    const id = Number(await row.getAttribute("data-patient"));
    const name = await row.locator("th a").textContent();

    // The nurse, on another computer, opens the patient: no Record access, and no read of the trail.
    const elsewhere = await context.browser().newContext({ viewport: { width: 1100, height: 520 } });
    const nurse = await elsewhere.newPage();
    nurse.setDefaultTimeout(UI_TIMEOUT);
    const nurseAuditReads = [];
    nurse.on("request", (r) => { if (new URL(r.url()).pathname === "/api/v1/audit") nurseAuditReads.push(r.url()); });
    await nurse.goto(demo.base + "/");
    await signIn(nurse, { username: "nurse-a", password });
    await nurse.getByRole("status").filter({ hasText: "live" }).waitFor();
    await nurse.evaluate((id) => { location.hash = `#/patients/${id}`; }, id);
    await nurse.locator("#patient-facts").filter({ hasText: "NHS number" }).waitFor();
    await nurse.locator("#range-status").filter({ hasText: /^Showing/ }).waitFor();
    // Its notes read too (the status line empties once they are).
    await nurse.waitForFunction(() => document.getElementById("notes-status")?.textContent === "");
    assert.equal(await nurse.getByRole("heading", { name: "Record access" }).count(), 0, "no Record access heading for a nurse");
    assert.equal(await nurse.getByRole("button", { name: "Show who opened this record" }).count(), 0, "no button for a nurse");
    assert.equal(await nurse.locator("#access").isHidden(), true, "the section is hidden for a nurse");
    assert.deepEqual(nurseAuditReads, [], "a nurse's page never reads the audit trail");
    await elsewhere.close();

    // The admin opens the same patient: the section is there, collapsed, and nothing was read.
    await page.locator(`#patients tbody tr[data-patient="${id}"] th a`).click();
    await page.waitForURL(`**/#/patients/${id}`);
    await page.locator("#patient-facts").filter({ hasText: "NHS number" }).waitFor();
    const section = page.getByRole("region", { name: "Record access" });
    await section.getByRole("heading", { level: 2, name: "Record access" }).waitFor();
    const show = section.getByRole("button", { name: "Show who opened this record" });
    assert.equal(await show.isVisible(), true);
    assert.equal(await page.locator("#access-table").isVisible(), false, "no table until asked");
    assert.deepEqual(auditReads, [], "opening a patient does not read the audit trail");

    // Asked: the trail of this patient, newest 200, drawn as the server sent it.
    const [answer] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === "/api/v1/audit"),
      show.click(),
    ]);
    const url = new URL(answer.url());
    assert.equal(url.searchParams.get("patient"), String(id));
    assert.equal(url.searchParams.get("limit"), "200");
    const served = await answer.json();
    const table = page.getByRole("table", { name: `Who opened ${name}'s record, and what they did, newest first.` });
    await table.waitFor();
    await page.locator("#access-table tbody tr").nth(served.length - 1).waitFor();
    const rows = await accessRows(page);
    t.diagnostic(`record access: ${JSON.stringify(rows.slice(0, 12))}`);
    assert.equal(rows.length, served.length, "a row per entry served");
    assert.deepEqual(rows.map((r) => r.action), served.map((e) => e.action), "in the server's order (newest first)");
    assert.ok(rows.every((r, i) => r.who.startsWith(served[i].username)), "Who is the username");
    const nurseOpened = rows.findIndex((r) => r.who === "nurse-a" && r.what === "opened the record");
    const adminOpened = rows.findIndex((r) => r.who === demo.login.username && r.what === "opened the record");
    assert.ok(nurseOpened >= 0, "the nurse's opening is listed as 'opened the record'");
    assert.ok(adminOpened >= 0, "the admin's own opening is listed");
    assert.ok(adminOpened < nurseOpened, "the admin's opening, the later, comes first");
    for (const [action, words] of [["patient.observations", "read the readings"], ["patient.scores", "read the NEWS2 history"], ["patient.notes", "read the notes"], ["alerts.list", "read the alerts"]]) {
      assert.ok(rows.some((r) => r.who === "nurse-a" && r.action === action && r.what === words), `the nurse's ${action} reads "${words}"`);
    }
    assert.ok(rows.every((r) => r.what !== r.action || !/^(patient|note|alerts?|device|audit)\./.test(r.action)), "no known action shown as its code");
    assert.ok(rows.every((r) => r.from === "127.0.0.1" || r.from === "—"), "From is the address, or a dash");
    assert.ok(rows.every((r, i) => r.when && served[i].at), "each row has its time");
    assert.match(await page.locator("#access-count").textContent(), new RegExp(`^${served.length} entries shown: all there are\\.$`));
    await section.getByRole("button", { name: "Refresh" }).waitFor();
    assert.equal(await show.isVisible(), false, "Show gives way to Refresh and Hide");
    await assertAccessible(page, t, "a patient's page with the record access shown");
    await screenshot(page, "record-access");

    // Refresh reads again: the admin's look at the list is on it now.
    const [again] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === "/api/v1/audit"),
      section.getByRole("button", { name: "Refresh" }).click(),
    ]);
    const servedAgain = await again.json();
    await page.locator("#access-table tbody tr").nth(servedAgain.length - 1).waitFor();
    const after = await accessRows(page);
    assert.equal(after.length, servedAgain.length);
    assert.ok(after.some((r) => r.who === demo.login.username && r.action === "audit.read" && r.what === "looked at this list"),
      "the admin's first look at the list is on it");

    // Hide drops the table; the Show button is back, with the focus.
    await section.getByRole("button", { name: "Hide" }).click();
    assert.equal(await page.locator("#access-table tbody tr").count(), 0, "no row left");
    assert.equal(await page.locator("#access-list").isHidden(), true);
    assert.equal(await show.isVisible(), true);
    assert.equal(await page.evaluate(() => document.activeElement?.id), "access-show", "the focus is on Show");

    // Shown again, then another patient: collapsed, and not read for them.
    await show.click();
    await page.locator("#access-table tbody tr").first().waitFor();
    const reads = auditReads.length;
    const other = (await pageGet(page, "/api/v1/patients")).find((p) => p.id !== id);
    await page.evaluate((id) => { location.hash = `#/patients/${id}`; }, other.id);
    await page.getByRole("heading", { level: 2, name: other.name }).waitFor();
    assert.equal(await page.locator("#access-table tbody tr").count(), 0, "another patient's page has no rows of the last");
    assert.equal(await page.locator("#access-list").isHidden(), true, "collapsed");
    assert.equal(await show.isVisible(), true, "with Show to ask again");
    assert.equal(auditReads.length, reads, "not read for the other patient");

    // Signed out: nothing of it left.
    await show.click();
    await page.locator("#access-table tbody tr").first().waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Username").waitFor({ state: "visible" });
    assert.equal(await page.locator("#access-table tbody tr").count(), 0, "no row left after signing out");
    assert.equal(await page.locator("#access").isHidden(), true);
  });
});
