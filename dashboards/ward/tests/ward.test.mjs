// The ward page in a real Chromium, against a real `vigil demo`.
//
// Each test starts its own demo (embedded broker, SQLite in a fresh temp
// folder, simulated hubs publishing over MQTT) on free ports, drives Debian's
// Chromium through playwright-core, and stops everything afterwards, even
// when the test fails. Nothing here sleeps for a fixed time: every wait is a
// poll or a Playwright wait with a deadline, so a broken page fails instead
// of hanging.
//
// Environment:
//   VIGIL_BIN       the vigil binary (default ../../target/debug/vigil,
//                   relative to dashboards/ward)
//   CHROMIUM        the browser (default /usr/bin/chromium)
//   SCREENSHOT_DIR  where screenshots go (default $TMPDIR/vigil-ward-screenshots)

import { test } from "node:test";
import assert from "node:assert/strict";
import { DATA_TIMEOUT, TEST_TIMEOUT, UI_TIMEOUT, assertAccessible, poll, readingCells, screenshot, signIn, withWard } from "./harness.mjs";

const PATIENTS = 3;

/** The table's rows are sickest first: NEWS2 risk, then total, as each row shows them. */
async function assertAcuityOrder(page, what) {
  const rank = { high: 4, medium: 3, "low-medium": 2, low: 1 };
  const rows = await page.locator("#patients tbody td[data-news2]").evaluateAll((tds) => tds.map((td) => [
    [...td.classList].find((c) => c.startsWith("risk-"))?.slice(5), Number((td.querySelector(".score").textContent.match(/\d+/) || ["-1"])[0])]));
  for (let i = 1; i < rows.length; i++) {
    const [ra, ta] = [rank[rows[i - 1][0]] || 0, rows[i - 1][1]], [rb, tb] = [rank[rows[i][0]] || 0, rows[i][1]];
    assert.ok(ra > rb || (ra === rb && ta >= tb), `${what}: ${JSON.stringify(rows)}`);
  }
}

test("signs in and shows the ward's patients, updated live over the websocket", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    const frames = [];
    page.on("websocket", (ws) => {
      if (ws.url().endsWith("/api/v1/stream")) ws.on("framereceived", (f) => frames.push(String(f.payload)));
    });
    await page.goto(demo.base + "/");
    await signIn(page, demo.login);

    const table = page.getByRole("table");
    await table.waitFor({ state: "visible" });
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
    await page.getByText(`${demo.login.username} (admin)`).waitFor();
    const headers = await page.getByRole("columnheader").allTextContents();
    for (const h of ["Patient", "SpO2", "Pulse", "Resp", "BP", "Temp", "Last reading"]) {
      assert.ok(headers.some((x) => x.startsWith(h)), `column ${h} in ${JSON.stringify(headers)}`);
    }

    const rows = table.locator("tbody tr");
    await poll(`${PATIENTS} patient rows`, async () => (await rows.count()) === PATIENTS, { timeout: UI_TIMEOUT });
    const spo2 = await poll("a numeric SpO2 value", async () => {
      const values = await table.locator('tbody td[data-code="spo2"]').allTextContents();
      return values.find((v) => /^\d+(\.\d+)?$/.test(v));
    }, { timeout: DATA_TIMEOUT, interval: 250 });
    const n = Number(spo2);
    assert.ok(n >= 70 && n <= 100, `SpO2 ${spo2} in range`);

    // A marker that a reload or navigation would wipe out.
    await page.evaluate(() => { window.__sameDocument = true; });
    let navigations = 0;
    page.on("framenavigated", (f) => { if (f === page.mainFrame()) navigations++; });

    const before = await readingCells(page);
    const changed = await poll("a reading cell to change without a reload", async () => {
      const now = await readingCells(page);
      return Object.keys(now).find((k) => before[k] !== undefined && now[k] !== before[k]);
    }, { timeout: DATA_TIMEOUT, interval: 250 });
    t.diagnostic(`cell ${changed} changed live`);

    assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page was not reloaded");
    assert.equal(navigations, 0, "no navigation happened");
    assert.ok(frames.some((f) => f.includes('"type":"observation"')), "an observation arrived over /api/v1/stream");
    assert.equal(await rows.count(), PATIENTS);

    const shot = await screenshot(page, "ward-live", { docs: "ward" });
    t.diagnostic(`screenshot: ${shot}`);
  });
});

test("a wrong password shows the error and no patient table", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    await page.goto(demo.base + "/");
    await page.getByLabel("Username").waitFor();
    await assertAccessible(page, t, "the sign-in screen");
    const refused = page.waitForResponse((r) => r.url().endsWith("/api/v1/login"));
    await signIn(page, { username: demo.login.username, password: `${demo.login.password}-wrong` });
    assert.equal((await refused).status(), 401);

    await page.getByRole("alert").filter({ hasText: "Sign-in failed: check your username and password." }).waitFor();
    assert.equal(await page.getByRole("table").isVisible(), false, "no table after a refused sign-in");
    assert.equal(await page.getByRole("button", { name: "Sign out" }).isVisible(), false);
    assert.equal(await page.getByLabel("Username").isVisible(), true, "the form stays");
    await assertAccessible(page, t, "the sign-in screen with its error");
    await screenshot(page, "wrong-password");
  });
});

