// Fetch from the API with the session cookie and, on writes, the CSRF token.
import type { EpisodeSettings } from "./types";

let csrf: string | null = null;
let onSignedOut: () => void = () => {};

export function setCsrf(token: string | null): void { csrf = token; }
export function csrfToken(): string | null { return csrf; }
/** Called when a request answers 401: the session is gone. */
export function whenSignedOut(f: () => void): void { onSignedOut = f; }

export class ApiError extends Error {
  constructor(message: string, readonly status: number) { super(message); }
}

/** The answer to a request that succeeded; any other is thrown as an `ApiError` with the API's message. */
async function request(path: string, opts: RequestInit): Promise<Response> {
  const write = opts.method !== undefined && opts.method !== "GET";
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (write && csrf) headers["x-csrf-token"] = csrf;
  const res = await fetch(path, { credentials: "same-origin", ...opts,
    headers: { ...headers, ...(opts.headers as Record<string, string> | undefined) } });
  if (res.status === 401) { onSignedOut(); throw new ApiError("signed out", 401); }
  if (!res.ok) {
    let msg = `${res.status}`;
    try { msg = (await res.json()).error.message || msg; } catch { /* not our error shape */ }
    throw new ApiError(msg, res.status);
  }
  return res;
}

export async function api<T>(path: string, opts: RequestInit = {}): Promise<T> {
  return (await request(path, opts)).json() as Promise<T>;
}

/** A GET answered with text (`GET …/summary`). */
export async function apiText(path: string): Promise<string> {
  return (await request(path, {})).text();
}

/** Record a change to a patient's open episode (`PATCH …/episode`): the settings after it. */
export function recordEpisode(patient: number, change: Record<string, unknown>): Promise<EpisodeSettings> {
  return api<EpisodeSettings>(`/api/v1/patients/${patient}/episode`, { method: "PATCH", body: JSON.stringify(change) });
}
