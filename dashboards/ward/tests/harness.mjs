// Shared harness for the ward page's browser tests: a real `vigil demo` on
// free ports in a fresh data folder, Debian's Chromium through
// playwright-core, and cleanup of both whatever happens.
//
// Environment:
//   VIGIL_BIN       the vigil binary (default ../../target/debug/vigil,
//                   relative to dashboards/ward)
//   CHROMIUM        the browser (default /usr/bin/chromium)
//   SCREENSHOT_DIR  where screenshots go (default $TMPDIR/vigil-ward-screenshots)
//   DOCS_SCREENSHOT_DIR  also save the documentation's screenshots there

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, mkdir, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const WARD_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const VIGIL_BIN = resolve(WARD_DIR, process.env.VIGIL_BIN || "../../target/debug/vigil");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || join(tmpdir(), "vigil-ward-screenshots");
const DOCS_SCREENSHOT_DIR = process.env.DOCS_SCREENSHOT_DIR ? resolve(process.env.DOCS_SCREENSHOT_DIR) : null;

// Deadlines. Readings arrive every 3–8 s per patient, so waits for data are
// generous; everything else should be quick.
export const READY_TIMEOUT = 60_000;
export const UI_TIMEOUT = 15_000;
export const DATA_TIMEOUT = 45_000;
/**
 * Long enough for two of a demo patient's spot checks (hourly at the demo's
 * 90x, jittered: 20 to 60 s apart), for a wait that may just miss one. Tests
 * that wait this long also enter a reading themselves after 20 s
 * (`enterReadings`): a loaded CI machine once saw none in 90 s.
 */
export const NEXT_SPOT_CHECK = 90_000;
export const TEST_TIMEOUT = 150_000;

// Demo process groups still running, so that an exit we did not plan for
// (a timeout, a crash in the runner) still stops them.
const running = new Set();
process.on("exit", () => {
  for (const pid of running) {
    try { process.kill(-pid, "SIGKILL"); } catch { /* already gone */ }
  }
});

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

export const delay = (ms) => new Promise((r) => setTimeout(r, ms));
// A deadline for a race: unref'd, so a won race does not keep node running.
const timeLimit = (ms) => new Promise((r) => setTimeout(r, ms).unref());

/** Poll `check` every `interval` ms until it returns a truthy value or the deadline passes. */
export async function poll(what, check, { timeout, interval = 100 }) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      if (e.fatal) throw e;
      last = e;
    }
    await delay(interval);
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

/**
 * Start `vigil demo` on free ports in a fresh data folder and wait until it
 * is ready: `/readyz` answers 200 and the demo has printed that it is running
 * (which it does only after the login and the patients exist). `env` adds to
 * the demo's environment: an object, or a function of the demo's base URL
 * (for settings naming it, such as VIGIL_SSO_REDIRECT_URL) returning one.
 */
export async function startDemo(patients, { readyTimeout = READY_TIMEOUT, env = {} } = {}) {
  // Another process can take a port between our probe and vigil's bind:
  // retry a couple of times with new ports when the demo exits early.
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const demo = await launchDemo(patients, readyTimeout, env);
    try {
      demo.login = await demo.ready;
      return demo;
    } catch (e) {
      lastError = e;
      await demo.stop();
      if (!/cannot bind|address in use/i.test(demo.output())) break;
    }
  }
  throw lastError;
}