test("signing out returns to the sign-in form, and a reload stays signed out", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo, context }) => {
    await page.goto(demo.base + "/");
    await signIn(page, demo.login);
    await page.getByRole("table").waitFor({ state: "visible" });
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Username").waitFor({ state: "visible" });
    await page.getByRole("table").waitFor({ state: "hidden" });
    await page.getByRole("button", { name: "Sign out" }).waitFor({ state: "hidden" });
    assert.equal(await page.getByRole("status").textContent(), "", "no connection shown once signed out");
    assert.deepEqual((await context.cookies()).filter((c) => c.name === "vigil_session"), [],
      "the session cookie is gone");

    // The page starts with the form showing and switches to the ward once
    // /api/v1/me answers, so wait for that answer before judging.
    const me = page.waitForResponse((r) => r.url().endsWith("/api/v1/me"));
    await page.reload();
    assert.equal((await me).status(), 401, "the session does not survive sign-out");
    await page.getByLabel("Username").waitFor({ state: "visible" });
    assert.equal(await page.getByRole("table").isVisible(), false, "no table after a reload");
    assert.equal(await page.getByRole("button", { name: "Sign out" }).isVisible(), false);
    await screenshot(page, "signed-out-after-reload");
  });
});

test("a session ended elsewhere takes the open page back to sign-in, saying why", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    await page.goto(demo.base + "/");
    await signIn(page, demo.login);
    await page.getByRole("table").waitFor({ state: "visible" });
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();

    // Sign out "in another tab": the same cookie, ended behind this page's back.
    const status = await page.evaluate(async () => {
      const me = await (await fetch("/api/v1/me")).json();
      const r = await fetch("/api/v1/logout", { method: "POST", headers: { "x-csrf-token": me.csrf_token } });
      return r.status;
    });
    assert.equal(status, 200);

    // The open websocket re-checks its session (every 15 s) and says it ended;
    // the page drops the ward and explains, without any click.
    await page.getByRole("alert").filter({ hasText: "session has ended" }).waitFor({ timeout: 30_000 });
    await page.getByLabel("Username").waitFor({ state: "visible" });
    assert.equal(await page.getByRole("table").isVisible(), false, "no patient data left on screen");
    await screenshot(page, "session-ended");
  });
});

test("the ward table filters by name or pathway and sorts by a column's header", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    await page.goto(demo.base + "/");
    await signIn(page, demo.login);
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();
    const names = () => page.locator("#patients tbody th").allTextContents();
    await poll(`${PATIENTS} patient rows`, async () => (await names()).length === PATIENTS, { timeout: UI_TIMEOUT });
    const all = await names();
    const news2Header = page.getByRole("columnheader", { name: "NEWS2" });
    assert.equal(await news2Header.getAttribute("aria-sort"), "descending", "acuity order by default");

    // Filter: part of one patient's name keeps only the matching rows.
    const target = all[all.length - 1];
    const part = target.slice(-2);
    await page.getByLabel("Find a patient").fill(part);
    const expected = all.filter((n) => n.toLowerCase().includes(part.toLowerCase()));
    await poll("only the matching rows", async () => JSON.stringify((await names()).sort()) === JSON.stringify(expected.sort()), { timeout: UI_TIMEOUT });
    await page.getByText(`${expected.length} of ${PATIENTS} patients match`).waitFor();
    await page.getByLabel("Find a patient").fill("no such patient at all");
    await page.getByText("No patients match the filter.").waitFor();
    await page.getByLabel("Find a patient").fill("");
    await poll("every row back", async () => (await names()).length === PATIENTS, { timeout: UI_TIMEOUT });

    // Sort by name, both ways; the header says which way (aria-sort).
    const patientHeader = page.getByRole("columnheader", { name: "Patient" });
    await patientHeader.getByRole("button").click();
    assert.equal(await patientHeader.getAttribute("aria-sort"), "ascending");
    assert.equal(await news2Header.getAttribute("aria-sort"), "none");
    const az = [...all].sort((a, b) => a.localeCompare(b));
    assert.deepEqual(await names(), az, "A to Z");
    await patientHeader.getByRole("button").click();
    assert.equal(await patientHeader.getAttribute("aria-sort"), "descending");
    assert.deepEqual(await names(), [...az].reverse(), "Z to A");
    assert.match(await page.getByRole("table").locator("caption").textContent(), /by name, Z to A/);

    // Back to acuity: the sickest first, as the API's scores say.
    await news2Header.getByRole("button").click();
    assert.equal(await news2Header.getAttribute("aria-sort"), "descending");
    await assertAcuityOrder(page, "acuity order again");
  });
});

