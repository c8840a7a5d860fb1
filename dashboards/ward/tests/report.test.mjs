// The ward page's "Ward report", in a real Chromium against a real `vigil
// demo`: a ward of its own (no simulated patients, so every figure is
// known) gets three admissions, readings entered through the API that
// raise four alerts, one acknowledged and resolved in the page, and a
// discharge that resolves two more; the report, read only when opened,
// says each figure in words; a period a year ago says none; a period the
// server refuses is said in its words; a nurse on the ward sees it too.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { DATA_TIMEOUT, TEST_TIMEOUT, UI_TIMEOUT, assertAccessible, poll, screenshot, signIn, withWard, testNhsNumber } from "./harness.mjs";

const WARD = "Report ward";
const DAY_MS = 24 * 3600_000;
const isReport = (url) => /^\/api\/v1\/wards\/\d+\/report$/.test(new URL(url).pathname);

/** A figures table as shown: its caption, and each row's header to its figure (a list's items joined by " | "). */
function figures(page, id) {
  return page.locator(`#${id}`).evaluate((table) => ({
    caption: table.caption?.textContent || "",
    rows: Object.fromEntries([...table.tBodies[0].rows].map((tr) => {
      const td = tr.cells[1];
      const items = [...td.querySelectorAll("li")].map((li) => li.textContent);
      return [tr.cells[0].textContent, items.length ? items.join(" | ") : td.textContent];
    })),
  }));
}

/** `YYYY-MM-DD` of a time, in UTC. */
const utcDay = (t) => new Date(t).toISOString().slice(0, 10);

