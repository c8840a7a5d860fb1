// The ward page as a nurse works it: NEWS2 column and acuity order, the
// alert queue (acknowledge, resolve with an outcome), CSRF on writes, and an
// honest connection indicator. Real Chromium against a real `vigil demo`
// (see harness.mjs and docs/development.md).
//
// Alerts come from the demo itself: with 6 patients, the COPD patient's
// SpO2 (90–94 % on scale 1) and the deteriorating asthma and sepsis
// patients raise NEWS2 and pathway alerts within about a minute. The wait is
// bounded (ALERT_TIMEOUT); on a timeout the test reports what the API says.

import { test } from "node:test";
import assert from "node:assert/strict";
import { DATA_TIMEOUT, UI_TIMEOUT, assertAccessible, enterReadings, poll, screenshot, signIn, withWard } from "./harness.mjs";

const PATIENTS = 6;
const ALERT_TIMEOUT = 120_000;
// A rise in severity comes after the first alerts (step 9).
// A rise usually comes about four minutes into the demo; one CI run saw
// none by five (no alert at all for 150 s after the resolved one), so the
// wait allows eight.
const RISE_TIMEOUT = 420_000;
const TEST_TIMEOUT = 600_000;
const RISK_RANK = { high: 4, medium: 3, "low-medium": 2, low: 1 };

/** Per row, in display order: patient id, NEWS2 text, risk class, partial, scored_at. */
function news2Rows(page) {
  return page.locator("#patients tbody tr[data-patient]").evaluateAll((rows) => rows.map((tr) => {
    const td = tr.querySelector("td[data-news2]");
    const risk = [...td.classList].find((c) => c.startsWith("risk-"))?.slice(5) || null;
    return { id: Number(tr.dataset.patient), text: td.querySelector(".score").textContent, risk,
      partial: td.classList.contains("partial"), scoredAt: td.dataset.scoredAt || null, title: td.title,
      hidden: td.querySelector(".visually-hidden")?.textContent || "" };
  }));
}

/** GET (or POST) from inside the page, with the page's own cookie. */
function pageFetch(page, path, init = {}) {
  return page.evaluate(async ([path, init]) => {
    const res = await fetch(path, { credentials: "same-origin", ...init });
    let body = null;
    try { body = await res.json(); } catch { /* empty */ }
    return { status: res.status, body };
  }, [path, init]);
}

/**
 * Raise an alert for a patient with no unresolved alert, by a respiration
 * rate of 30/min entered for them (scoring 3 on its own: NEWS2 low-medium):
 * so a test waiting for the simulation's next alert does not hang on the
 * scenarios' timing. `api` fetches as the demo's admin. False if every
 * patient has an alert already.
 */
async function raiseForACalmPatient(api, demo) {
  const unresolved = (await Promise.all(["open", "acknowledged", "escalated"].map(async (s) =>
    (await api(`/api/v1/alerts?status=${s}`)).json()))).flat();
  const calm = (await (await api("/api/v1/patients")).json()).find((p) => !unresolved.some((a) => a.patient_id === p.id));
  if (!calm) return false;
  await enterReadings(demo, calm.id, [{ code: "resp_rate", value: 30, unit: "/min" }]);
  return true;
}

async function openSignedIn(page, demo) {
  await page.goto(demo.base + "/");
  await signIn(page, demo.login);
  await page.getByRole("status").filter({ hasText: "live" }).waitFor();
}

