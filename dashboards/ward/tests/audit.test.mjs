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

/**
 * The record-access table as shown, a row per visit: {when, who, what (the
 * summary), from, actions (its entries' actions, newest first), entries
 * (each entry listed under "n entries", oldest first: {action, text})}.
 */
function accessRows(page) {
  return page.locator("#access-table tbody tr").evaluateAll((trs) => trs.map((tr) => {
    const [when, who, what, from] = [...tr.cells];
    return { when: when.textContent, who: who.textContent, what: what.querySelector(".did").textContent, from: from.textContent,
      actions: tr.dataset.actions.split(" "),
      entries: [...what.querySelectorAll("li")].map((li) => ({ action: li.dataset.action, text: li.textContent })) };
  }));
}

/** The rows once the count under the table says they are all drawn (`n` entries). */
async function accessRowsOf(page, n) {
  await page.locator("#access-count").filter({ hasText: new RegExp(`^${n} entr(y|ies) in \\d+ visits? shown`) }).waitFor();
  return accessRows(page);
}

/** An action's code shown where its words should be. */
const CODE = /\b(patient|note|alerts?|device|audit)\.[a-z]/;

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

    // Asked: the trail of this patient, the newest 1,000 entries, a row per visit.
    const [answer] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === "/api/v1/audit"),
      show.click(),
    ]);
    const url = new URL(answer.url());
    assert.equal(url.searchParams.get("patient"), String(id));
    assert.equal(url.searchParams.get("limit"), "1000");
    const served = await answer.json();
    const table = page.getByRole("table", { name: `Who opened ${name}'s record, and what they did, newest first: one row per visit (one person, from one address, no more than 10 minutes between entries).` });
    await table.waitFor();
    const rows = await accessRowsOf(page, served.length);
    t.diagnostic(`record access: ${JSON.stringify(rows.map(({ entries, ...r }) => r).slice(0, 8))}`);
    assert.deepEqual(rows.flatMap((r) => r.actions), served.map((e) => e.action), "every entry served, in the server's order (newest first), none twice");
    for (const r of rows.filter((r) => r.actions.length > 1)) {
      assert.deepEqual(r.entries.map((e) => e.action), [...r.actions].reverse(), "a visit lists each of its entries, oldest first");
    }
    // The nurse's look at the patient is one visit, in words; the admin's, later, is another, above it.
    const nurseRows = rows.filter((r) => r.who === "nurse-a");
    assert.equal(nurseRows.length, 1, `the nurse's look is one row: ${JSON.stringify(nurseRows.map((r) => r.what))}`);
    const [visit] = nurseRows;
    for (const [action, words] of [["patient.read", "opened the record"], ["patient.observations", "read the readings"], ["patient.scores", "read the NEWS2 history"], ["patient.notes", "read the notes"], ["alerts.list", "read the alerts"]]) {
      assert.ok(visit.actions.includes(action), `the nurse's visit has ${action}`);
      assert.ok(visit.what.split(", ").some((w) => w === words || w.startsWith(`${words} (`)), `the nurse's visit says "${words}": ${visit.what}`);
      assert.ok(visit.entries.some((e) => e.action === action && e.text.endsWith(` ${words}`)), `the nurse's ${action} is listed as "${words}"`);
    }
    const adminAt = rows.findIndex((r) => r.who === demo.login.username && r.actions.includes("patient.read"));
    assert.ok(adminAt >= 0 && adminAt < rows.indexOf(visit), "the admin's opening, the later, is a row above the nurse's");
    assert.ok(rows.every((r) => !CODE.test(r.what) && r.entries.every((e) => !CODE.test(e.text))), "no known action shown as its code");
    assert.ok(rows.every((r) => r.from === "127.0.0.1" || r.from === "—"), "From is the address, or a dash");
    assert.ok(rows.every((r) => r.when), "each row has its time");
    assert.match(await page.locator("#access-count").textContent(),
      new RegExp(`^${served.length} entries in ${rows.length} visits shown: all there are\\.$`));
    await section.getByRole("button", { name: "Refresh" }).waitFor();
    assert.equal(await show.isVisible(), false, "Show gives way to Refresh and Hide");
    await page.locator("#access-table details").first().locator("summary").click();
    await assertAccessible(page, t, "a patient's page with the record access shown, a visit's entries open");
    await screenshot(page, "record-access");

    // Refresh reads again: the admin's look at the list is on it now.
    const [again] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === "/api/v1/audit"),
      section.getByRole("button", { name: "Refresh" }).click(),
    ]);
    const servedAgain = await again.json();
    const after = await accessRowsOf(page, servedAgain.length);
    assert.deepEqual(after.flatMap((r) => r.actions), servedAgain.map((e) => e.action));
    assert.ok(after.some((r) => r.who === demo.login.username && r.actions.includes("audit.read") && r.what.includes("looked at this list")),
      "the admin's first look at the list is on it");

    // Days to look through (UTC, the last included): a day a year ago has
    // none; yesterday and today have what the newest read had; days the
    // wrong way round are refused in the page; "The newest" reads as at first.
    const utcDay = (ms) => new Date(ms).toISOString().slice(0, 10);
    const DAY = 24 * 3600_000;
    const lookThrough = async (first, last, button = "Show these days") => {
      if (first !== undefined) {
        await section.getByLabel("From", { exact: true }).fill(first);
        await section.getByLabel("To", { exact: true }).fill(last);
      }
      const [res] = await Promise.all([
        page.waitForResponse((r) => new URL(r.url()).pathname === "/api/v1/audit"),
        section.getByRole("button", { name: button }).click(),
      ]);
      return { url: new URL(res.url()), served: await res.json() };
    };
    const yearAgo = utcDay(Date.now() - 365 * DAY);
    const old = await lookThrough(yearAgo, yearAgo);
    assert.equal(old.url.searchParams.get("from"), `${yearAgo}T00:00:00.000Z`);
    assert.equal(old.url.searchParams.get("to"), `${yearAgo}T23:59:59.999Z`, "to the last millisecond of the last day");
    assert.deepEqual(old.served, []);
    await page.locator("#access-count").filter({ hasText: `No entries on ${yearAgo} (UTC).` }).waitFor();
    assert.equal(await page.locator("#access-table tbody tr").count(), 0);
    const [yesterday, today] = [utcDay(Date.now() - DAY), utcDay(Date.now())];
    const recent = await lookThrough(yesterday, today);
    assert.ok(recent.served.length >= servedAgain.length, "the last two days hold every entry read before");
    const recentRows = await accessRowsOf(page, recent.served.length);
    assert.deepEqual(recentRows.flatMap((r) => r.actions), recent.served.map((e) => e.action));
    assert.match(await page.locator("#access-count").textContent(),
      new RegExp(`^${recent.served.length} entries in ${recentRows.length} visits shown from ${yesterday} to ${today} \\(UTC\\): all there are in those days\\.$`));
    const asked = auditReads.length;
    await section.getByLabel("From", { exact: true }).fill(today);
    await section.getByLabel("To", { exact: true }).fill(yesterday);
    await section.getByRole("button", { name: "Show these days" }).click();
    await page.locator("#access-status").filter({ hasText: "The first day is after the last: choose them again." }).waitFor();
    assert.equal(auditReads.length, asked, "nothing read for days the wrong way round");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "access-from", "the focus on the first day");
    const newest = await lookThrough(undefined, undefined, "The newest");
    assert.equal(newest.url.searchParams.get("from"), null);
    assert.equal(await section.getByLabel("From", { exact: true }).inputValue(), "", "the days cleared");
    await page.locator("#access-count").filter({ hasText: /shown: all there are\.$/ }).waitFor();
    assert.equal(await page.locator("#access-status").textContent(), "", "the problem said no more");

    // Where a visit ends: a trail the page is given (held to a made-up answer)
    // with a gap of 11 minutes, another address, another person between.
    const base = Date.parse("2026-12-01T09:00:00Z");
    const entry = (min, username, action, addr = "10.0.0.1") => ({ at: new Date(base + min * 60_000).toISOString(),
      user_id: 7, username, action, patient_id: id, detail: null, addr });
    const trail = [
      entry(31, "nurse-b", "patient.scores"), entry(30, "nurse-b", "patient.read"),
      entry(19, "nurse-b", "patient.scores"), entry(12, "nurse-b", "patient.scores"),
      entry(10, "nurse-b", "patient.read", "10.0.0.2"),
      entry(9, "nurse-c", "patient.read"),
      entry(0, "nurse-b", "patient.read"),
    ];
    const isAudit = (u) => u.pathname === "/api/v1/audit";
    await page.route(isAudit, (r) => r.fulfill({ json: trail }));
    await section.getByRole("button", { name: "Refresh" }).click();
    const made = await accessRowsOf(page, trail.length);
    await page.unroute(isAudit);
    assert.deepEqual(made.map((r) => [r.who, r.from, r.what]), [
      ["nurse-b", "10.0.0.1", "opened the record, read the NEWS2 history"],
      ["nurse-b", "10.0.0.1", "read the NEWS2 history (2 times)"],
      ["nurse-b", "10.0.0.2", "opened the record"],
      ["nurse-c", "10.0.0.1", "opened the record"],
      ["nurse-b", "10.0.0.1", "opened the record"],
    ], "a visit ends at a gap over 10 minutes, another address or another person");
    assert.match(made[1].when, / to /, "a visit of two entries gives when it began and ended");
    assert.doesNotMatch(made[2].when, / to /, "a visit of one entry gives its time");
    assert.match(await page.locator("#access-count").textContent(), /^7 entries in 5 visits shown: all there are\.$/);

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
