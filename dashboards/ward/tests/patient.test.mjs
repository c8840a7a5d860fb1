// The patient page in a real Chromium against a real `vigil demo`: open a
// patient from the ward (a click on the row, then Enter on the name's link),
// see the vitals charted with the values the API holds, follow live
// readings, switch the time range, and go back to the ward.

import { test } from "node:test";
import assert from "node:assert/strict";
import { DATA_TIMEOUT, NEXT_SPOT_CHECK, TEST_TIMEOUT, UI_TIMEOUT, assertAccessible, enterReadings, poll, screenshot, signIn, withWard } from "./harness.mjs";

/** GET from inside the page, with the page's own cookie. */
function pageGet(page, path) {
  return page.evaluate(async (path) => (await fetch(path, { credentials: "same-origin" })).json(), path);
}

/** Sign in to the demo's ward, and the id of the first patient listed with an SpO2 reading. */
async function signedInPatientWithReadings(page, demo) {
  await page.goto(demo.base + "/");
  await signIn(page, demo.login);
  await page.getByRole("status").filter({ hasText: "live" }).waitFor();
  const row = page.locator("#patients tbody tr[data-patient]").filter({ has: page.locator('td[data-code="spo2"]', { hasText: /^\d/ }) }).first();
  await row.waitFor({ timeout: DATA_TIMEOUT });
  return Number(await row.getAttribute("data-patient"));
}

/** Per chart: code, points plotted (data-points), whether a canvas is drawn, and the summary text. */
function charts(page) {
  return page.locator("#charts figure.vital").evaluateAll((figs) => figs.map((f) => ({
    code: f.dataset.code, points: Number(f.dataset.points), canvas: !!f.querySelector(".plot canvas"),
    width: f.querySelector(".plot canvas")?.width || 0, summary: f.querySelector(".summary").textContent,
  })));
}

test("a patient's page charts each vital with the API's values, follows live readings, switches range and goes back", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    await page.goto(demo.base + "/");
    await signIn(page, demo.login);
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();
    // Wait until the ward has readings, so the patient has something to chart.
    await poll("a numeric SpO2 on the ward", async () => {
      const v = await page.locator('#patients tbody td[data-code="spo2"]').allTextContents();
      return v.some((x) => /^\d/.test(x));
    }, { timeout: DATA_TIMEOUT, interval: 250 });
    await page.evaluate(() => { window.__sameDocument = true; });

    // 1. A click anywhere on the row opens the patient.
    const row = page.locator("#patients tbody tr[data-patient]").filter({ has: page.locator('td[data-code="spo2"]', { hasText: /^\d/ }) }).first();
    const id = Number(await row.getAttribute("data-patient"));
    const name = await row.locator("th a").textContent();
    await row.locator('td[data-code="pulse"]').click();
    await page.waitForURL(`**/#/patients/${id}`);
    await page.getByRole("heading", { level: 2, name }).waitFor();
    assert.equal(await page.getByRole("table", { name: /Latest readings/ }).isVisible(), false, "the ward table is hidden");

    // 2. Charts render with points, and the numbers are the API's.
    const spo2 = page.locator('figure.vital[data-code="spo2"]');
    await poll("SpO2 points on the chart", async () => Number(await spo2.getAttribute("data-points")) > 0, { timeout: DATA_TIMEOUT, interval: 250 });
    const shown = await charts(page);
    t.diagnostic(`charts: ${JSON.stringify(shown.map((c) => [c.code, c.points]))}`);
    for (const code of ["spo2", "pulse", "resp_rate", "bp", "temp"]) {
      const c = shown.find((x) => x.code === code);
      assert.ok(c, `a ${code} chart`);
      assert.ok(c.canvas && c.width > 100, `${code}: a drawn canvas`);
      if (c.points > 0) assert.match(c.summary, /^\d+ readings?; latest /, `${code}: the summary says how many readings`);
      else assert.match(c.summary, /No readings/, `${code}: says there are none`);
    }
    const spo2Chart = shown.find((x) => x.code === "spo2");
    assert.equal(Number(spo2Chart.summary.match(/^(\d+) readings?/)[1]), spo2Chart.points, "the summary counts the plotted points");
    assert.match(await spo2.locator(".bands").textContent(), /NEWS2 SpO2 scale \d.*\+3/, "the bands are named with their sub-scores");
    // The pathway's SpO2 target, as the API gives it, is drawn and named.
    const { thresholds } = await pageGet(page, `/api/v1/patients/${id}`);
    const { low, high } = thresholds.spo2_target;
    assert.equal(await spo2.getAttribute("data-target"), `${low}-${high}`, "the target lines are the API's");
    assert.match(await spo2.locator(".bands").textContent(), new RegExp(`Dashed lines: the patient's SpO2 target, ${low}–${high} %`));

    // The table behind the chart holds the API's readings, newest first.
    await spo2.getByText("SpO2: readings as a table").click();
    // The details' toggle event fills the table, a task after the click.
    await spo2.locator("table.readings").waitFor();
    const tableValues = (await spo2.locator("table.readings tbody tr td:nth-child(2)").allTextContents()).map(Number);
    const api = await pageGet(page, `/api/v1/patients/${id}/observations?code=spo2&from=${encodeURIComponent(new Date(Date.now() - 24 * 3600_000).toISOString())}`);
    const apiValues = api.map((o) => o.value);
    assert.ok(tableValues.length > 0, "the readings table has rows");
    assert.ok(apiValues.length >= tableValues.length, `the API has at least the ${tableValues.length} readings shown (${apiValues.length})`);
    assert.deepEqual(tableValues.slice(-3), apiValues.slice(0, tableValues.length).reverse().slice(-3),
      "the oldest readings in the table are the API's first ones");
    for (const v of tableValues) assert.ok(apiValues.includes(v), `${v} is one of the API's SpO2 values`);

    // 3. Live: new readings add points without a reload: the simulation's
    // next, or after 20 s one a nurse enters (a patient without a patch has
    // spot checks only, up to 60 s apart: a wait of 45 s once missed one).
    const before = (await charts(page)).reduce((a, c) => a + c.points, 0);
    const waitedFrom = Date.now();
    let entered = false;
    await poll("more points from live readings", async () => {
      const more = (await charts(page)).reduce((a, c) => a + c.points, 0) > before;
      if (!more && !entered && Date.now() - waitedFrom > 20_000) {
        await enterReadings(demo, id, [{ code: "resp_rate", value: 16, unit: "/min" }]);
        entered = true;
      }
      return more;
    }, { timeout: NEXT_SPOT_CHECK, interval: 250 });

    // NEWS2 history and devices come from the API.
    await poll("a NEWS2 history row", async () => (await page.locator("#score-table tbody tr").count()) > 0, { timeout: DATA_TIMEOUT, interval: 250 });
    assert.match(await page.locator("#score-table tbody tr").first().locator("td").nth(1).textContent(), /^(≥?\d+|n\/a)/, "a NEWS2 total in the history");
    // ... and as a chart above the table: every score in the range, or
    // (more than the table's 30) each stretch's lowest and highest.
    const scorePlot = page.locator("#score-plot");
    const scoreText = await page.locator("#score-count").textContent();
    const tableRows = await page.locator("#score-table tbody tr").count();
    const all = scoreText.match(/^(\d+) scores? in this range\.$/);
    if (all) {
      assert.equal(Number(await scorePlot.getAttribute("data-points")), Number(all[1]), "every score in the range is on the chart");
      assert.equal(tableRows, Number(all[1]), "and in the table");
    } else {
      assert.match(scoreText, /^The newest 30 scores in this range; the chart draws each stretch's lowest and highest of them all\.$/);
      assert.equal(tableRows, 30, "the newest 30 in the table");
      assert.ok(Number(await scorePlot.getAttribute("data-points")) >= 30, "at least as many on the chart");
    }
    t.diagnostic(`NEWS2: ${scoreText} ${await scorePlot.getAttribute("data-points")} on the chart`);
    assert.ok(await scorePlot.locator("canvas").count() > 0, "the NEWS2 chart is drawn");
    const detail = await pageGet(page, `/api/v1/patients/${id}`);
    const devices = await page.locator("#device-table tbody th").allTextContents();
    assert.deepEqual(devices.sort(), detail.devices.map((d) => d.id).sort(), "every device of the patient is listed");
    await screenshot(page, "patient-page");
    await assertAccessible(page, t, "the patient page (readings table open)");

    // 4. Switch the range: the button says so and the page asks for 7 days.
    const req = page.waitForRequest((r) => r.url().includes(`/api/v1/patients/${id}/observations?from=`));
    await page.getByRole("button", { name: "7 days" }).click();
    const from = Date.parse(decodeURIComponent(new URL((await req).url()).searchParams.get("from")));
    assert.ok(Math.abs(Date.now() - 7 * 24 * 3600_000 - from) < 60_000, `asked from 7 days ago (${new Date(from).toISOString()})`);
    assert.equal(await page.getByRole("button", { name: "7 days" }).getAttribute("aria-pressed"), "true");
    assert.equal(await page.getByRole("button", { name: "24 hours" }).getAttribute("aria-pressed"), "false");
    await page.getByText(/^Showing 7 days: \d+ readings/).waitFor();
    assert.ok((await charts(page)).find((c) => c.code === "spo2").points > 0, "still charted over 7 days");

    // The whole episode starts at admission.
    const epReq = page.waitForRequest((r) => r.url().includes(`/api/v1/patients/${id}/observations?from=`));
    await page.getByRole("button", { name: "Whole episode" }).click();
    const epFrom = decodeURIComponent(new URL((await epReq).url()).searchParams.get("from"));
    assert.equal(Date.parse(epFrom), Date.parse(detail.episode.admitted_at), "the whole episode starts at admission");
    await page.getByText(/^Showing whole episode: \d+ readings/).waitFor();
    assert.ok((await charts(page)).find((c) => c.code === "spo2").points > 0, "charted over the episode");
    await screenshot(page, "patient-episode", { docs: "patient" });

    // 5. Back to the ward (the browser's back), then open by keyboard and use the page's link.
    await page.goBack();
    await page.getByRole("table", { name: /Latest readings/ }).waitFor();
    assert.equal(await page.locator("#patient").isVisible(), false);
    await page.locator(`#patients tr[data-patient="${id}"] th a`).focus();
    await page.keyboard.press("Enter");
    await page.waitForURL(`**/#/patients/${id}`);
    await page.getByRole("heading", { level: 2, name }).waitFor();
    await page.getByRole("link", { name: /Back to the ward/ }).click();
    await page.getByRole("table", { name: /Latest readings/ }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), name, "focus returns to the patient's row");
    assert.equal(await page.evaluate(() => window.__sameDocument), true, "all without a reload");

    // 6. Device status is the stored one from the moment the page loads: a
    // fresh page has had no live status yet, and each row carries the stored
    // report's own time (a live one carries the browser's), with its age.
    await page.goto(`${demo.base}/#/patients/${id}`);
    await page.getByRole("heading", { level: 2, name }).waitFor();
    let fromApi = 0;
    await poll("every device row shows the API's stored status", async () => {
      const d = await pageGet(page, `/api/v1/patients/${id}`);
      const rows = await page.locator("#device-table tbody tr").evaluateAll((trs) => trs.map((tr) => ({
        id: tr.dataset.device, at: tr.dataset.reportedAt ?? null, cells: [...tr.querySelectorAll("td")].map((td) => td.textContent) })));
      fromApi = 0;
      return d.devices.length > 0 && d.devices.every((dev) => {
        const r = rows.find((x) => x.id === dev.id);
        if (!r) return false;
        const [, status, battery, , age] = r.cells;
        if (!dev.status) return r.at === null && status === "never reported";
        // A live status that came after the page loaded is newer still.
        if (r.at !== null && Date.parse(r.at) > Date.parse(dev.status.reported_at)) return /ago/.test(age);
        fromApi++;
        return r.at === dev.status.reported_at && status === (dev.status.online ? "online" : "offline")
          && battery.startsWith(dev.status.battery_pct == null ? "—" : `${dev.status.battery_pct} %`) && /ago/.test(age);
      });
    }, { timeout: DATA_TIMEOUT, interval: 250 });
    assert.ok(fromApi > 0, "a device's status shown is the stored one, from the moment the page loaded");
  });
});

