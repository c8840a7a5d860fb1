// A tiny OpenID Connect provider for the browser tests: discovery, its one
// RSA key, an authorization endpoint with no page (it answers at once for
// the user the test chose, or as if they cancelled) and a token endpoint
// that checks what a real provider would (the client's secret, a code used
// once, the same redirect_uri, PKCE S256) before signing an ID token.
// Its end-session endpoint (RP-Initiated Logout) records each sign-out and
// sends the browser back where it was asked to.
// Anything it refuses is kept in `refusals`, for the test to show.

import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { createServer } from "node:http";

const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** The client the tests register with the provider, and its button's label. */
export const CLIENT = { clientId: "vigil-test", clientSecret: "test-secret-not-real" };
export const LABEL = "Test Trust SSO";

/** The demo's environment (`VIGIL_SSO_*`) for `provider`; `extra` on top. */
export const ssoEnv = (provider, extra = {}) => (base) => ({
  VIGIL_SSO_ISSUER: provider.issuer,
  VIGIL_SSO_CLIENT_ID: CLIENT.clientId,
  VIGIL_SSO_CLIENT_SECRET: CLIENT.clientSecret,
  VIGIL_SSO_REDIRECT_URL: `${base}/api/v1/auth/sso/callback`,
  VIGIL_SSO_LABEL: LABEL,
  ...extra,
});

/**
 * Start the provider on 127.0.0.1, a free port. Set `user` to the username
 * (`preferred_username`) the next sign-ins assert, or `cancel` to true for
 * the user to cancel instead.
 */
export async function startOidcProvider({ clientId, clientSecret }) {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const kid = b64url(randomBytes(8));
  const jwk = { ...publicKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" };
  const codes = new Map(); // code → what /authorize was asked, until /token takes it
  const idTokens = new Set(); // every ID token issued, for a sign-out's hint

  const provider = {
    issuer: "",
    user: null,
    cancel: false,
    /** Codes exchanged for an ID token, and the requests refused (with why). */
    issued: 0,
    refusals: [],
    /** Each sign-out at the provider: `{ client_id, post_logout_redirect_uri, hinted }` (`hinted`: an ID token it issued). */
    signedOut: [],
    close: () => new Promise((res) => { server.closeAllConnections(); server.close(() => res()); }),
  };

  const json = (res, status, body) => {
    res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(JSON.stringify(body));
  };
  const refuse = (res, why) => { provider.refusals.push(why); json(res, 400, { error: "invalid_request", error_description: why }); };

  function authorize(url, res) {
    const q = url.searchParams;
    const redirect = q.get("redirect_uri");
    if (!redirect) return refuse(res, "authorize: no redirect_uri");
    for (const [k, want] of [["response_type", "code"], ["client_id", clientId], ["code_challenge_method", "S256"]]) {
      if (q.get(k) !== want) return refuse(res, `authorize: ${k} is ${q.get(k)}, not ${want}`);
    }
    for (const k of ["state", "nonce", "code_challenge", "scope"]) if (!q.get(k)) return refuse(res, `authorize: no ${k}`);
    if (!q.get("scope").split(" ").includes("openid")) return refuse(res, "authorize: scope without openid");
    const back = new URL(redirect);
    if (provider.cancel) {
      back.searchParams.set("error", "access_denied");
    } else {
      const code = b64url(randomBytes(16));
      codes.set(code, { redirect, nonce: q.get("nonce"), challenge: q.get("code_challenge"), user: provider.user });
      back.searchParams.set("code", code);
    }
    back.searchParams.set("state", q.get("state"));
    res.writeHead(302, { location: back.toString() });
    res.end();
  }

  function token(req, body, res) {
    const basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`;
    if (req.headers.authorization !== basic) return refuse(res, "token: wrong client authentication");
    const f = new URLSearchParams(body);
    if (f.get("grant_type") !== "authorization_code") return refuse(res, `token: grant_type ${f.get("grant_type")}`);
    const grant = codes.get(f.get("code"));
    codes.delete(f.get("code")); // once only, whatever happens next
    if (!grant) return refuse(res, "token: unknown or used code");
    if (f.get("redirect_uri") !== grant.redirect) return refuse(res, "token: redirect_uri differs from the authorization's");
    const verifier = f.get("code_verifier") || "";
    if (b64url(createHash("sha256").update(verifier).digest()) !== grant.challenge) return refuse(res, "token: code_verifier does not match");
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid }));
    const claims = b64url(JSON.stringify({ iss: provider.issuer, aud: clientId, sub: `sub-${grant.user}`, exp: now + 300,
      iat: now, nonce: grant.nonce, preferred_username: grant.user }));
    const signature = b64url(sign("sha256", Buffer.from(`${header}.${claims}`), privateKey));
    provider.issued++;
    const idToken = `${header}.${claims}.${signature}`;
    idTokens.add(idToken);
    json(res, 200, { access_token: "x", token_type: "Bearer", expires_in: 300, id_token: idToken });
  }

  function logout(url, res) {
    const q = url.searchParams;
    if (q.get("client_id") !== clientId) return refuse(res, `logout: client_id is ${q.get("client_id")}`);
    const back = q.get("post_logout_redirect_uri");
    if (!back) return refuse(res, "logout: no post_logout_redirect_uri");
    const hint = q.get("id_token_hint");
    if (hint && !idTokens.has(hint)) return refuse(res, "logout: id_token_hint is not a token this provider issued");
    provider.signedOut.push({ client_id: q.get("client_id"), post_logout_redirect_uri: back, hinted: Boolean(hint) });
    res.writeHead(302, { location: back });
    res.end();
  }

  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (c) => { body += c; });
    req.on("end", () => {
      const url = new URL(req.url, provider.issuer);
      if (req.method === "GET" && url.pathname === "/.well-known/openid-configuration") {
        return json(res, 200, { issuer: provider.issuer, authorization_endpoint: `${provider.issuer}/authorize`,
          token_endpoint: `${provider.issuer}/token`, jwks_uri: `${provider.issuer}/jwks`,
          end_session_endpoint: `${provider.issuer}/logout`,
          response_types_supported: ["code"], subject_types_supported: ["public"], id_token_signing_alg_values_supported: ["RS256"] });
      }
      if (req.method === "GET" && url.pathname === "/jwks") return json(res, 200, { keys: [jwk] });
      if (req.method === "GET" && url.pathname === "/authorize") return authorize(url, res);
      if (req.method === "POST" && url.pathname === "/token") return token(req, body, res);
      if (req.method === "GET" && url.pathname === "/logout") return logout(url, res);
      json(res, 404, { error: "not_found" });
    });
  });
  await new Promise((res, rej) => { server.once("error", rej); server.listen(0, "127.0.0.1", res); });
  provider.issuer = `http://127.0.0.1:${server.address().port}`;
  return provider;
}