test("the ward report says a ward's admissions, discharges and alerts in words, only when opened; a period a year ago says none, one the server refuses says why; a nurse on the ward sees it", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo, context }) => {
    // A ward with no simulated patients: everything on it is this test's.
    await demo.admin(["ward", "add", "--name", WARD]);
    await demo.admin(["user", "wards", "--username", demo.login.username, "--ward", "Demo ward", "--ward", WARD]);
    const nursePassword = "report-nurse-password";
    await demo.admin(["user", "add", "--username", "report-nurse", "--role", "nurse", "--ward", WARD], `${nursePassword}\n`);
    const { token } = JSON.parse(await demo.admin(["token", "create", "--username", demo.login.username]));
    const api = async (method, path, body) => {
      const r = await fetch(`${demo.base}${path}`, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: r.status, body: await r.json().catch(() => null) };
    };

    // Three admitted; readings entered for each (as a clinician would, from a call).
    const admit = async (name, seed) => {
      const r = await api("POST", "/api/v1/patients", { ward: WARD, name, nhs_number: testNhsNumber(seed), pathway: "general" });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body.id;
    };
    const stays = await admit("Report Stays", 610_000);
    const leaves = await admit("Report Leaves", 620_000);
    const waits = await admit("Report Waits", 630_000);
    const enter = async (id, obs) => {
      const r = await api("POST", `/api/v1/patients/${id}/observations`, { obs });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    };
    // A respiration rate of 30 scores 3 on its own: a NEWS2 alert, low-medium.
    await enter(stays, [{ code: "resp_rate", value: 30, unit: "/min" }]);
    // A pulse of 135: the pathway's heart-rate-extreme (medium), and NEWS2 low-medium.
    await enter(leaves, [{ code: "pulse", value: 135, unit: "/min" }]);
    // An SpO2 of 93: the pathway's spo2-repeat (low); NEWS2 2, low, no alert.
    await enter(waits, [{ code: "spo2", value: 93, unit: "%" }]);
    const wardId = (await api("GET", "/api/v1/me")).body.wards.find((w) => w.name === WARD).id;
    const live = async () => (await Promise.all(["open", "acknowledged", "escalated"].map(async (s) => (await api("GET", `/api/v1/alerts?status=${s}`)).body)))
      .flat().filter((a) => a.ward_id === wardId);
    const raised = await poll("the four alerts the readings raise", async () => {
      const list = await live();
      return list.length >= 4 ? list : null;
    }, { timeout: DATA_TIMEOUT, interval: 250 }).catch(async (e) => {
      t.diagnostic(`alerts on ${WARD}: ${JSON.stringify(await live())}`);
      throw e;
    });
    const by = (id) => raised.filter((a) => a.patient_id === id).map((a) => `${a.rule_id}:${a.severity}`).sort();
    assert.deepEqual([by(stays), by(leaves), by(waits)],
      [["news2:low-medium"], ["heart-rate-extreme:medium", "news2:low-medium"], ["spo2-repeat:low"]], JSON.stringify(raised));

    // Every read of the report the admin's page makes.
    const reads = [];
    page.on("request", (r) => { if (isReport(r.url())) reads.push(new URL(r.url())); });
    await page.goto(demo.base + "/");
    await signIn(page, demo.login);
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();

    // The first patient's alert: acknowledged, then resolved with advice given, in the page.
    const ackId = raised.find((a) => a.patient_id === stays).id;
    const item = page.locator(`#alert-list li[data-alert="${ackId}"]`);
    await item.getByRole("button", { name: /^Acknowledge/ }).click();
    await item.locator(".status").filter({ hasText: /^acknowledged$/ }).waitFor();
    await item.getByRole("button", { name: /^Resolve/ }).click();
    await item.getByRole("button", { name: "Advice given" }).click();
    await item.waitFor({ state: "detached" });
    // The second discharged: its two alerts resolved by the discharge.
    const out = await api("POST", `/api/v1/patients/${leaves}/discharge`, {});
    assert.equal(out.status, 200, JSON.stringify(out.body));
    assert.equal(out.body.resolved_alerts.length, 2, JSON.stringify(out.body));

    // The section: for everyone, collapsed, nothing read.
    const section = page.getByRole("region", { name: "Ward report" });
    await section.getByRole("heading", { level: 2, name: "Ward report" }).waitFor();
    const details = page.locator("#report-details");
    assert.equal(await details.evaluate((d) => d.open), false, "collapsed until opened");
    assert.equal(await section.locator("summary").textContent(), "People and alerts over the last 7 days");
    assert.equal(reads.length, 0, "nothing read before the section is opened");

    // Opened: the admin's first ward, over the last 7 days (the server's default), read once.
    const me = (await api("GET", "/api/v1/me")).body;
    const opened = page.waitForResponse((r) => isReport(r.url()));
    await section.locator("summary").click();
    assert.equal((await opened).status(), 200);
    assert.equal(reads.length, 1, "one read on opening");
    assert.equal(reads[0].pathname, `/api/v1/wards/${me.wards[0].id}/report`);
    assert.equal(reads[0].search, "", "the last 7 days are the server's default");
    const covers = page.locator("#report-covers");
    await covers.filter({ hasText: new RegExp(`^${me.wards[0].name}, from `) }).waitFor();
    const figs = page.locator("#report-figures");

    // The admin has two wards: they choose which.
    const ward = section.getByLabel("Ward", { exact: true });
    assert.deepEqual(await ward.locator("option").allTextContents(), me.wards.map((w) => w.name));
    const answered = page.waitForResponse((r) => isReport(r.url()));
    await ward.selectOption({ label: WARD });
    const res = await answered;
    assert.equal(res.status(), 200);
    const served = await res.json();
    t.diagnostic(`GET ${new URL(res.url()).pathname}${new URL(res.url()).search}: ${JSON.stringify(served)}`);
    assert.equal(reads.length, 2);
    assert.equal(reads[1].pathname, `/api/v1/wards/${wardId}/report`);
    assert.equal(reads[1].search, "");

    // The period as the server took it, in the page's date format.
    await covers.filter({ hasText: new RegExp(`^${WARD}, from `) }).waitFor();
    assert.match(await covers.textContent(), new RegExp(`^${WARD}, from .+ to .+\\.$`));
    assert.deepEqual(await covers.locator("time").evaluateAll((ts) => ts.map((x) => x.dateTime)), [served.from, served.to]);
    assert.equal(Date.parse(served.to) - Date.parse(served.from), 7 * DAY_MS);

    const people = await figures(page, "report-people");
    assert.match(people.caption, /People/);
    assert.deepEqual(people.rows, {
      "On the ward at the start": "0",
      "On the ward at the end": "2",
      "Admitted": "3",
      "Discharged": "1",
      "Bed-days (everyone's days on the ward, added up)": "0",
      "Average number on the ward": "0",
      "Length of stay of those discharged": "median under an hour, 90th centile under an hour (1 stay)",
    });
    const alerts = await figures(page, "report-alerts");
    assert.match(alerts.caption, /Alerts raised in the period/);
    // Acknowledged seconds after it was raised (a minute or more only on a machine far too slow).
    const ack = alerts.rows["Time to acknowledge"];
    assert.match(ack, /^median (under a minute|\d+ minutes?), 90th centile \1 \(1 acknowledged\)$/);
    assert.deepEqual(alerts.rows, {
      "Raised": "4",
      "of which high": "0",
      "of which medium": "1",
      "of which low-medium": "2",
      "of which low": "1",
      "Time to acknowledge": ack,
      "Never acknowledged": "3",
      "Escalated": "0",
      "Still not resolved at the end": "1",
      "Outcomes of those resolved": "Advice given: 1 | Patient discharged: 2",
    });
    // The words are the server's figures.
    assert.deepEqual(served.patients, { ...served.patients, at_start: 0, at_end: 2, admitted: 3, discharged: 1 });
    assert.deepEqual(served.alerts.by_severity, { medium: 1, "low-medium": 2, low: 1 });
    assert.deepEqual(served.alerts.outcomes, { "advice-given": 1, discharged: 2 });
    assert.equal(await page.locator("#report-status").textContent(), "");
    await screenshot(page, "ward-report");
    await assertAccessible(page, t, "the ward page with the ward report open");

    // The same figures as a file: the period shown, to the second, downloaded
    // as the browser downloads (the session's cookie), and no read of the page's.
    const link = section.getByRole("link", { name: "Download these figures (CSV)" });
    const href = new URL(await link.getAttribute("href"), demo.base);
    assert.equal(href.pathname, `/api/v1/wards/${wardId}/report.csv`);
    assert.deepEqual([href.searchParams.get("from"), href.searchParams.get("to")], [served.from, served.to]);
    const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
    assert.match(download.suggestedFilename(), new RegExp(`^ward-${wardId}-report-.+\\.csv$`));
    const text = await readFile(await download.path(), "utf8");
    const [names, values, end] = text.split("\r\n");
    assert.equal(end, "", "a header, a row of figures, each line ended");
    const csv = Object.fromEntries(names.split(",").map((n, i) => [n, values.split(",")[i]]));
    t.diagnostic(`downloaded ${download.suggestedFilename()}: ${JSON.stringify(csv)}`);
    assert.equal(csv.ward, `"${WARD}"`);
    assert.deepEqual(
      ["patients_at_start", "patients_at_end", "admitted", "discharged", "alerts_raised", "alerts_high", "alerts_medium",
        "alerts_low_medium", "alerts_low", "alerts_acknowledged", "never_acknowledged", "escalated", "live_at_end",
        "resolved_advice_given", "resolved_discharged", "resolved_other"].map((k) => csv[k]),
      ["0", "2", "3", "1", "4", "0", "1", "2", "1", "1", "3", "0", "1", "1", "2", "0"], "the figures the page words");
    assert.equal(reads.length, 2, "the download is not a read of the page's figures");

    // The last 24 hours: read again, from a day ago; the same figures.
    const day = page.waitForResponse((r) => isReport(r.url()));
    await section.getByLabel("Period", { exact: true }).selectOption({ label: "Last 24 hours" });
    assert.equal((await day).status(), 200);
    assert.equal(reads.length, 3);
    const from = Date.parse(reads[2].searchParams.get("from"));
    assert.ok(Math.abs(Date.now() - DAY_MS - from) < 60_000, `from a day ago: ${reads[2].search}`);
    assert.equal(reads[2].searchParams.get("to"), null);
    await section.locator("summary").filter({ hasText: "the last 24 hours" }).waitFor();
    assert.equal((await figures(page, "report-alerts")).rows.Raised, "4");

    // Days chosen, a year ago: whole UTC days, the last one included; nothing in them.
    await section.getByLabel("Period", { exact: true }).selectOption({ label: "Days you choose" });
    const days = page.getByRole("form", { name: "Days to report on" });
    await days.waitFor();
    assert.equal(reads.length, 3, "choosing days reads nothing until Show");
    assert.equal(await days.getByLabel("To", { exact: true }).inputValue(), utcDay(Date.now()), "the days start as the last week's");
    const first = utcDay(Date.now() - 372 * DAY_MS), last = utcDay(Date.now() - 366 * DAY_MS);
    await days.getByLabel("From", { exact: true }).fill(first);
    await days.getByLabel("To", { exact: true }).fill(last);
    const past = page.waitForResponse((r) => isReport(r.url()));
    await days.getByRole("button", { name: "Show" }).click();
    const pastServed = await (await past).json();
    assert.equal(reads[3].searchParams.get("from"), `${first}T00:00:00.000Z`);
    assert.equal(reads[3].searchParams.get("to"), new Date(Date.parse(`${last}T00:00:00Z`) + DAY_MS).toISOString(), "to the midnight after the last day");
    await poll("the year-old period's figures", async () =>
      (await covers.locator("time").evaluateAll((ts) => ts.map((x) => x.dateTime))).join() === [pastServed.from, pastServed.to].join(),
    { timeout: UI_TIMEOUT });
    assert.ok((await covers.textContent()).includes(String(new Date(pastServed.from).getFullYear())), "a period of another year names its year");
    assert.deepEqual((await figures(page, "report-people")).rows, {
      "On the ward at the start": "0",
      "On the ward at the end": "0",
      "Admitted": "0",
      "Discharged": "0",
      "Bed-days (everyone's days on the ward, added up)": "0",
      "Average number on the ward": "0",
      "Length of stay of those discharged": "none discharged",
    });
    assert.deepEqual((await figures(page, "report-alerts")).rows, {
      "Raised": "0",
      "of which high": "0",
      "of which medium": "0",
      "of which low-medium": "0",
      "of which low": "0",
      "Time to acknowledge": "none acknowledged",
      "Never acknowledged": "0",
      "Escalated": "0",
      "Still not resolved at the end": "0",
      "Outcomes of those resolved": "none resolved",
    });

    // The first day after the last: said in the page, nothing sent.
    await days.getByLabel("From", { exact: true }).fill(last);
    await days.getByLabel("To", { exact: true }).fill(first);
    await days.getByRole("button", { name: "Show" }).click();
    await page.locator("#report-status").filter({ hasText: /^The first day is after the last: choose them again\.$/ }).waitFor();
    assert.equal(reads.length, 4, "nothing sent for days the wrong way round");
    assert.equal(await figs.isHidden(), true, "no figures under days they are not of");

    // Days still to come: the server refuses them (422), and the page says its reason.
    await days.getByLabel("From", { exact: true }).fill(utcDay(Date.now() + 2 * DAY_MS));
    await days.getByLabel("To", { exact: true }).fill(utcDay(Date.now() + 3 * DAY_MS));
    const refused = page.waitForResponse((r) => isReport(r.url()));
    await days.getByRole("button", { name: "Show" }).click();
    const refusal = await refused;
    assert.equal(refusal.status(), 422);
    const message = (await refusal.json()).error.message;
    await page.locator("#report-status").filter({ hasText: `No report for that period: ${message.replace(/\.$/, "")}.` }).waitFor();
    assert.equal(await figs.isHidden(), true);
    await assertAccessible(page, t, "the ward report with days chosen and the server's refusal");

    // A nurse on the ward, on another computer: the section too, with no ward to choose (she has one).
    const ctx = await context.browser().newContext({ viewport: { width: 1100, height: 520 } });
    try {
      const nurse = await ctx.newPage();
      nurse.setDefaultTimeout(UI_TIMEOUT);
      const errors = [];
      nurse.on("pageerror", (e) => errors.push(e.message));
      await nurse.goto(demo.base + "/");
      await signIn(nurse, { username: "report-nurse", password: nursePassword });
      await nurse.getByText("report-nurse (nurse)").waitFor();
      const hers = nurse.getByRole("region", { name: "Ward report" });
      await hers.getByRole("heading", { level: 2, name: "Ward report" }).waitFor();
      assert.equal(await nurse.getByRole("heading", { name: "Staff" }).count(), 0, "no Staff for a nurse");
      await hers.locator("summary").click();
      await hers.getByLabel("Period", { exact: true }).waitFor();
      assert.equal(await hers.getByLabel("Ward", { exact: true }).isHidden(), true, "one ward: nothing to choose");
      await nurse.locator("#report-covers").filter({ hasText: new RegExp(`^${WARD}, from `) }).waitFor();
      assert.equal((await figures(nurse, "report-people")).rows.Admitted, "3");
      assert.equal((await figures(nurse, "report-alerts")).rows.Raised, "4");
      assert.deepEqual(errors, [], "the nurse's page threw no uncaught errors");
    } finally {
      await ctx.close();
    }

    // Each read is on the audit trail, as the admin's.
    const trail = (await api("GET", "/api/v1/audit")).body.filter((e) => e.action === "ward.report");
    const admins = trail.filter((e) => e.username === demo.login.username);
    assert.equal(admins.filter((e) => e.detail.format === "json").length, 4, "the admin's four reads (the refused one is not one)");
    assert.equal(admins.filter((e) => e.detail.format === "csv").length, 1, "and the download");
    assert.ok(trail.some((e) => e.username === "report-nurse"), "the nurse's read");

    // Signed out: nothing of the report is left.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    assert.equal(await page.locator("#report-people tbody tr, #report-alerts tbody tr").count(), 0);
    assert.equal(await page.locator("#report-covers").textContent(), "");
    assert.equal(await details.evaluate((d) => d.open), false);
  }, { patients: 2 });
});