test("NEWS2 column in acuity order, and the alert queue worked in the browser: acknowledge, resolve, CSRF", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    const frames = [];
    page.on("websocket", (ws) => {
      if (ws.url().endsWith("/api/v1/stream")) ws.on("framereceived", (f) => frames.push(String(f.payload)));
    });
    const t0 = Date.now();
    await openSignedIn(page, demo);
    await page.evaluate(() => { window.__sameDocument = true; });
    let navigations = 0;
    page.on("framenavigated", (f) => { if (f === page.mainFrame()) navigations++; });

    const headers = await page.getByRole("columnheader").allTextContents();
    assert.ok(headers.includes("NEWS2"), `a NEWS2 column in ${JSON.stringify(headers)}`);

    // 1. Every patient gets a NEWS2 number; partial scores say so.
    await poll(`a NEWS2 score for all ${PATIENTS} patients`, async () => {
      const rows = await news2Rows(page);
      return rows.length === PATIENTS && rows.every((r) => /^≥?\d+/.test(r.text));
    }, { timeout: DATA_TIMEOUT, interval: 250 });
    t.diagnostic(`NEWS2 for all patients after ${Date.now() - t0} ms`);
    const { body: list } = await pageFetch(page, "/api/v1/patients");
    const rows = await news2Rows(page);
    for (const p of list) {
      const r = rows.find((x) => x.id === p.id);
      if (p.news2?.partial) {
        assert.match(r.text, /^≥\d+ partial$/, `patient ${p.id}: a partial score is shown as a lower bound`);
        assert.ok(r.partial, `patient ${p.id}: marked partial`);
        for (const m of p.news2.missing) assert.ok(r.title.length > 0 && r.hidden.includes("missing"), `patient ${p.id}: says ${m} is missing`);
      }
    }
    // Acuity order: risk, then total, never increasing down the table.
    const keys = rows.map((r) => [RISK_RANK[r.risk] || 0, Number(r.text.replace(/\D+/g, " ").trim().split(" ")[0])]);
    for (let i = 1; i < keys.length; i++) {
      const [ra, ta] = keys[i - 1], [rb, tb] = keys[i];
      assert.ok(ra > rb || (ra === rb && ta >= tb), `rows in acuity order: ${JSON.stringify(rows.map((r) => [r.risk, r.text]))}`);
    }

    // 2. Vital cells carry their NEWS2 sub-score as a class and as text.
    // (Only cells still in the page: a live re-render may replace a row
    // between the query and the evaluation, and a detached cell has no style.)
    const sub = await poll("a reading with a non-zero NEWS2 sub-score", async () => {
      const cells = await page.locator("#patients tbody td[data-sub]").evaluateAll((tds) => tds.filter((td) => td.isConnected).map((td) => ({
        sub: td.dataset.sub, cls: td.className, after: getComputedStyle(td, "::after").content, title: td.title })));
      for (const c of cells) assert.ok(c.cls.includes(`sub-${Math.min(3, Number(c.sub.slice(1)))}`), `class matches ${JSON.stringify(c)}`);
      return cells.find((c) => c.sub !== "+0");
    }, { timeout: DATA_TIMEOUT, interval: 250 });
    assert.ok(sub.after.includes(sub.sub), `the sub-score ${sub.sub} is shown as text, not colour alone (${sub.after})`);
    assert.match(sub.title, /→ \d/, "the tooltip gives the scoring reason");

    // 3. The NEWS2 cell follows websocket `score` events without a reload.
    const before = Object.fromEntries((await news2Rows(page)).map((r) => [r.id, r.scoredAt]));
    const moved = await poll("a NEWS2 cell updated from a score event", async () => {
      const scores = frames.map((f) => JSON.parse(f)).filter((e) => e.type === "score");
      const now = await news2Rows(page);
      return now.find((r) => r.scoredAt !== before[r.id]
        && scores.some((e) => e.patient_id === r.id && e.score.scored_at === r.scoredAt));
    }, { timeout: DATA_TIMEOUT, interval: 250 });
    t.diagnostic(`NEWS2 of patient ${moved.id} updated live: ${moved.text}`);

    // 4. The alert queue fills from the demo's own deterioration.
    const queue = page.getByRole("list", { name: /Alert queue/ });
    const items = queue.getByRole("listitem");
    await poll("an open alert in the queue", async () => (await items.filter({ has: page.getByRole("button", { name: /^Acknowledge/ }) }).count()) > 0,
      { timeout: ALERT_TIMEOUT, interval: 500 }).catch(async (e) => {
      const alerts = await pageFetch(page, "/api/v1/alerts").catch(() => null);
      const patients = await pageFetch(page, "/api/v1/patients").catch(() => null);
      t.diagnostic(`alerts: ${JSON.stringify(alerts)}`);
      t.diagnostic(`scores: ${JSON.stringify(patients?.body?.map((p) => [p.id, p.pathway, p.news2?.total, p.news2?.risk]))}`);
      throw e;
    });
    t.diagnostic(`first open alert after ${Date.now() - t0} ms`);
    const open = items.filter({ has: page.getByRole("button", { name: /^Acknowledge/ }) }).filter({ has: page.locator(".status", { hasText: /^open$/ }) }).first();
    const id = Number(await open.getAttribute("data-alert"));
    const item = queue.locator(`li[data-alert="${id}"]`);
    const text = await item.textContent();
    assert.match(text, /raised \d+[smh] ago/, "shows the alert's age");
    assert.match(text, /×\d+/, "shows the count");
    const { body: shown } = await pageFetch(page, `/api/v1/alerts/${id}`);
    assert.ok(text.includes(shown.alert.message), "shows the message");
    assert.ok(text.includes(shown.alert.rule_id) && text.includes(shown.alert.severity), "shows rule and severity");
    if (shown.alert.escalate_at) assert.match(text, /escalat(es in|ion due)/, "counts down to escalation");
    await screenshot(page, "alert-open", { docs: "alert" });
    await assertAccessible(page, t, "the ward with an open alert");

    // 5. Acknowledge in the browser: the status changes in place.
    const ack = page.waitForResponse((r) => r.url().endsWith(`/api/v1/alerts/${id}/acknowledge`));
    await item.getByRole("button", { name: /^Acknowledge/ }).click();
    assert.equal((await ack).status(), 200, "the page sends the CSRF token with its write");
    await item.locator(".status").filter({ hasText: /^acknowledged$/ }).waitFor();
    await item.getByText(`acknowledged by ${demo.login.username}`).waitFor();
    const { body: acked } = await pageFetch(page, `/api/v1/alerts/${id}`);
    assert.equal(acked.alert.status, "acknowledged");
    assert.ok(acked.events.some((e) => e.action === "acknowledged" && e.actor === demo.login.username), "the audit trail names who acknowledged");
    await screenshot(page, "alert-acknowledged");

    // 5b. The queue's filter: each
    // status shows only its own alerts, and says how many of all.
    const filter = page.getByLabel("Show alerts");
    const visibleStatuses = () => queue.locator("li[data-alert]:visible .status").allTextContents();
    await filter.selectOption("acknowledged");
    await item.waitFor({ state: "visible" });
    assert.ok((await visibleStatuses()).every((s) => s === "acknowledged"), "only acknowledged alerts");
    await page.getByText(/^showing \d+ of \d+$/).waitFor();
    await filter.selectOption("escalated");
    await item.waitFor({ state: "hidden" });
    const escalated = await visibleStatuses();
    assert.ok(escalated.every((s) => s === "escalated"), `only escalated alerts: ${escalated}`);
    if (!escalated.length) await page.getByText("No escalated alerts waiting for review.").waitFor();
    await filter.selectOption("all");
    await item.waitFor({ state: "visible" });

    // 6. Resolve it with an outcome: Resolve, type a note, one outcome click.
    await item.getByRole("button", { name: /^Resolve/ }).click();
    await page.getByLabel("Note (optional)").waitFor();
    await assertAccessible(page, t, "the ward with a resolve form open");
    await page.getByLabel("Note (optional)").fill("Phoned the patient; reading repeated, stable.");
    const res = page.waitForResponse((r) => r.url().endsWith(`/api/v1/alerts/${id}/resolve`));
    await item.getByRole("button", { name: "Reviewed, no action" }).click();
    assert.equal((await res).status(), 200);
    await item.waitFor({ state: "detached" });
    await page.getByText(/^Resolved: .*reviewed-no-action/).waitFor();
    const { body: resolved } = await pageFetch(page, `/api/v1/alerts/${id}`);
    assert.equal(resolved.alert.status, "resolved");
    assert.equal(resolved.alert.outcome, "reviewed-no-action");
    assert.equal(resolved.alert.note, "Phoned the patient; reading repeated, stable.");

    // 6b. The handover under the queue lists it: whom it was about, how it
    // was resolved and by whom.
    await page.locator("#handover-section summary").click();
    const handed = page.locator(`#handover tr[data-alert="${id}"]`);
    await handed.waitFor({ timeout: UI_TIMEOUT });
    const { body: whom } = await pageFetch(page, `/api/v1/patients/${resolved.alert.patient_id}`);
    const nhs = whom.nhs_number.replace(/^(\d{3})(\d{3})(\d{4})$/, "$1 $2 $3");
    const handedText = await handed.textContent();
    for (const want of [whom.name, `NHS ${nhs}`, "Reviewed, no action", "Phoned the patient; reading repeated, stable.", demo.login.username]) {
      assert.ok(handedText.includes(want), `the handover row has ${want}: ${handedText}`);
    }
    await assertAccessible(page, t, "the ward with the handover open");
    // Widened after a weekend: both lists are asked for 3 days, and say so.
    const widened = ["/api/v1/alerts/resolved?hours=72", "/api/v1/patients/notes?hours=72"]
      .map((path) => page.waitForResponse((r) => r.url().endsWith(path) && r.status() === 200));
    await page.getByLabel("Covering").selectOption("72");
    await Promise.all(widened);
    assert.equal(await page.locator("#handover-section summary").textContent(), "Handover: the last 3 days");
    assert.match(await page.locator("#handover caption").textContent(), /resolved in the last 3 days,/);
    await handed.waitFor({ timeout: UI_TIMEOUT });

    // 7. A cookie-authenticated write without the CSRF header is refused.
    const live = await pageFetch(page, "/api/v1/alerts?status=open");
    const target = live.body[0]?.id ?? id;
    const forged = await pageFetch(page, `/api/v1/alerts/${target}/acknowledge`, { method: "POST" });
    assert.equal(forged.status, 403, "no x-csrf-token: 403");
    assert.equal(forged.body?.error?.code, "csrf");
    const wrong = await pageFetch(page, `/api/v1/alerts/${target}/acknowledge`, { method: "POST", headers: { "x-csrf-token": "0".repeat(64) } });
    assert.equal(wrong.status, 403, "a wrong x-csrf-token: 403");
    const { body: after } = await pageFetch(page, `/api/v1/alerts/${target}`);
    assert.ok(!after.events.some((e) => e.action === "acknowledged" && Date.parse(e.at) > Date.parse(resolved.alert.resolved_at)),
      "the refused writes changed nothing");

    assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page was not reloaded");
    assert.equal(navigations, 0, "no navigation happened");
    const shot = await screenshot(page, "alert-queue");

    // 8. The patient's page tells who did what to the alert, from its audit trail.
    await page.locator(`#patients tr[data-patient="${shown.alert.patient_id}"] th a`).click();
    const trail = page.locator(`#patient-alerts li[data-alert="${id}"]`);
    await trail.waitFor();
    const told = await trail.textContent();
    assert.match(told, /resolved/, "its status");
    assert.ok(told.includes(`acknowledged by ${demo.login.username}`), `who acknowledged: ${told}`);
    assert.ok(told.includes(`resolved by ${demo.login.username}`), `who resolved: ${told}`);
    assert.ok(told.includes("Phoned the patient; reading repeated, stable."), "the note");
    assert.ok(told.includes("outcome reviewed-no-action"), "the outcome");

    // 9. A rise in severity is in the trail too (a plain repeat is only counted, ×N).
    // The demo's deteriorating patients climb a band within about four minutes.
    const rise = await poll("an alert whose severity rose", async () => {
      const { body: list } = await pageFetch(page, "/api/v1/alerts");
      for (const a of list || []) {
        const { body: one } = await pageFetch(page, `/api/v1/alerts/${a.id}`);
        const e = one?.events?.find((x) => x.action === "updated");
        if (e) return { alert: one.alert, event: e };
      }
      return false;
    }, { timeout: RISE_TIMEOUT, interval: 2_000 });
    const { previous_severity: from, severity: to } = rise.event.detail;
    assert.ok(RISK_RANK[to] > RISK_RANK[from], `a rise names where it rose from: ${JSON.stringify(rise.event.detail)}`);
    await page.evaluate((id) => { location.hash = `#/patients/${id}`; }, rise.alert.patient_id);
    await page.locator(`#patient-alerts li[data-alert="${rise.alert.id}"]`)
      .getByText(`severity raised ${from} → ${to} by system`).waitFor();

    // 10. A discharge by `vigil admin`, in another process, resolves the
    // patient's live alerts: they leave the open queue, and the patient the
    // ward list, within the daemon's patient sync (5 s), not at the next
    // full load (hazards AL-24, DB-07).
    await page.evaluate(() => { location.hash = ""; });
    const { body: now } = await pageFetch(page, "/api/v1/alerts");
    const liveAlert = (now || []).find((a) => a.status !== "resolved");
    assert.ok(liveAlert, `a live alert to discharge with: ${JSON.stringify(now)}`);
    const liveItem = queue.locator(`li[data-alert="${liveAlert.id}"]`);
    await liveItem.waitFor({ state: "visible", timeout: UI_TIMEOUT });
    const { body: ward } = await pageFetch(page, "/api/v1/patients");
    const name = ward.find((p) => p.id === liveAlert.patient_id).name;
    const out = JSON.parse(await demo.admin(["patient", "discharge", "--patient", String(liveAlert.patient_id)]));
    assert.ok(out.resolved_alerts.includes(liveAlert.id), `the discharge resolved it: ${JSON.stringify(out)}`);
    await liveItem.waitFor({ state: "detached", timeout: UI_TIMEOUT });
    await page.locator(`#patients tr[data-patient="${liveAlert.patient_id}"]`).waitFor({ state: "detached", timeout: UI_TIMEOUT });
    await page.getByText(`Resolved by vigil-admin: ${name}, `, { exact: false }).first().waitFor({ timeout: UI_TIMEOUT });
    // The handover, still open, takes the discharge's resolution in as it
    // happens, with the patient named though they are off the ward list.
    const discharged = page.locator(`#handover tr[data-alert="${liveAlert.id}"]`);
    await discharged.waitFor({ timeout: UI_TIMEOUT });
    const dischargedText = await discharged.textContent();
    for (const want of [name, "Patient discharged", "vigil-admin"]) {
      assert.ok(dischargedText.includes(want), `the handover row has ${want}: ${dischargedText}`);
    }
    t.diagnostic(`screenshot: ${shot}; whole test ${Date.now() - t0} ms`);
  }, { patients: PATIENTS });
});