async function launchDemo(patients, readyTimeout, env) {
  const dataDir = await mkdtemp(join(tmpdir(), "vigil-ward-test-"));
  const http = await freePort();
  const mqtt = await freePort();
  const base = `http://127.0.0.1:${http}`;
  const child = spawn(VIGIL_BIN, [
    "demo", "--patients", String(patients),
    "--http", `127.0.0.1:${http}`, "--mqtt", `127.0.0.1:${mqtt}`,
    "--data-dir", dataDir,
  ], { detached: true, stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1", ...(typeof env === "function" ? env(base) : env) } });
  running.add(child.pid);

  let log = "";
  const keep = (chunk) => { log = (log + chunk.replace(/\x1b\[[0-9;]*m/g, "")).slice(-20_000); };
  child.stdout.setEncoding("utf8").on("data", keep);
  child.stderr.setEncoding("utf8").on("data", keep);
  let exited = null;
  const exit = new Promise((res) => {
    child.on("exit", (code, signal) => { exited = { code, signal }; running.delete(child.pid); res(); });
    child.on("error", (e) => { exited = { error: e.message }; running.delete(child.pid); res(); });
  });

  const ready = (async () => {
    await poll("vigil demo to be ready", async () => {
      if (exited) throw Object.assign(new Error(`vigil demo exited early (${JSON.stringify(exited)})`), { fatal: true });
      if (!log.includes("Vigil demo is running.")) return false;
      const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2_000) });
      return res.status === 200;
    }, { timeout: readyTimeout }).catch((e) => {
      throw new Error(`${e.message}\n--- vigil demo output ---\n${log}`);
    });
    return JSON.parse(await readFile(join(dataDir, "demo-login.json"), "utf8"));
  })();

  const demo = {
    base,
    ready,
    login: null,
    output: () => log,
    /** Run `vigil admin ARGS…` on the demo's database, `input` on stdin; resolves to stdout. */
    admin(args, input = "") {
      return new Promise((res, rej) => {
        const p = spawn(VIGIL_BIN, ["admin", ...args], { stdio: ["pipe", "pipe", "pipe"],
          env: { ...process.env, NO_COLOR: "1", VIGIL_DATABASE_URL: `sqlite://${join(dataDir, "vigil.db")}` } });
        let out = "", err = "";
        p.stdout.setEncoding("utf8").on("data", (c) => { out += c; });
        p.stderr.setEncoding("utf8").on("data", (c) => { err += c; });
        p.on("error", rej);
        p.on("exit", (code) => (code === 0 ? res(out) : rej(new Error(`vigil admin ${args.join(" ")} exited ${code}: ${err}`))));
        // A command that reads no input may have exited before its stdin is
        // closed: the EPIPE then is no failure (the exit code says how it
        // went). Unhandled, it failed a CI run as an uncaught exception.
        p.stdin.on("error", () => {});
        p.stdin.end(input);
      });
    },
    async stop() {
      if (child.pid) {
        // SIGTERM ends the demo at once (its graceful Ctrl-C path takes ~2 s
        // and its data folder is thrown away anyway); then sweep the whole
        // process group in case it, or anything it started, is still there.
        if (!exited) {
          try { process.kill(-child.pid, "SIGTERM"); } catch { /* gone */ }
          await Promise.race([exit, timeLimit(5_000)]);
        }
        try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ }
        await Promise.race([exit, timeLimit(5_000)]);
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  ready.catch(() => {}); // awaited by startDemo; never an unhandled rejection
  return demo;
}

/** Debian's headless Chromium (CHROMIUM), as every test and the bench run it. */
export function launchChromium({ args = [] } = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", ...args],
  });
}

/**
 * Run `body({page, demo, context})` with a fresh demo of `patients` patients
 * (default 3; `env` as for startDemo) and a fresh headless Chromium; on
 * failure save a screenshot and the demo's output, and always stop both.
 */