test("the ECG strip draws the patch's samples with the detected beats marked, as the API gives them", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    await page.goto(demo.base + "/");
    await signIn(page, demo.login);
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();
    await page.locator("#patients tbody tr[data-patient]").first().waitFor();

    // The demo gives every third patient an ECG patch.
    const list = await pageGet(page, "/api/v1/patients");
    let id = null;
    for (const p of list) {
      const d = await pageGet(page, `/api/v1/patients/${p.id}`);
      if (d.devices.some((x) => x.kind === "ecg-patch")) { id = p.id; break; }
    }
    assert.ok(id, "a demo patient with an ECG patch");
    await poll("ECG with beats in the last 30 s", async () => {
      const to = new Date(), from = new Date(to - 30_000);
      const w = await pageGet(page, `/api/v1/patients/${id}/ecg?from=${from.toISOString()}&to=${to.toISOString()}`);
      return w.chunks.length > 0 && w.beats.length > 1;
    }, { timeout: DATA_TIMEOUT, interval: 1000 });

    await page.locator(`#patients tr[data-patient="${id}"] th a`).click();
    await page.getByRole("heading", { name: "ECG strip" }).waitFor();
    await page.getByLabel("Length").selectOption("30");
    const answer = page.waitForResponse((r) => r.url().includes(`/api/v1/patients/${id}/ecg?`));
    await page.getByRole("button", { name: "Show the strip" }).click();
    const res = await answer;
    const url = new URL(res.url());
    const from = Date.parse(url.searchParams.get("from")), to = Date.parse(url.searchParams.get("to"));
    assert.ok(Math.abs(to - from - 30_000) < 5, "asked for 30 s");
    const w = await res.json();

    // What the API gave inside the window is what the page drew and counted.
    let samples = 0;
    for (const c of w.chunks) c.samples.forEach((_, i) => { const at = c.t0_ms + (i * 1000) / c.fs_hz; if (at >= from && at <= to) samples++; });
    const beats = w.beats.filter((b) => b.t_ms >= from && b.t_ms <= to).length;
    const plot = page.locator("#ecg-plot");
    await poll("the strip drawn", async () => Number(await plot.getAttribute("data-samples")) > 0, { timeout: UI_TIMEOUT });
    assert.equal(Number(await plot.getAttribute("data-samples")), samples, "every sample in the window is drawn");
    assert.equal(Number(await plot.getAttribute("data-beats")), beats, "every detected beat is marked");
    assert.ok(beats > 1, `beats in the strip (${beats})`);
    assert.ok(await plot.locator("canvas").count() > 0, "a canvas");
    const text = await page.locator("#ecg-summary").textContent();
    assert.match(text, new RegExp(`${samples} samples, ${beats} beats detected`), text);
    assert.match(text, /mean heart rate \d+\/min/, "a heart rate from the RR intervals");
    t.diagnostic(text);
    await assertAccessible(page, t, "the patient page with an ECG strip");
    await screenshot(page, "ecg-strip");

    // A patch's patient is scored every minute of the demo's time: more
    // scores than the table holds. The table has the newest 30, as the
    // API gives them; the chart the range's within bounds.
    await poll("more than 30 NEWS2 scores", async () => (await pageGet(page, `/api/v1/patients/${id}/scores`)).length > 30,
      { timeout: DATA_TIMEOUT, interval: 1000 });
    await page.reload();
    await page.getByText(/^The newest 30 scores in this range; the chart draws each stretch's lowest and highest of them all\.$/).waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await page.locator("#score-table tbody tr").count(), 30);
    const day = new Date(Date.now() - 24 * 3600_000).toISOString();
    const [newest, chart] = await Promise.all([`newest=30`, `max_points=400`].map((q) =>
      pageGet(page, `/api/v1/patients/${id}/scores?from=${encodeURIComponent(day)}&${q}`)));
    assert.equal(newest.length, 30);
    assert.ok(chart.length > 30 && chart.length <= 400, `the chart's scores within bounds: ${chart.length}`);
    const times = await page.locator("#score-table tbody tr td:first-child").allTextContents();
    t.diagnostic(`NEWS2 table: ${times[0]} … ${times[29]}; ${chart.length} scores on the chart`);
    assert.ok(Number(await page.locator("#score-plot").getAttribute("data-points")) >= 30);
  });
});