test("the connection indicator is honest: a dropped socket shows reconnecting, then live after a refetch", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    // Keep a handle on the page's websockets (the page's own variables live
    // inside its module bundle), so the test can drop one.
    await page.addInitScript(() => {
      const Native = window.WebSocket;
      window.__sockets = [];
      window.WebSocket = class extends Native {
        constructor(...args) { super(...args); window.__sockets.push(this); }
      };
    });
    await openSignedIn(page, demo);
    await page.locator("#patients tbody tr[data-patient]").first().waitFor();
    const refetch = page.waitForResponse((r) => r.url().endsWith("/api/v1/patients"), { timeout: UI_TIMEOUT });
    const alertsRefetch = page.waitForResponse((r) => r.url().includes("/api/v1/alerts?status=open"), { timeout: UI_TIMEOUT });
    // Drop the page's websocket as a network blip would.
    await page.evaluate(() => window.__sockets.filter((s) => s.readyState === WebSocket.OPEN).forEach((s) => s.close()));
    await page.getByRole("status").filter({ hasText: /^reconnecting/ }).waitFor();
    assert.match(await page.getByRole("status").textContent(), /out of date/, "says the data may be out of date");
    await refetch; await alertsRefetch;
    await page.getByRole("status").filter({ hasText: /^live$/ }).waitFor();
  });
});

