// Fails when the committed build (dist/) does not match the sources: builds
// into a temporary folder with the pinned tools and compares file by file.
// The vigil binary embeds dist/, so a stale dist/ would ship an old page.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ward = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = mkdtempSync(join(tmpdir(), "vigil-ward-dist-"));
try {
  execFileSync("npx", ["tsc", "--noEmit", "-p", "."], { cwd: ward, stdio: "inherit" });
  execFileSync("npx", ["vite", "build", "--outDir", out, "--emptyOutDir", "--logLevel", "warn"], { cwd: ward, stdio: "inherit" });
  const committed = readdirSync(join(ward, "dist")).sort();
  const fresh = readdirSync(out).sort();
  const differ = [...new Set([...committed, ...fresh])].filter((f) => {
    try { return !readFileSync(join(ward, "dist", f)).equals(readFileSync(join(out, f))); } catch { return true; }
  });
  if (differ.length) {
    console.error(`dashboards/ward/dist is out of date (${differ.join(", ")} differ from a fresh build): run npm run build in dashboards/ward and commit dist/`);
    process.exit(1);
  }
  console.log(`dashboards/ward/dist matches the sources (${fresh.join(", ")})`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