test("a patient discharged and admitted again keeps their record: the page names the earlier stay, charts its readings and marks the time between the stays", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo, context }) => {
    const id = await signedInPatientWithReadings(page, demo);
    const before = await pageGet(page, `/api/v1/patients/${id}`);
    // A colleague has the patient's page open throughout.
    const open = await context.newPage();
    await open.goto(`${demo.base}/#/patients/${id}`);
    await open.getByRole("region", { name: "Clinical assessment" }).waitFor();

    // `vigil admin`, in another process, as a ward's admin would.
    await demo.admin(["patient", "discharge", "--patient", String(id)]);
    await page.locator(`#patients tr[data-patient="${id}"]`).waitFor({ state: "detached", timeout: UI_TIMEOUT });
    // The open page says so at once, and offers nothing for a stay that ended.
    await open.locator("#patient-facts").filter({ hasText: /discharged .+ · pathway/ }).waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await open.getByRole("region", { name: "Clinical assessment" }).isVisible(), false);
    assert.equal(await open.getByRole("button", { name: "Discharge…" }).isVisible(), false);
    const again = JSON.parse(await demo.admin(["patient", "admit", "--ward", "Demo ward", "--name", before.name,
      "--nhs-number", before.nhs_number, "--pathway", before.episode.pathway]));
    assert.deepEqual(again, { id, readmitted: true });
    // Their kit given back to them, so that this stay has readings too.
    for (const d of before.devices) await demo.admin(["device", "assign", "--device", d.id, "--patient", String(id)]);
    // Listed again (the daemon's patient sync tells open pages within 5 s).
    await page.locator(`#patients tr[data-patient="${id}"]`).waitFor({ timeout: UI_TIMEOUT });
    // The colleague's page follows the new stay without a reload.
    await open.locator("#patient-facts").filter({ hasText: /earlier stay .+ – .+\(/ }).waitFor({ timeout: UI_TIMEOUT });
    await open.getByRole("region", { name: "Clinical assessment" }).waitFor();
    await open.close();

    // The page's read of the patient is held back while a reading of this
    // stay arrives live (a nurse enters it): the charts wait for the
    // patient and the range. A live reading once drew a chart before the
    // stays were known, and the time off the ward never showed (CI).
    const detailPath = `/api/v1/patients/${id}`;
    let held = false;
    await page.route((u) => u.pathname === detailPath, async (route) => {
      if (!held) {
        held = true;
        await enterReadings(demo, id, [{ code: "spo2", value: 96, unit: "%" }]);
        await new Promise((r) => setTimeout(r, 1500));
      }
      await route.continue();
    });
    await page.goto(`${demo.base}/#/patients/${id}`);
    await page.getByRole("heading", { level: 2, name: before.name }).waitFor();
    await page.locator("#patient-facts").filter({ hasText: /earlier stay .+ – .+\(/ }).waitFor({ timeout: UI_TIMEOUT });
    t.diagnostic(`facts: ${await page.locator("#patient-facts").textContent()}`);
    // The readings from the first stay are on the record's charts.
    const spo2 = page.locator('figure.vital[data-code="spo2"]');
    await poll("SpO2 points from the earlier stay", async () => Number(await spo2.getAttribute("data-points")) > 0, { timeout: UI_TIMEOUT, interval: 250 });
    // The time between the discharge and the admission is marked on the
    // charts (the vitals' and NEWS2's), and the readings table heads each
    // stay's readings.
    await poll("the time off the ward drawn on the SpO2 chart", async () => (await spo2.locator(".plot").getAttribute("data-off-ward")) === "1", { timeout: UI_TIMEOUT, interval: 250 });
    assert.equal(await page.locator("#score-plot").getAttribute("data-off-ward"), "1");
    await spo2.getByText("SpO2: readings as a table").click();
    const heads = spo2.locator("table.readings tr.stay th");
    await poll("this stay's SpO2 reading in the table", async () => (await heads.count()) === 2, { timeout: UI_TIMEOUT, interval: 250 });
    assert.ok(held, "the patient's read was held back");
    assert.match(await heads.nth(0).textContent(), /^This stay, admitted /);
    assert.match(await heads.nth(1).textContent(), /^Earlier stay, .+ – .+ \(/);
    await assertAccessible(page, t, "a re-admitted patient's page");
    await screenshot(page, "readmitted");
  });
});

