// Builds the ward page into dist/ with fixed file names (index.html, app.js,
// app.css), which crates/vigil-web/src/dashboard.rs embeds in the binary.
// dist/ is committed so `cargo build` needs no npm; scripts/browser-test
// rebuilds into a temporary folder and fails if dist/ is out of date.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  // The built page is served under a strict CSP (docs/security.md): no inline
  // scripts or styles, so nothing may be inlined into index.html.
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    modulePreload: false,
    sourcemap: false,
    reportCompressedSize: false,
    rollupOptions: {
      output: {
        entryFileNames: "app.js",
        chunkFileNames: "app-[name].js",
        assetFileNames: (info) => (info.names?.some((n) => n.endsWith(".css")) ? "app.css" : "[name][extname]"),
      },
    },
  },
});
