import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Hashed file names under /assets/ (served `Cache-Control: immutable` by serve.py); no inline
// scripts, so the Content-Security-Policy needs no 'unsafe-inline' for scripts.
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", assetsDir: "assets", sourcemap: false, modulePreload: { polyfill: false } },
});