test("a clinician records air or oxygen, consciousness and the SpO2 scale on the patient's page, and NEWS2 is whole", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo, context }) => {
    const id = await signedInPatientWithReadings(page, demo);
    await page.goto(`${demo.base}/#/patients/${id}`);
    const form = page.getByRole("region", { name: "Clinical assessment" });
    await form.waitFor();
    // A colleague has the same patient open in another tab.
    const other = await context.newPage();
    await other.goto(`${demo.base}/#/patients/${id}`);
    const theirs = other.getByRole("region", { name: "Clinical assessment" });
    await theirs.getByText("Not recorded: NEWS2 is partial until it is.").waitFor();

    // Nothing recorded yet: the demo's devices never say air or oxygen, so
    // every score is partial for it, and the form says why.
    await form.getByText("Not recorded: NEWS2 is partial until it is.").waitFor();
    const news2Now = page.locator("#patient-news2");
    await news2Now.filter({ hasText: "air or oxygen" }).waitFor({ timeout: DATA_TIMEOUT });
    const missingO2 = async () => {
      const list = await pageGet(page, "/api/v1/patients");
      return (list.find((p) => p.id === id)?.news2?.missing || []).includes("o2");
    };
    assert.equal(await missingO2(), true);

    // On air and alert, from a call with the patient.
    await form.getByRole("radio", { name: "Air" }).check();
    await form.getByLabel("Consciousness (ACVPU)").selectOption("A");
    await form.getByRole("button", { name: "Record" }).click();
    await form.getByText("Recorded: on air, consciousness A: alert. NEWS2 is scored again.").waitFor();
    await form.getByText(/^Recorded: on air by demo, /).waitFor();
    // Consciousness counts like a reading: until the pathway's freshness
    // window (6 h) has passed, and the form says until when.
    await form.getByText(/^Recorded: A: alert by demo, .+\. NEWS2 counts it until .+ \(6 h\), or the hub's later answer\.$/).waitFor();
    assert.equal(await form.getByLabel("Consciousness (ACVPU)").inputValue(), "", "a new assessment is chosen afresh");
    await poll("NEWS2 scored with air", async () => !(await missingO2()), { timeout: UI_TIMEOUT, interval: 250 });
    // The colleague's page shows it at once, without a reload.
    await theirs.getByText(/^Recorded: on air by demo, /).waitFor();
    await theirs.getByText("Updated: recorded by someone else just now.").waitFor();
    assert.equal(await theirs.getByRole("radio", { name: "Air" }).isChecked(), true);
    // The colleague starts a change of their own: what they chose stays when
    // the next recording arrives, and they are told to check it.
    await theirs.getByRole("radio", { name: "Supplemental oxygen" }).check();
    await poll("the page's NEWS2 no longer missing air or oxygen", async () => !/air or oxygen/.test(await news2Now.textContent()), { timeout: UI_TIMEOUT, interval: 250 });

    // Scale 2 hides hypoxaemia if chosen for the wrong patient: it needs
    // its confirmation ticked, and is not recorded without it.
    await form.getByRole("radio", { name: /^Scale 2/ }).check();
    const confirm = form.getByRole("checkbox", { name: /confirmed hypercapnic respiratory failure/ });
    await confirm.waitFor();
    await form.getByRole("button", { name: "Record" }).click();
    await form.getByText(/^Scale 2 not recorded: tick/).waitFor();
    assert.equal((await pageGet(page, `/api/v1/patients/${id}`)).settings.spo2_scale, 1, "not recorded unconfirmed");
    await confirm.check();
    await form.getByRole("button", { name: "Record" }).click();
    await form.getByText("Recorded: SpO2 scale 2. NEWS2 is scored again.").waitFor();
    await theirs.getByText(/^Someone else recorded this patient's assessment meanwhile/).waitFor();
    await theirs.getByText(/^Recorded: scale 2 by demo, /).waitFor();
    assert.equal(await theirs.getByRole("radio", { name: "Supplemental oxygen" }).isChecked(), true, "their own choice stays");
    await other.close();
    const after = await pageGet(page, `/api/v1/patients/${id}`);
    assert.equal(after.settings.spo2_scale, 2);
    assert.equal(after.settings.spo2_scale_set_by, "demo");
    await page.locator("#patient-facts").filter({ hasText: "SpO2 scale 2 (set by demo" }).waitFor();
    // The bands and the target lines are scale 2's (88–92 %), not scale 1's.
    const spo2Bands = page.locator('figure.vital[data-code="spo2"] .bands');
    await spo2Bands.filter({ hasText: "SpO2 scale 2" }).waitFor();
    await spo2Bands.filter({ hasText: "target, 88–92 %" }).waitFor();
    assert.equal(await page.locator('figure.vital[data-code="spo2"]').getAttribute("data-target"), "88-92");
    await assertAccessible(page, t, "the patient page's clinical assessment");
    await screenshot(page, "assessment");

    // Opened again, the form starts from what was recorded; consciousness
    // is an assessment made at a time, so its list starts on none.
    await page.reload();
    await form.getByText(/^Recorded: on air by demo, /).waitFor();
    assert.equal(await form.getByRole("radio", { name: "Air" }).isChecked(), true);
    assert.equal(await form.getByRole("radio", { name: /^Scale 2/ }).isChecked(), true);
    assert.equal(await form.getByLabel("Consciousness (ACVPU)").inputValue(), "");
    await form.getByText(/^Recorded: A: alert by demo, /).waitFor();

    // The same level assessed again later is recorded again, from now.
    const first = (await pageGet(page, `/api/v1/patients/${id}`)).settings.acvpu_set_at;
    await form.getByLabel("Consciousness (ACVPU)").selectOption("A");
    await form.getByRole("button", { name: "Record" }).click();
    await form.getByText("Recorded: consciousness A: alert. NEWS2 is scored again.").waitFor();
    const again = (await pageGet(page, `/api/v1/patients/${id}`)).settings;
    assert.equal(again.acvpu, "A");
    assert.ok(Date.parse(again.acvpu_set_at) > Date.parse(first), `${again.acvpu_set_at} after ${first}`);

    // Seven hours on, with the page open, the form says NEWS2 no longer
    // counts it.
    await page.clock.install({ time: Date.now() });
    await page.reload();
    const line = form.getByText(/^Recorded: A: alert by demo, /);
    await line.waitFor();
    assert.doesNotMatch(await line.textContent(), /no longer counts/);
    await page.clock.fastForward("07:00:00");
    await form.getByText(/^Recorded: A: alert by demo, .+: older than 6 h, so NEWS2 no longer counts it\. Choose the level now to record it again\.$/).waitFor();
  });
});

