// Single sign-on on the ward page, in a real Chromium, against a real
// `vigil demo` configured (VIGIL_SSO_*) for a tiny OpenID Connect provider
// that this test runs (oidc-provider.mjs) and answers for whoever it chooses.

import { test } from "node:test";
import assert from "node:assert/strict";
import { TEST_TIMEOUT, assertAccessible, screenshot, withWard } from "./harness.mjs";
import { CLIENT, LABEL, ssoEnv, startOidcProvider } from "./oidc-provider.mjs";


/** Run `body` with a provider and a ward set up for it; the provider's refusals fail the test. */
async function withSso(t, body, extra) {
  const provider = await startOidcProvider(CLIENT);
  try {
    await withWard(t, async (ward) => {
      await body({ ...ward, provider });
      assert.deepEqual(provider.refusals, [], "the provider refused nothing Vigil sent");
    }, { patients: 1, env: ssoEnv(provider, extra) });
  } finally {
    await provider.close();
  }
}

test("single sign-on signs a known user in, and says why it did not for an unknown user or a cancel", { timeout: TEST_TIMEOUT }, async (t) => {
  await withSso(t, async ({ page, demo, provider }) => {
    await page.goto(demo.base + "/");
    const sso = page.getByRole("link", { name: `Sign in with ${LABEL}` });
    await sso.waitFor();
    assert.equal(await page.getByLabel("Username").isVisible(), true, "the password form is offered too");
    await assertAccessible(page, t, "the sign-in screen with single sign-on");

    // The provider vouches for the demo's admin: the ward shows, as after a password.
    provider.user = demo.login.username;
    await sso.click();
    await page.getByRole("table", { name: /^Latest readings/ }).waitFor({ state: "visible" });
    await page.getByRole("status").filter({ hasText: "live" }).waitFor();
    await page.getByText(`${demo.login.username} (admin)`).waitFor();
    assert.equal(new URL(page.url()).search, "", "back on the dashboard with nothing in the query");
    assert.equal(provider.issued, 1);
    const [patient] = await page.evaluate(async () => (await fetch("/api/v1/patients")).json());

    await page.getByRole("button", { name: "Sign out" }).click();
    await sso.waitFor();

    // A link to a patient's page (as a paging message carries), signed in
    // through the provider from there: that patient's page opens.
    await page.goto(`${demo.base}/#/patients/${patient.id}`);
    await sso.click();
    await page.getByRole("heading", { level: 2, name: patient.name }).waitFor();
    assert.equal(new URL(page.url()).hash, `#/patients/${patient.id}`);
    assert.equal(provider.issued, 2);
    await page.getByRole("button", { name: "Sign out" }).click();
    await sso.waitFor();

    // Signed in at the provider, but Vigil has no such account.
    provider.user = "nobody";
    await sso.click();
    await page.getByRole("alert").filter({ hasText: "no Vigil account has your username" }).waitFor();
    assert.equal(await page.getByRole("table", { name: /^Latest readings/ }).isVisible(), false, "not signed in");
    assert.equal(new URL(page.url()).search, "", "sso_error is taken out of the address bar");
    assert.equal(provider.issued, 3);
    await screenshot(page, "sso-no-account");

    // Cancelled at the provider.
    provider.cancel = true;
    await sso.click();
    await page.getByRole("alert").filter({ hasText: `Signing in with ${LABEL} was cancelled` }).waitFor();
    assert.equal(await page.getByRole("table", { name: /^Latest readings/ }).isVisible(), false, "not signed in");
    assert.equal(new URL(page.url()).search, "");
    assert.equal(await page.getByLabel("Username").isVisible(), true, "the password form stays");
  });
});

test("with passwords turned off, the sign-in page offers only single sign-on, and no password to change once signed in", { timeout: TEST_TIMEOUT }, async (t) => {
  await withSso(t, async ({ page, demo, provider }) => {
    const methods = page.waitForResponse((r) => r.url().endsWith("/api/v1/auth/methods"));
    await page.goto(demo.base + "/");
    assert.deepEqual(await (await methods).json(),
      { password: false, sso: { label: LABEL, login_url: "/api/v1/auth/sso/login" } });
    await page.getByRole("link", { name: `Sign in with ${LABEL}` }).waitFor();
    await page.locator("#signin-form").waitFor({ state: "hidden" });
    assert.equal(await page.getByLabel("Username").isVisible(), false);
    assert.equal(await page.getByLabel("Password").isVisible(), false);
    assert.equal(await page.getByRole("button", { name: "Sign in" }).isVisible(), false);
    await screenshot(page, "sso-only");

    // Signed in through the provider: the header has no Change password
    // (the server would refuse it: the password is the provider's).
    provider.user = demo.login.username;
    await page.getByRole("link", { name: `Sign in with ${LABEL}` }).click();
    await page.getByText(`${demo.login.username} (admin)`).waitFor();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
    assert.equal(await page.getByRole("button", { name: "Change password" }).isVisible(), false);
  }, { VIGIL_SSO_PASSWORD_LOGIN: "false" });
});

test("on a shared computer, signing out after single sign-on signs out at the provider too, and a password sign-in does not", { timeout: TEST_TIMEOUT }, async (t) => {
  await withSso(t, async ({ page, demo, provider }) => {
    await page.goto(demo.base + "/");
    const sso = page.getByRole("link", { name: `Sign in with ${LABEL}` });
    provider.user = demo.login.username;
    await sso.click();
    await page.getByText(`${demo.login.username} (admin)`).waitFor();

    // Out of Vigil, on to the provider's sign-out, and back to the sign-in page.
    const atProvider = page.waitForRequest((r) => r.url().startsWith(`${provider.issuer}/logout`));
    await page.getByRole("button", { name: "Sign out" }).click();
    await atProvider;
    await sso.waitFor();
    assert.equal(new URL(page.url()).origin, new URL(demo.base).origin, "back on Vigil");
    assert.deepEqual(provider.signedOut,
      [{ client_id: CLIENT.clientId, post_logout_redirect_uri: `${demo.base}/`, hinted: true }]);
    const me = await page.evaluate(async () => (await fetch("/api/v1/me")).status);
    assert.equal(me, 401, "Vigil's session ended");

    // A password sign-in on the same Vigil signs out of Vigil only.
    await page.getByLabel("Username").fill(demo.login.username);
    await page.getByLabel("Password").fill(demo.login.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText(`${demo.login.username} (admin)`).waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await sso.waitFor();
    assert.equal(provider.signedOut.length, 1, "no second visit to the provider");
  }, { VIGIL_SSO_SIGN_OUT_PROVIDER: "true", VIGIL_SSO_PROMPT: "login" });
});