test("a discharge by another user is told once, though the server repeats its resolutions", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    // Every resolution pushed for an alert, as the page received it.
    const resolved = [];
    page.on("websocket", (ws) => ws.on("framereceived", ({ payload }) => {
      try {
        const ev = JSON.parse(payload);
        if (ev.type === "alert_update" && ev.alert?.status === "resolved") resolved.push(ev.alert.id);
      } catch { /* not JSON */ }
    }));
    await openSignedIn(page, demo);
    const row = page.locator("#patients tbody tr[data-patient]").first();
    await row.waitFor();
    const id = Number(await row.getAttribute("data-patient"));
    const { body: ward } = await pageFetch(page, "/api/v1/patients");
    const { name, nhs_number: nhs } = ward.find((p) => p.id === id);

    // A nurse records new confusion: NEWS2's consciousness scores 3, and the
    // alert is raised at once.
    const { body: me } = await pageFetch(page, "/api/v1/me");
    const patched = await pageFetch(page, `/api/v1/patients/${id}/episode`, { method: "PATCH",
      headers: { "content-type": "application/json", "x-csrf-token": me.csrf_token }, body: JSON.stringify({ acvpu: "C" }) });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const item = page.locator("#alert-list li[data-alert]").filter({ hasText: name }).first();
    await item.waitFor({ timeout: DATA_TIMEOUT });
    const alertId = Number(await item.getAttribute("data-alert"));
    // The queue names the patient with their NHS number, never a name alone.
    await item.getByText(`NHS ${nhs.slice(0, 3)} ${nhs.slice(3, 6)} ${nhs.slice(6)}`).waitFor();

    // Another admin discharges the patient through the API. The API pushes
    // the resolution, and the daemon's patient sync (every 5 s) pushes it
    // again, since it cannot tell an API discharge from a `vigil admin` one.
    await demo.admin(["user", "add", "--username", "bed-manager", "--role", "admin", "--ward", "Demo ward"], "another-password\n");
    const { token } = JSON.parse(await demo.admin(["token", "create", "--username", "bed-manager"]));
    const res = await fetch(`${demo.base}/api/v1/patients/${id}/discharge`, { method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: "{}" });
    const out = await res.json();
    assert.equal(res.status, 200, JSON.stringify(out));
    assert.ok(out.resolved_alerts.includes(alertId), `the discharge resolved it: ${JSON.stringify(out)}`);
    await item.waitFor({ state: "detached", timeout: UI_TIMEOUT });
    const notice = page.locator("#notice");
    await notice.filter({ hasText: `Resolved by bed-manager: ${name}, ` }).waitFor({ timeout: UI_TIMEOUT });

    // The nurse moves on (the notice gives way to the next one); the repeat
    // must not bring the old resolution back.
    await page.evaluate(() => { document.getElementById("notice").textContent = ""; });
    // The sync runs every 5 s; on a loaded 2-core CI machine it has taken
    // longer than 15 s to come round (the passes come first).
    await poll("the sync's repeat of the resolution", async () => resolved.filter((x) => x === alertId).length >= 2,
      { timeout: DATA_TIMEOUT, interval: 100 });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 200))));
    assert.equal(await notice.textContent(), "", "a repeated resolution is not told again");
  });
});