test("a clinician asks for a patient's observations every 4 hours, and back to the pathway's", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo, context }) => {
    const me = demo.login.username;
    const id = await signedInPatientWithReadings(page, demo);
    await page.goto(`${demo.base}/#/patients/${id}`);
    const form = page.getByRole("region", { name: "Clinical assessment" });
    const every = form.getByLabel("Observations expected");
    // A colleague has the same patient open in another tab.
    const other = await context.newPage();
    await other.goto(`${demo.base}/#/patients/${id}`);
    const theirs = other.getByRole("region", { name: "Clinical assessment" });

    // Nothing recorded: the pathway's interval, and the form says so.
    await form.getByText("As the pathway says.", { exact: true }).waitFor();
    await theirs.getByText("As the pathway says.", { exact: true }).waitFor();
    await form.getByText("Missed-reading alerts follow this for this patient.").waitFor();
    assert.equal(await every.inputValue(), "0");
    assert.deepEqual(await every.locator("option").allTextContents(), ["As the pathway says", "Every hour", "Every 2 hours",
      "Every 4 hours", "Every 6 hours", "Every 12 hours", "Every 24 hours"]);
    assert.equal((await pageGet(page, `/api/v1/patients/${id}`)).settings.obs_every_minutes, null);

    // Every 4 hours: only that is sent, and kept with who and when.
    await every.selectOption({ label: "Every 4 hours" });
    const patched = page.waitForResponse((r) => r.url().endsWith(`/api/v1/patients/${id}/episode`) && r.request().method() === "PATCH");
    await form.getByRole("button", { name: "Record" }).click();
    const sent = await patched;
    assert.equal(sent.status(), 200);
    assert.deepEqual(sent.request().postDataJSON(), { obs_every_minutes: 240 });
    await form.getByText("Recorded: observations every 4 hours. NEWS2 is scored again.").waitFor();
    await form.getByText(new RegExp(`^Recorded: every 4 hours by ${me}, .+\\.$`)).waitFor();
    const set = (await pageGet(page, `/api/v1/patients/${id}`)).settings;
    assert.equal(set.obs_every_minutes, 240);
    assert.equal(set.obs_every_set_by, me);
    assert.ok(set.obs_every_set_at, "with when");
    assert.equal(await every.inputValue(), "240");
    await page.locator("#patient-facts").filter({ hasText: `observations every 4 hours (set by ${me}` }).waitFor();
    // The colleague's page shows it at once, without a reload.
    await theirs.getByText(new RegExp(`^Recorded: every 4 hours by ${me}, `)).waitFor();
    await theirs.getByText("Updated: recorded by someone else just now.").waitFor();
    assert.equal(await theirs.getByLabel("Observations expected").inputValue(), "240");
    await other.locator("#patient-facts").filter({ hasText: "observations every 4 hours" }).waitFor();
    await assertAccessible(page, t, "the clinical assessment with an observation interval");
    await screenshot(page, "assessment-observations-every");

    // An interval none of the list's (recorded through the API) shows as it is.
    const status = await page.evaluate(async (id) => {
      const { csrf_token } = await (await fetch("/api/v1/me")).json();
      const r = await fetch(`/api/v1/patients/${id}/episode`, { method: "PATCH",
        headers: { "content-type": "application/json", "x-csrf-token": csrf_token }, body: JSON.stringify({ obs_every_minutes: 90 }) });
      return r.status;
    }, id);
    assert.equal(status, 200);
    await form.getByText(new RegExp(`^Recorded: every 90 minutes by ${me}, `)).waitFor();
    assert.equal(await every.inputValue(), "90");
    assert.equal(await every.locator("option:checked").textContent(), "Every 90 minutes");

    // Back to the pathway's: sent as 0, kept as none, with who chose it.
    await every.selectOption({ label: "As the pathway says" });
    await form.getByRole("button", { name: "Record" }).click();
    await form.getByText("Recorded: observations as the pathway says. NEWS2 is scored again.").waitFor();
    await form.getByText(new RegExp(`^Recorded: as the pathway says, by ${me}, .+\\.$`)).waitFor();
    const back = (await pageGet(page, `/api/v1/patients/${id}`)).settings;
    assert.equal(back.obs_every_minutes, null);
    assert.equal(back.obs_every_set_by, me);
    assert.equal(await every.locator("option").count(), 7, "the odd interval's option is gone with it");
    await theirs.getByText(new RegExp(`^Recorded: as the pathway says, by ${me}, `)).waitFor();
    assert.equal(await theirs.getByLabel("Observations expected").inputValue(), "0");
    await page.locator("#patient-facts").filter({ hasNotText: "observations every" }).waitFor();
    await other.close();

    // Nothing changed: nothing sent.
    await form.getByRole("button", { name: "Record" }).click();
    await form.getByText("Nothing to record: nothing was changed.").waitFor();
    await assertAccessible(page, t, "the clinical assessment back on the pathway's interval");
  });
});

