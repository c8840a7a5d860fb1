// The sign-in form's ways in (GET /api/v1/auth/methods, docs/security.md):
// a trust's single sign-on as a link styled as a button (a plain navigation
// to the provider and back), and the username and password unless the
// server has turned passwords off. A single sign-on that did not complete
// comes back as /?sso_error=CODE: said in the form's error area, and taken
// out of the address bar so a reload or a bookmark does not say it again.
import { $, el } from "./format";
import type { AuthMethods as Methods } from "./types";

const form = $("signin-form") as HTMLFormElement;
const ssoBox = $("signin-sso");
const error = $("signin-error");

/** The server's answer, asked when the sign-in form shows (and at load). */
let asked: Promise<Methods> | null = null;

async function askMethods(): Promise<Methods> {
  try {
    const res = await fetch("/api/v1/auth/methods", { signal: AbortSignal.timeout(10_000) });
    if (res.ok) return await res.json() as Methods;
  } catch { /* the password form, as before */ }
  return { password: true, sso: null };
}

/** How one signs in here, as the server said when the sign-in form last showed. */
export function signInMethods(): Promise<Methods> {
  return asked ??= askMethods();
}

/** Whether passwords sign in here (and so can be changed): false with `sso.password_login = false`. */
export async function passwordsOn(): Promise<boolean> {
  return (await signInMethods()).password;
}

/** The code this page was sent back with, until it has been said. */
let failure = takeSsoError();

function takeSsoError(): string | null {
  const url = new URL(location.href);
  const code = url.searchParams.get("sso_error");
  if (code === null) return null;
  url.searchParams.delete("sso_error");
  history.replaceState(history.state, "", url.pathname + url.search + url.hash);
  return code;
}

/** The code in plain words; `via` names the provider, `password` whether that way in is offered. */
function ssoMessage(code: string, via: string, password: boolean): string {
  switch (code) {
    case "cancelled": return `Signing in with ${via} was cancelled: you are not signed in. Start again when you are ready.`;
    case "expired": return `Signing in with ${via} took too long, or was started in another tab. Start again.`;
    case "provider": return `Vigil could not reach ${via}. Try again in a few minutes${password ? ", or sign in with your username and password" : ""}; if it keeps happening, tell IT.`;
    case "refused": return `Vigil could not trust the answer from ${via}, so you are not signed in. Tell IT.`;
    case "no-account": return `You signed in with ${via}, but no Vigil account has your username, or it is disabled. Ask a ward admin.`;
    default: return "Single sign-on did not complete.";
  }
}

/**
 * Ask the server how to sign in, and show that: the single sign-on link,
 * and the password form unless it is off. If the server cannot say, the
 * password form shows, as it always has.
 */
export async function showSignInMethods(): Promise<void> {
  const m = await (asked = askMethods());
  ssoBox.replaceChildren();
  if (m.sso) {
    const a = el("a", "button", `Sign in with ${m.sso.label}`);
    const login = m.sso.login_url;
    a.href = login;
    // Back to this page's place (a patient opened from a link) once signed
    // in: the provider's round trip would otherwise lose it.
    a.addEventListener("click", () => {
      a.href = location.hash.startsWith("#/") ? `${login}?return=${encodeURIComponent(location.hash)}` : login;
    });
    ssoBox.append(a);
  }
  ssoBox.hidden = !m.sso;
  // Nobody could sign in with neither; the server refuses that configuration.
  form.hidden = !m.password && m.sso !== null;
  if (failure !== null) {
    error.textContent = ssoMessage(failure, m.sso?.label || "single sign-on", !form.hidden);
    failure = null;
  }
}