test("new alerts are counted in the tab's title and, when asked for, notified on the desktop while the tab is in the background, without naming the patient", { timeout: TEST_TIMEOUT }, async (t) => {
  await withWard(t, async ({ page, demo }) => {
    // Headless Chromium has no desktop to show a notification on: the
    // page's Notification is replaced by one that records what the page
    // asks it to show (and grants permission when asked), and the tab's
    // visibility is the test's to set.
    await page.addInitScript(() => {
      window.__notes = [];
      let permission = "default";
      window.Notification = class {
        static get permission() { return permission; }
        static requestPermission() { permission = "granted"; return Promise.resolve(permission); }
        constructor(title, options) { window.__notes.push({ title, body: options?.body, tag: options?.tag }); }
        close() {}
      };
      let hidden = false;
      Object.defineProperty(Document.prototype, "visibilityState", { configurable: true, get: () => (hidden ? "hidden" : "visible") });
      Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden });
      window.__setHidden = (h) => { hidden = h; document.dispatchEvent(new Event("visibilitychange")); };
    });
    // The page's live stream passes through the test, which can drop it
    // and refuse its reconnects for a while (a network outage).
    let stream = null;
    let refuse = false;
    await page.routeWebSocket(/\/api\/v1\/stream$/, (ws) => {
      if (refuse) { void ws.close({ code: 1011, reason: "the test's outage" }); return; }
      stream = ws;
      ws.connectToServer();
    });
    const base = await page.goto(demo.base + "/").then(() => page.title());
    assert.equal(base, "Vigil — virtual ward");
    await signIn(page, demo.login);
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();

    // Off until the user asks; asked, the browser's permission is requested.
    const toggle = page.locator("#notify");
    assert.equal(await toggle.textContent(), "Desktop alerts: off");
    assert.equal(await toggle.getAttribute("aria-pressed"), "false");
    await toggle.click();
    await page.getByRole("button", { name: "Desktop alerts: on", pressed: true }).waitFor();

    // In the background, a new alert above low (NEWS2 low-medium, a red
    // score, and up) is notified, naming the ward and the severity only: a
    // notification can show on a locked or shared screen.
    // The simulation's next alert, or after 20 s one raised for a calm
    // patient (it waited past 120 s for the simulation in a CI run).
    const { token } = JSON.parse(await demo.admin(["token", "create", "--username", demo.login.username]));
    const api = (path, init = {}) => fetch(`${demo.base}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...init.headers } });
    await page.evaluate(() => window.__setHidden(true));
    const hiddenAt = Date.now();
    let raised = false;
    const notes = await poll("a desktop notification of a new alert", async () => {
      const n = await page.evaluate(() => window.__notes);
      if (n.length) return n;
      if (!raised && Date.now() - hiddenAt > 20_000) raised = await raiseForACalmPatient(api, demo);
      return null;
    }, { timeout: ALERT_TIMEOUT, interval: 500 });
    const { body: list } = await pageFetch(page, "/api/v1/patients");
    const { body: me } = await pageFetch(page, "/api/v1/me");
    for (const n of notes) {
      const { body: shown } = await pageFetch(page, `/api/v1/alerts/${Number(n.tag.replace("vigil-alert-", ""))}`);
      const ward = me.wards.find((w) => w.id === shown.alert.ward_id).name;
      assert.ok(["low-medium", "medium", "high"].includes(shown.alert.severity), JSON.stringify(shown.alert));
      assert.equal(n.title, `Vigil: new ${shown.alert.severity} alert`);
      assert.equal(n.body, `${ward}: a patient needs review. Open Vigil to see who.`);
      for (const p of list) {
        const text = `${n.title} ${n.body}`;
        assert.ok(!text.includes(p.name) && !text.replace(/\s/g, "").includes(p.nhs_number), `${text} names no patient`);
      }
    }
    t.diagnostic(`notified: ${JSON.stringify(notes)}`);

    // The tab's title counts the open alerts the queue holds.
    const openItems = page.locator("#alert-list li[data-alert]").filter({ has: page.locator(".status", { hasText: /^open$/ }) });
    await poll("the title counting the open alerts", async () => {
      const open = await openItems.count();
      return open > 0 && (await page.title()) === `(${open}) ${base}`;
    }, { timeout: UI_TIMEOUT, interval: 250 });

    // Signed out, the title counts nothing and the switch goes.
    await page.getByRole("button", { name: "Sign out" }).click();
    await poll("the title back to the page's own", async () => (await page.title()) === base, { timeout: UI_TIMEOUT, interval: 250 });
    assert.equal(await toggle.isHidden(), true);

    // A consultant waits for escalations: the title counts those, and one
    // escalated by someone else while the tab is behind is notified.
    const password = "consultant-password-for-the-test";
    await demo.admin(["user", "add", "--username", "dr-notified", "--role", "consultant", "--ward", "Demo ward"], `${password}\n`);
    const escalated = async () => (await (await api("/api/v1/alerts?status=escalated")).json()).length;
    await signIn(page, { username: "dr-notified", password });
    await page.getByText("dr-notified (consultant)").waitFor();
    await page.getByRole("button", { name: "Desktop alerts: on", pressed: true }).waitFor();
    const already = await escalated();
    await poll("the title counting the escalated alerts", async () => (await page.title()) === (already ? `(${already}) ${base}` : base), { timeout: UI_TIMEOUT, interval: 250 });
    // Live: the socket is open and its first reload done. An escalation
    // made before that is in the reload's snapshot, so no event of it is
    // new to the page (it failed so once in a fresh-clone CI).
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();
    await page.evaluate(() => { window.__notes = []; window.__setHidden(true); });
    const target = (await (await api("/api/v1/alerts?status=open")).json())[0];
    assert.ok(target, "an open alert to escalate");
    assert.equal((await api(`/api/v1/alerts/${target.id}/escalate`, { method: "POST" })).status, 200);
    const [note] = await poll("a desktop notification of the escalation", async () => {
      const n = await page.evaluate(() => window.__notes);
      return n.length ? n : null;
    }, { timeout: UI_TIMEOUT, interval: 250 });
    assert.deepEqual(note, { title: `Vigil: ${target.severity} alert escalated for review`, body: "Demo ward: a patient needs review. Open Vigil to see who.", tag: `vigil-alert-${target.id}` });
    await poll("the title counting the escalation", async () => (await page.title()) === `(${already + 1}) ${base}`, { timeout: UI_TIMEOUT, interval: 250 });

    // An escalation made while the page's socket is down has no event to
    // reach the page by: the page's reload when it reconnects brings it,
    // and it is notified then, once (before, a reload took it in silently).
    refuse = true;
    await stream.close({ code: 1011, reason: "the test's outage" });
    await page.getByRole("status").filter({ hasText: "reconnecting" }).waitFor();
    await page.evaluate(() => { window.__notes = []; });
    // Another open alert: the simulation's next, or (so the test does not
    // hang on the scenarios' timing: once it waited past 120 s in a CI run)
    // one raised by a reading entered for a patient with no alert, a
    // respiration rate of 30/min scoring 3 on its own.
    let entered = false;
    const second = await poll("another open alert to escalate", async () => {
      const open = (await (await api("/api/v1/alerts?status=open")).json())[0];
      if (open || entered) return open || null;
      entered = await raiseForACalmPatient(api, demo);
      return null;
    }, { timeout: ALERT_TIMEOUT, interval: 500 });
    assert.equal((await api(`/api/v1/alerts/${second.id}/escalate`, { method: "POST" })).status, 200);
    refuse = false;
    await page.getByRole("status").filter({ hasText: "live" }).waitFor({ timeout: UI_TIMEOUT });
    const told = await poll("a desktop notification of the escalation made while the page was offline", async () => {
      const n = await page.evaluate(() => window.__notes);
      return n.length ? n : null;
    }, { timeout: UI_TIMEOUT, interval: 250 });
    assert.deepEqual(told, [{ title: `Vigil: ${second.severity} alert escalated for review`, body: "Demo ward: a patient needs review. Open Vigil to see who.", tag: `vigil-alert-${second.id}` }]);
    // The next reloads (another outage's) judge it as already told.
    refuse = true;
    await stream.close({ code: 1011, reason: "the test's outage" });
    await page.getByRole("status").filter({ hasText: "reconnecting" }).waitFor();
    refuse = false;
    await page.getByRole("status").filter({ hasText: "live" }).waitFor({ timeout: UI_TIMEOUT });
    assert.equal((await page.evaluate(() => window.__notes)).length, 1, "told once");

    // Switched off, nothing more is notified.
    await page.evaluate(() => window.__setHidden(false));
    await toggle.click();
    await page.getByRole("button", { name: "Desktop alerts: off", pressed: false }).waitFor();
  }, { patients: PATIENTS });
});