test("a clinician records the escalation plan agreed with the patient: kept with who and when, on the ward list and on the patient's alerts on every open page, and cleared; the alert answered with a home visit", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo, context }) => {
    const me = demo.login.username;
    await page.goto(demo.base + "/");
    await signIn(page, demo.login);
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();
    // The demo records plans at admission, and none for every fourth
    // patient: this test takes that one. The others show theirs.
    const unplanned = page.locator("#patients tbody tr[data-patient]").filter({ has: page.locator("td .plan.none") });
    await unplanned.first().waitFor({ timeout: DATA_TIMEOUT });
    assert.equal(await unplanned.count(), 1);
    const id = Number(await unplanned.first().getAttribute("data-patient"));
    await page.locator("#patients td .plan.home").filter({ hasText: /^Treat at home$/ }).waitFor();
    assert.equal(await page.locator("#patients td .plan.hospital").filter({ hasText: /^For hospital$/ }).count(), 2);
    // An alert for the patient: a respiration rate of 30/min scores 3 on its own.
    await enterReadings(demo, id, [{ code: "resp_rate", value: 30, unit: "/min" }]);
    // A colleague keeps the ward open in another tab.
    const other = await context.newPage();
    await other.goto(`${demo.base}/`);
    const row = other.locator(`#patients tbody tr[data-patient="${id}"]`);
    const card = other.locator("#alert-list li.alert").filter({ has: other.locator(`a[href="#/patients/${id}"]`) })
      .filter({ hasNot: other.locator(".rule", { hasText: /^device-/ }) }).first();
    await card.waitFor({ timeout: DATA_TIMEOUT });
    // None recorded: said, not left blank.
    await row.locator("td .plan.none").filter({ hasText: /^No plan recorded$/ }).waitFor();
    await card.locator(".plan.none").filter({ hasText: /^No escalation plan recorded\.$/ }).waitFor();

    // The colleague's handover lists the plans recorded this shift: the demo's, made at its start.
    await other.locator("#handover-section summary").click();
    const handed = other.locator("#handover-plans tbody tr");
    await poll("the demo's three plans in the handover", async () => (await handed.count()) === 3, { timeout: UI_TIMEOUT });
    assert.equal(await other.locator(`#handover-plans tr[data-patient="${id}"]`).count(), 0, "none recorded for this one");
    await page.goto(`${demo.base}/#/patients/${id}`);
    const region = page.getByRole("region", { name: "Escalation plan" });
    const line = region.locator("#plan-recorded");
    await line.filter({ hasText: /^No escalation plan recorded\.$/ }).waitFor();
    assert.ok(await line.evaluate((e) => e.classList.contains("missing")), "none recorded stands out");
    assert.equal(await region.getByRole("button", { name: "Clear the plan" }).isVisible(), false, "nothing to clear");
    const sent = [];
    page.on("request", (r) => { if (r.method() === "PATCH" && r.url().endsWith(`/api/v1/patients/${id}/episode`)) sent.push(r.postDataJSON()); });

    // Recorded with no plan chosen: refused in the page, nothing sent.
    await region.getByRole("button", { name: "Record the plan" }).click();
    await region.getByText("Choose the plan to record it.").waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("value")), "hospital", "the focus on the first plan");
    assert.deepEqual(sent, []);

    // Treatment at home, with where the full plan is.
    await region.getByLabel("For treatment at home: not for transfer to hospital").check();
    await region.getByLabel("Details (optional)").fill("  ReSPECT form on the fridge ");
    const patched = page.waitForResponse((r) => r.url().endsWith(`/api/v1/patients/${id}/episode`) && r.request().method() === "PATCH");
    await region.getByRole("button", { name: "Record the plan" }).click();
    assert.equal((await patched).status(), 200);
    assert.deepEqual(sent, [{ escalation_plan: "home", escalation_note: "ReSPECT form on the fridge" }]);
    const words = "Escalation plan: For treatment at home: not for transfer to hospital. ReSPECT form on the fridge.";
    await region.getByText(`Recorded: ${words}`, { exact: true }).waitFor();
    await line.filter({ hasText: new RegExp(`^${words.replace(/[.:]/g, "\\$&")} Recorded by ${me}, .+\\.$`) }).waitFor();
    assert.equal(await line.evaluate((e) => e.classList.contains("missing")), false);
    const set = (await pageGet(page, `/api/v1/patients/${id}`)).settings;
    assert.deepEqual([set.escalation_plan, set.escalation_note, set.escalation_set_by], ["home", "ReSPECT form on the fridge", me]);
    // The plan is not the clinical assessment's: that form is not told of a change.
    assert.equal(await page.locator("#assessment-status").textContent(), "");

    // The colleague's ward shows it at once, on the row and on the alert.
    await row.locator("td .plan.home").filter({ hasText: /^Treat at home$/ }).waitFor();
    await card.locator(".plan").filter({ hasText: new RegExp(`^${words.replace(/[.:]/g, "\\$&")}$`) }).waitFor();
    assert.equal(await card.locator(".plan.none").count(), 0);
    // … and in the handover, the latest first, without a reload.
    const handedOver = other.locator(`#handover-plans tr[data-patient="${id}"]`);
    await handedOver.waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await other.locator("#handover-plans tbody tr").first().getAttribute("data-patient"), String(id));
    const cells = await handedOver.locator("td").allTextContents();
    assert.deepEqual(cells.slice(1), ["For treatment at home: not for transfer to hospital", "ReSPECT form on the fridge", me], JSON.stringify(cells));
    await assertAccessible(page, t, "the patient's page with an escalation plan");
    await assertAccessible(other, t, "the ward with an escalation plan on a row, an alert and the handover");
    await screenshot(page, "escalation-plan");

    // The same again: a review, recorded again with who and when.
    const firstAt = set.escalation_set_at;
    await region.getByRole("button", { name: "Record the plan" }).click();
    await region.getByText("Reviewed: the plan is unchanged, recorded again with your name and the time.").waitFor();
    assert.deepEqual(sent[1], sent[0]);
    const reviewedAt = (await pageGet(page, `/api/v1/patients/${id}`)).settings.escalation_set_at;
    assert.ok(Date.parse(reviewedAt) > Date.parse(firstAt), `the review's time (${reviewedAt}) after the first (${firstAt})`);

    // Cleared: none again, with who cleared it, everywhere.
    await region.getByRole("button", { name: "Clear the plan" }).click();
    await region.getByText("Cleared: no escalation plan recorded.").waitFor();
    assert.deepEqual(sent[2], { escalation_plan: "not-recorded" });
    await line.filter({ hasText: new RegExp(`^No escalation plan recorded\\. Cleared by ${me}, .+\\.$`) }).waitFor();
    assert.equal(await region.getByLabel("Details (optional)").inputValue(), "");
    await row.locator("td .plan.none").filter({ hasText: /^No plan recorded$/ }).waitFor();
    await card.locator(".plan.none").filter({ hasText: /^No escalation plan recorded\.$/ }).waitFor();
    await handedOver.locator("td.plan.none").filter({ hasText: /^Cleared: none recorded now$/ }).waitFor({ timeout: UI_TIMEOUT });

    // Answered with a visit at home: an outcome of its own.
    const alertId = Number(await card.getAttribute("data-alert"));
    await card.getByRole("button", { name: /^Resolve: / }).click();
    await other.locator("form.resolve").getByRole("button", { name: "Home visit", exact: true }).click();
    await other.locator("#notice").filter({ hasText: /^Resolved: .*\(home-visit\)\.$/ }).waitFor();
    assert.equal((await pageGet(other, `/api/v1/alerts/${alertId}`)).alert.outcome, "home-visit");
    await other.close();
  }, { patients: 4 });
});

test("a note written on a patient's page is kept with who and when, shown newest first on every open page of the patient, and a note being typed survives a look elsewhere", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo, context }) => {
    const id = await signedInPatientWithReadings(page, demo);
    await page.evaluate((id) => { location.hash = `#/patients/${id}`; }, id);
    const notes = page.locator("#notes li.note");
    await page.getByText("No notes yet.").waitFor();
    const box = page.getByLabel("New note");
    const add = page.getByRole("button", { name: "Add note" });

    // Nothing to add: told, nothing sent.
    await add.click();
    await page.getByText("Write the note first.").waitFor();
    assert.equal((await pageGet(page, `/api/v1/patients/${id}/notes`)).length, 0);

    // A note of two lines, with markup typed as text: kept as typed, shown as text.
    const first = "Phoned: breathless on the stairs only.\nAdvised pacing; <b>call back</b> at 14:00.";
    await box.fill(first);
    const posted = page.waitForResponse((r) => r.url().endsWith(`/api/v1/patients/${id}/notes`) && r.request().method() === "POST");
    await add.click();
    assert.equal((await posted).status(), 201);
    await notes.first().waitFor();
    assert.equal(await box.inputValue(), "", "the box is emptied once the note is kept");
    assert.equal(await notes.first().locator(".text").textContent(), first);
    assert.equal(await notes.first().locator("b").count(), 0, "markup is shown as text");
    assert.equal(await notes.first().locator(".author").textContent(), demo.login.username);
    const stored = await pageGet(page, `/api/v1/patients/${id}/notes`);
    assert.equal(stored.length, 1);
    assert.equal(stored[0].text, first);
    await assertAccessible(page, t, "a patient's page with a note");

    // Another open page of the patient shows a new note without a reload, above the first.
    const other = await context.newPage();
    await other.goto(`${demo.base}/#/patients/${id}`);
    await other.locator("#notes li.note").first().waitFor({ timeout: UI_TIMEOUT });
    await box.fill("Correction: call back at 15:00, not 14:00.");
    await add.click();
    await other.locator("#notes li.note").nth(1).waitFor({ timeout: UI_TIMEOUT });
    assert.deepEqual(await other.locator("#notes li.note .text").allTextContents(),
      ["Correction: call back at 15:00, not 14:00.", first], "newest first, on the other page too");
    await other.close();

    // A note part-typed survives going to the ward and coming back.
    await box.fill("Half a thought");
    await page.evaluate(() => { location.hash = ""; });
    await page.locator("#ward").waitFor({ state: "visible" });
    await page.evaluate((id) => { location.hash = `#/patients/${id}`; }, id);
    await notes.nth(1).waitFor();
    assert.equal(await box.inputValue(), "Half a thought");

    // The ward's handover lists the notes, the newest first, with whom they are about.
    await page.evaluate(() => { location.hash = ""; });
    await page.locator("#handover-section summary").click();
    const handed = page.locator("#handover-notes tbody tr");
    await handed.nth(1).waitFor();
    assert.deepEqual(await page.locator("#handover-notes td.note").allTextContents(),
      ["Correction: call back at 15:00, not 14:00.", first]);
    const { name } = await pageGet(page, `/api/v1/patients/${id}`);
    assert.ok((await handed.first().textContent()).includes(name), "the patient is named");
    await assertAccessible(page, t, "the ward with the handover's notes");
  }, { patients: 2 });
});