test("the ward report words larger figures as a ward manager reads them: days, hours and minutes, one decimal, escalations by whom, every outcome", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    // The server's answer is replaced by one with figures no fresh demo has
    // (the example of docs/http.md, and more): only the words are tested here.
    const answer = {
      ward_id: 1, ward: "Demo ward", from: "2026-03-01T09:30:00Z", to: "2026-03-08T09:30:00Z",
      patients: { at_start: 12, at_end: 14, admitted: 9, discharged: 7, bed_days: 91.25, mean_occupancy: 13.04,
        length_of_stay_days: { count: 7, median: 0.25, p90: 6.25 } },
      alerts: { raised: 31, by_severity: { high: 2, medium: 20, low: 9 },
        minutes_to_acknowledge: { count: 25, median: 4.4, p90: 80 }, never_acknowledged: 6, escalated: 3, escalated_by_timer: 1,
        live_at_end: 5, outcomes: { discharged: 1, "reviewed-no-action": 4, "advice-given": 10, "some-new-outcome": 2, other: 1 } },
    };
    let asked = null;
    await page.route(/\/api\/v1\/wards\/\d+\/report/, (route) => {
      asked = new URL(route.request().url());
      return route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(answer) });
    });
    await page.goto(demo.base + "/");
    await signIn(page, demo.login);
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();
    const section = page.getByRole("region", { name: "Ward report" });
    await section.locator("summary").click();
    await page.locator("#report-covers").filter({ hasText: /^Demo ward, from / }).waitFor();
    assert.ok(asked, "the report was asked for");
    assert.equal(await section.getByLabel("Ward", { exact: true }).isHidden(), true, "one ward: nothing to choose");
    assert.deepEqual((await figures(page, "report-people")).rows, {
      "On the ward at the start": "12",
      "On the ward at the end": "14",
      "Admitted": "9",
      "Discharged": "7",
      "Bed-days (everyone's days on the ward, added up)": "91.3",
      "Average number on the ward": "13",
      "Length of stay of those discharged": "median 6 hours, 90th centile 6.3 days (7 stays)",
    });
    assert.deepEqual((await figures(page, "report-alerts")).rows, {
      "Raised": "31",
      "of which high": "2",
      "of which medium": "20",
      "of which low-medium": "0",
      "of which low": "9",
      "Time to acknowledge": "median 4 minutes, 90th centile 1 hour 20 minutes (25 acknowledged)",
      "Never acknowledged": "6",
      "Escalated": "3: 1 by the timer (not acknowledged in time), 2 by a clinician",
      "Still not resolved at the end": "5",
      "Outcomes of those resolved": "Advice given: 10 | Reviewed, no action: 4 | Other: 1 | Patient discharged: 1 | some-new-outcome: 2",
    });

    // Any refusal but a period's: said as not read, the figures gone.
    await page.unroute(/\/api\/v1\/wards\/\d+\/report/);
    await page.route(/\/api\/v1\/wards\/\d+\/report/, (route) => route.fulfill({ status: 500, contentType: "application/json",
      body: JSON.stringify({ error: { code: "internal", message: "internal error" } }) }));
    await section.getByLabel("Period", { exact: true }).selectOption({ label: "Last 30 days" });
    await page.locator("#report-status").filter({ hasText: /^Could not read the report: internal error\.$/ }).waitFor();
    assert.equal(await page.locator("#report-figures").isHidden(), true);
    await assertAccessible(page, t, "the ward report, not read");
  });
});