test("the row order holds while the pointer is over the rows, so a re-sort never moves a row from under a click, and catches up when it leaves", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    await page.goto(demo.base + "/");
    await signIn(page, demo.login);
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();
    const order = () => page.locator("#patients tbody tr").evaluateAll((trs) => trs.map((tr) => Number(tr.dataset.patient)));
    const total = (id) => page.locator(`#patients td[data-news2="${id}"] .score`).textContent()
      .then((x) => Number((x.match(/\d+/) || ["-1"])[0]));
    await poll("every patient scored", async () => {
      const ids = await order();
      return ids.length === PATIENTS && (await Promise.all(ids.map(total))).every((x) => x >= 0);
    }, { timeout: DATA_TIMEOUT, interval: 250 });

    // 1. The pointer rests on the top row, as before a click.
    const before = await order();
    const last = before[before.length - 1];
    await page.locator(`#patients tbody tr[data-patient="${before[0]}"] td`).first().hover();
    const rowBox = () => page.locator(`#patients tbody tr[data-patient="${before[0]}"]`).boundingBox();
    const firstRowAt = await rowBox();

    // 2. The least sick patient deteriorates: a clinician records oxygen and
    // ACVPU "U" (+2 and +3), rescored and pushed over the websocket at once.
    // Their row updates in place, but no row moves.
    const was = await total(last);
    const deteriorate = () => page.evaluate(async (id) => {
      const me = await (await fetch("/api/v1/me", { credentials: "same-origin" })).json();
      const r = await fetch(`/api/v1/patients/${id}/episode`, { method: "PATCH", credentials: "same-origin",
        headers: { "content-type": "application/json", "x-csrf-token": me.csrf_token }, body: JSON.stringify({ oxygen: true, acvpu: "U" }) });
      return r.status;
    }, last);
    // A reading from the patient's own hub (air, alert) can supersede what
    // the clinician recorded within seconds: record it again if so.
    const deteriorated = async () => {
      for (let i = 0; i < 3; i++) {
        if ((await total(last)) >= 5) return;
        assert.equal(await deteriorate(), 200, "the episode change is recorded");
        try {
          await poll("the new NEWS2 shown in the held row", async () => (await total(last)) >= 5, { timeout: 5_000, interval: 50 });
          return;
        } catch { /* superseded already: again */ }
      }
      assert.fail("NEWS2 5 or more never showed for the deteriorating patient");
    };
    await deteriorated();
    // NEWS2 5 raises an alert, shown in the queue above the table: the
    // queue keeps its height, so the rows do not slide under the pointer.
    const name = await page.locator(`#patients tbody tr[data-patient="${last}"] th`).textContent();
    await page.locator("#alert-list li").filter({ hasText: name }).first().waitFor({ timeout: UI_TIMEOUT });
    await deteriorated();
    t.diagnostic(`patient ${last}: NEWS2 ${was} → ${await total(last)}, held at the bottom`);
    assert.deepEqual(await order(), before, "the order is held while the pointer is over the rows");
    assert.equal(Math.round((await rowBox()).y), Math.round(firstRowAt.y), "the row under the pointer has not moved on the screen");
    assert.equal(await page.locator(`#patients tbody tr[data-patient="${before[0]}"]`).evaluate((tr) => tr.matches(":hover")), true,
      "the row under the pointer is still the one it was on");

    // 3. The pointer leaves the rows: the order catches up, sickest first.
    await deteriorated();
    await page.mouse.move(1, 1);
    await poll("the deteriorated patient moves up", async () => (await order()).indexOf(last) < before.length - 1, { timeout: UI_TIMEOUT, interval: 100 });
    await assertAcuityOrder(page, "acuity order once the pointer left");
  });
});

test("a consultant starts on the escalated alerts waiting for review", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    const password = "consultant-password-for-the-test";
    await demo.admin(["user", "add", "--username", "dr-consultant", "--role", "consultant", "--ward", "Demo ward"], `${password}\n`);
    await page.goto(demo.base + "/");
    await signIn(page, { username: "dr-consultant", password });
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();
    await page.getByText("dr-consultant (consultant)").waitFor();
    const filter = page.getByLabel("Show alerts");
    assert.equal(await filter.inputValue(), "escalated", "the queue opens on escalations");
    const statuses = await page.locator("#alert-list li[data-alert]:visible .status").allTextContents();
    assert.ok(statuses.every((s) => s === "escalated"), `only escalated alerts: ${statuses}`);
    if (!statuses.length) await page.getByText("No escalated alerts waiting for review.").waitFor();
    await filter.selectOption("all");
    assert.equal(await page.getByText("No escalated alerts waiting for review.").isVisible(), false);
  });
});