test("a clinician enters a respiratory rate counted on a call: kept with their name, on the chart at once, and a number no device could read is refused with what was typed kept", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    const id = await signedInPatientWithReadings(page, demo);
    await page.evaluate((id) => { location.hash = `#/patients/${id}`; }, id);
    const section = page.locator("#entry");
    await section.getByRole("heading", { name: "Enter readings" }).waitFor();
    const field = (code) => page.locator(`#entry-form input[data-code="${code}"]`);
    const enter = page.getByRole("button", { name: "Enter readings" });
    const error = page.locator("#entry-error");
    const manual = `manual:${demo.login.username}`;
    const enteredRows = async (code) => (await pageGet(page, `/api/v1/patients/${id}/observations?code=${code}`))
      .filter((o) => o.device_id === manual);

    // Nothing typed: told, nothing sent.
    await enter.click();
    await page.getByText("Enter at least one reading.").waitFor();

    // Not a number, then a number no device could read: refused, kept as typed.
    await field("pulse").fill("eighty");
    await enter.click();
    await page.getByText("Pulse must be a number.").waitFor();
    await field("pulse").fill("");
    await field("spo2").fill("9");
    const refused = page.waitForResponse((r) => r.url().endsWith(`/api/v1/patients/${id}/observations`) && r.request().method() === "POST");
    await enter.click();
    assert.equal((await refused).status(), 422);
    await poll("the refusal told", async () => (await error.textContent()) === "Not entered: SpO2 is outside what any device could read: check the number.", { timeout: UI_TIMEOUT, interval: 100 });
    assert.equal(await field("spo2").inputValue(), "9", "what was typed stays, to be corrected");
    assert.equal((await enteredRows("spo2")).length, 0, "nothing stored");

    // Corrected, with the breaths counted on the call: stored, with the user as the source.
    await field("spo2").fill("");
    await field("resp_rate").fill("19");
    const posted = page.waitForResponse((r) => r.url().endsWith(`/api/v1/patients/${id}/observations`) && r.request().method() === "POST");
    await enter.click();
    assert.equal((await posted).status(), 201);
    await poll("the entry confirmed", async () => /^Entered, measured .+: Respiration rate 19\.$/.test(await page.locator("#entry-status").textContent()), { timeout: UI_TIMEOUT, interval: 100 });
    assert.equal(await error.textContent(), "");
    assert.equal(await field("resp_rate").inputValue(), "", "the form is emptied once stored");
    const [row] = await enteredRows("resp_rate");
    assert.equal(row?.value, 19, "stored as entered");

    // On the respiration chart's table at once (the websocket's event), with who entered it.
    const rr = page.locator('#charts figure.vital[data-code="resp_rate"]');
    await rr.getByText("Respiration rate: readings as a table").click();
    const entered = rr.locator("table.readings tbody tr").filter({ hasText: `entered by ${demo.login.username}` });
    await entered.first().waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await entered.first().locator("td:nth-child(2)").textContent(), "19");
    await assertAccessible(page, t, "a patient's page with a reading entered");
  }, { patients: 2 });
});

test("a reading that arrives while the page reads its range is on the chart, once", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    const id = await signedInPatientWithReadings(page, demo);
    // The page's read of the readings answered by the server, then held
    // while a reading is entered and arrives live, then given to the page:
    // the answer is older than the live reading. The page once dropped
    // such a reading from its charts until the range was read again.
    const path = `/api/v1/patients/${id}/observations`;
    let held = false;
    await page.route((u) => u.pathname === path, async (route) => {
      if (held) return route.continue();
      held = true;
      const answer = await route.fetch();
      await enterReadings(demo, id, [{ code: "resp_rate", value: 27, unit: "/min" }]);
      await new Promise((r) => setTimeout(r, 1500));
      await route.fulfill({ response: answer });
    });
    await page.goto(`${demo.base}/#/patients/${id}`);
    const rr = page.locator('#charts figure.vital[data-code="resp_rate"]');
    await rr.waitFor({ timeout: UI_TIMEOUT });
    await page.locator("#range-status").filter({ hasText: /^Showing 24 hours/ }).waitFor({ timeout: UI_TIMEOUT });
    assert.ok(held, "the read was held back");
    await rr.getByText("Respiration rate: readings as a table").click();
    const entered = rr.locator("table.readings tbody tr").filter({ hasText: `entered by ${demo.login.username}` });
    await entered.first().waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await entered.count(), 1, "once");
    assert.equal(await entered.first().locator("td:nth-child(2)").textContent(), "27");
    // And once when the range is read again (the server's answer has it now).
    await page.getByRole("button", { name: "7 days" }).click();
    await page.locator("#range-status").filter({ hasText: /^Showing 7 days/ }).waitFor({ timeout: UI_TIMEOUT });
    if (!(await rr.locator("table.readings").isVisible())) await rr.getByText("Respiration rate: readings as a table").click();
    await entered.first().waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await entered.count(), 1, "once after a reload");
  });
});

test("a nurse writes the summary for a call or a transfer: the stay in words as the API writes it, copied as shown, said to be out of date once the record changes, written again, and gone for another patient", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo, context }) => {
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: demo.base });
    const id = await signedInPatientWithReadings(page, demo);
    await page.locator(`#patients tr[data-patient="${id}"] th a`).click();
    const section = page.getByRole("region", { name: "Summary for a call or a transfer" });
    await section.waitFor();
    const text = page.locator("#summary-text");
    const status = page.locator("#summary-status");
    assert.equal(await text.isVisible(), false, "written only when asked: each is a read of the record on the audit trail");

    await section.getByRole("button", { name: "Write the summary" }).click();
    await text.waitFor();
    const shown = await text.textContent();
    const lines = shown.split("\n");
    const detail = await pageGet(page, `/api/v1/patients/${id}`);
    const nhs = detail.nhs_number;
    assert.equal(lines[0], "Vigil: summary for a call or a transfer");
    assert.match(lines[1], new RegExp(`^Demo ward\\. Written \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC for ${demo.login.username}, `), shown);
    assert.ok(lines.includes(`Patient: ${detail.name}, NHS number ${nhs.slice(0, 3)} ${nhs.slice(3, 6)} ${nhs.slice(6)}`), shown);
    const words = { hospital: "For transfer to hospital if they deteriorate", home: "For treatment at home: not for transfer to hospital", comfort: "For comfort care at home (end of life)" };
    const plan = detail.settings.escalation_plan;
    assert.ok(lines.includes(`Escalation plan: ${plan ? words[plan] : "None recorded: ask the patient's team what was agreed"}`), shown);
    // The demo's devices never say air or oxygen: its NEWS2 is partial, and said so.
    assert.ok(lines.some((l) => /^NEWS2 now: at least \d+, [a-z-]+ risk at least \(partial/.test(l)), shown);
    assert.ok(lines.includes("  Air or oxygen: none recorded"), shown);
    const order = ["SITUATION", "BACKGROUND", "ASSESSMENT", "RECOMMENDATION"].map((h) => lines.indexOf(h));
    assert.ok(order.every((i, k) => i > 0 && (k === 0 || i > order[k - 1])), `SBAR's order: ${order}`);
    await assertAccessible(page, t, "the patient page with its summary");
    await screenshot(page, "patient-summary");

    // Copied exactly as shown (the demo's readings may have made it out of date already, which it then says).
    await section.getByRole("button", { name: "Copy" }).click();
    await status.filter({ hasText: /^Copied(\.|, as written before the latest changes\.)$/ }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), shown);

    // A reading entered after it was written: the summary on show is out of date, and says so.
    const outdated = section.getByRole("status").filter({ hasText: "The record has changed since this was written: write it again before you read it out." });
    await enterReadings(demo, id, [{ code: "resp_rate", value: 30, unit: "/min" }]);
    await outdated.waitFor({ timeout: UI_TIMEOUT });
    assert.match(await text.getAttribute("class"), /outdated/);
    assert.equal(await text.textContent(), shown, "what was shown stays until written again");
    await section.getByRole("button", { name: "Write it again" }).click();
    await poll("the summary written again, with the entered reading", async () => /^ {2}Respiration rate 30\/min → 3, /m.test(await text.textContent()),
      { timeout: UI_TIMEOUT, interval: 100 });
    assert.notEqual(await text.textContent(), shown);
    assert.equal(await status.textContent(), "", "the copy's notice is gone with what it copied");

    await section.getByRole("button", { name: "Hide" }).click();
    assert.equal(await text.isVisible(), false);
    assert.equal(await page.evaluate(() => document.activeElement?.id), "summary-write");

    // Shown again, then another patient: nothing of the first is left on the page.
    await section.getByRole("button", { name: "Write the summary" }).click();
    await text.waitFor();
    await page.goBack();
    const other = page.locator("#patients tbody tr[data-patient]").filter({ hasNot: page.locator(`th a[href="#/patients/${id}"]`) }).first();
    const otherId = Number(await other.getAttribute("data-patient"));
    await other.locator("th a").click();
    await page.waitForURL(`**/#/patients/${otherId}`);
    await section.waitFor();
    assert.equal(await text.isVisible(), false, "the first patient's summary is gone");
    assert.equal(await text.textContent(), "");
  });
});