export async function withWard(t, body, { patients = 3, env } = {}) {
  const demo = await startDemo(patients, { env });
  let browser;
  try {
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1100, height: 520 } });
    const page = await context.newPage();
    page.setDefaultTimeout(UI_TIMEOUT);
    page.setDefaultNavigationTimeout(UI_TIMEOUT);
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    // Vigil serves a strict Content-Security-Policy; anything the page does
    // that the policy blocks (inline style or script, a foreign origin) is
    // reported by Chromium on the console and fails the test.
    const cspViolations = [];
    page.on("console", (m) => {
      if (m.type() === "error" && /Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    try {
      await body({ page, demo, context });
      assert.deepEqual(pageErrors, [], "the page threw uncaught errors");
      assert.deepEqual(cspViolations, [], "the page broke its Content-Security-Policy");
    } catch (e) {
      const shot = await screenshot(page, `FAILED-${t.name}`).catch(() => null);
      if (shot) t.diagnostic(`failure screenshot: ${shot}`);
      t.diagnostic("vigil demo output (tail):");
      for (const line of demo.output().slice(-4_000).split("\n")) t.diagnostic(line);
      throw e;
    }
  } finally {
    await browser?.close().catch(() => {});
    await demo.stop();
  }
}

/**
 * Save a full-page screenshot as SCREENSHOT_DIR/<name>.png. With `docs` and
 * DOCS_SCREENSHOT_DIR set, also save the top of the page (at most 900 px
 * high, to keep the file small) as DOCS_SCREENSHOT_DIR/<docs>.png: that is
 * how docs/screenshots/ is made (docs/development.md). The demo's patients
 * are simulated, so nothing real is ever in a picture.
 */
export async function screenshot(page, name, { docs } = {}) {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const file = join(SCREENSHOT_DIR, `${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: UI_TIMEOUT });
  if (docs && DOCS_SCREENSHOT_DIR) {
    await mkdir(DOCS_SCREENSHOT_DIR, { recursive: true });
    const { width, height } = await page.evaluate(() => ({ width: document.documentElement.clientWidth, height: document.documentElement.scrollHeight }));
    await page.screenshot({ path: join(DOCS_SCREENSHOT_DIR, `${docs}.png`), fullPage: true, timeout: UI_TIMEOUT,
      clip: { x: 0, y: 0, width, height: Math.min(900, height) } });
  }
  return file;
}

export async function signIn(page, { username, password }) {
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** The text of every reading cell, keyed by patient and code. */
export function readingCells(page) {
  return page.locator("#patients tbody td[data-code]").evaluateAll((cells) =>
    Object.fromEntries(cells.map((c) => [`${c.closest("tr").dataset.patient}:${c.dataset.code}`, c.textContent])));
}

// axe-core (pinned in package.json) checks what the page shows against
// WCAG 2.1 A/AA and axe's best practices. Injected through the DevTools
// protocol (page.evaluate), which the page's CSP does not govern, so the
// page's own policy stays as strict as in production.
const AXE_SOURCE = await readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * Run axe on the page as shown now and fail on any serious or critical
 * violation, naming each rule, its help text and the offending elements.
 * Returns the violations of lower impact, for the test to report.
 */
export async function assertAccessible(page, t, what) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
    resultTypes: ["violations"],
  }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const minor = result.violations.filter((v) => !bad.includes(v));
  const describe = (v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.length}×: ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")})`;
  for (const v of minor) t.diagnostic(`axe on ${what}, not failing: ${describe(v)}`);
  assert.deepEqual(bad.map(describe), [], `axe: serious or critical accessibility violations on ${what}`);
  t.diagnostic(`axe on ${what}: ${result.passes?.length ?? "?"} rules passed, no serious or critical violations`);
  return minor;
}

/** A valid NHS number (modulus 11) in the 999 test range, not one the demo uses. */
export function testNhsNumber(seed) {
  for (let n = seed; ; n++) {
    const d = `999${String(n).padStart(6, "0")}`.split("").map(Number);
    const check = 11 - (d.reduce((a, x, i) => a + x * (10 - i), 0) % 11);
    if (check === 10) continue;
    return `${d.join("")}${check === 11 ? 0 : check}`;
  }
}

/**
 * Enter readings for a patient as a nurse would (`POST …/observations`,
 * with an API token of the demo's login), for tests that would otherwise
 * wait on the simulation's timing. Fails unless they are stored.
 */
export async function enterReadings(demo, patientId, obs) {
  const { token } = JSON.parse(await demo.admin(["token", "create", "--username", demo.login.username]));
  const r = await fetch(`${demo.base}/api/v1/patients/${patientId}/observations`, { method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ obs }) });
  assert.equal(r.status, 201, await r.text());
}