test("a nurse asks for a follow-up on a patient's page: listed with who asked and when until it is due, cancelled once; a follow-up alert's card says what it is for", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    const me = demo.login.username;
    const id = await signedInPatientWithReadings(page, demo);
    await page.locator(`#patients tr[data-patient="${id}"] th a`).click();
    const region = page.getByRole("region", { name: "Follow-ups" });
    await region.getByText("None asked for.").waitFor();
    const sent = [];
    page.on("request", (r) => { if (r.method() === "POST" && r.url().includes(`/api/v1/patients/${id}/follow-ups`)) sent.push([r.url(), r.postDataJSON()]); });

    // Nothing said it is for: refused in the page, nothing sent.
    await region.getByRole("button", { name: "Ask for the follow-up" }).click();
    await region.getByText("Say what the follow-up is for.").waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.id), "follow-up-reason");
    assert.deepEqual(sent, []);

    await region.getByLabel("Due in").selectOption("30");
    await region.getByLabel("What for").fill("  Call back: has the inhaler helped? ");
    const before = Date.now();
    await region.getByRole("button", { name: "Ask for the follow-up" }).click();
    await region.getByText(/^Asked for: due .+\. It goes to the ward's alert queue then\.$/).waitFor();
    assert.deepEqual(sent.map(([, b]) => b), [{ in_minutes: 30, reason: "Call back: has the inhaler helped?" }]);
    const item = region.locator("#follow-up-list li");
    await item.waitFor();
    const [listed] = await pageGet(page, `/api/v1/patients/${id}/follow-ups`);
    assert.equal(listed.reason, "Call back: has the inhaler helped?");
    assert.equal(listed.set_by, me);
    const dueIn = Date.parse(listed.due_at) - before;
    assert.ok(dueIn > 29 * 60_000 && dueIn < 31 * 60_000, `due in 30 minutes (${dueIn} ms)`);
    assert.match(await item.textContent(), new RegExp(`^Due .+: Call back: has the inhaler helped\\? \\(asked for by ${me}, .+\\) Cancel$`));
    assert.equal(await item.locator("time").getAttribute("datetime"), listed.due_at);
    assert.equal(await region.getByText("None asked for.").isVisible(), false);
    await assertAccessible(page, t, "the patient's page with a follow-up asked for");

    // The ward's handover lists it among the calls the next shift inherits.
    await page.evaluate(() => { location.hash = ""; });
    await page.locator("#handover-section summary").click();
    const inherited = page.locator(`#handover-follow-ups tr[data-follow-up="${listed.id}"]`);
    await inherited.waitFor({ timeout: UI_TIMEOUT });
    const cells = await inherited.locator("td").allTextContents();
    assert.equal(cells[1], "Call back: has the inhaler helped?", JSON.stringify(cells));
    assert.match(cells[2], new RegExp(`^${me}, `));
    assert.match(await inherited.locator("th").textContent(), /NHS \d{3} \d{3} \d{4}$/);
    assert.equal(await page.locator("#handover-follow-ups caption .handover-ahead").textContent(), "the next 12 hours");
    await assertAccessible(page, t, "the ward with a follow-up in the handover");
    await page.evaluate((id) => { location.hash = `#/patients/${id}`; }, id);
    await item.waitFor();

    // Cancelled: gone from the list and the API's.
    await item.getByRole("button", { name: /^Cancel the follow-up due .+: Call back: has the inhaler helped\?$/ }).click();
    await region.getByText(/^Cancelled: the follow-up due .+\.$/).waitFor();
    assert.equal(sent[1][0].endsWith(`/follow-ups/${listed.id}/cancel`), true, sent[1][0]);
    await region.getByText("None asked for.").waitFor();
    assert.deepEqual(await pageGet(page, `/api/v1/patients/${id}/follow-ups`), []);
    await poll("gone from the handover", async () => (await inherited.count()) === 0, { timeout: UI_TIMEOUT });

    // A follow-up come due, as the server puts it in the queue (made up:
    // the soonest asked for is 5 minutes away): its card says what for.
    const { ward_id } = await pageGet(page, `/api/v1/patients/${id}`);
    const made = { id: 99001, patient_id: id, ward_id,
      rule_id: "follow-up", severity: "low", status: "open", message: `Follow-up due at 10:00 UTC, asked for by ${me}`,
      count: 1, raised_at: new Date().toISOString(), updated_at: new Date().toISOString(), escalate_at: null, resolved_at: null,
      outcome: null, note: null, evidence: [],
      latest_value: { follow_up_id: 1, reason: "Ring back: breathless on the stairs", due_at: new Date().toISOString(), set_by: me } };
    await page.route((u) => { const x = new URL(u); return x.pathname === "/api/v1/alerts" && x.searchParams.get("status") === "open"; },
      async (r) => { const real = await (await r.fetch()).json(); await r.fulfill({ json: [...real, made] }); });
    await page.goto(`${demo.base}/`);
    const card = page.locator(`#alert-list li[data-alert="99001"]`);
    await card.waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await card.locator(".message").textContent(), made.message);
    assert.equal(await card.locator(".reason").textContent(), "For: Ring back: breathless on the stairs");
    // Any other alert has no such line.
    const others = page.locator("#alert-list li[data-alert]:not([data-alert='99001']) .reason");
    for (const r of await others.all()) assert.equal(await r.isVisible(), false);
  });
});
