/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig, type Plugin } from "vite";

/**
 * The Content-Security-Policy, added to index.html by the production build only: the dev
 * server needs inline scripts and styles (React Refresh, CSS injection) that this policy forbids.
 * The server sends the same policy as a header on every HTML answer (ssechat.api.web, kept equal
 * by a test), which covers a build without this <meta>.
 *
 * - script-src 'self': no inline script, no eval; only the bundle served by ssechat runs.
 * - style-src-attr 'unsafe-inline': KaTeX sizes glyphs with style attributes. The sanitizer
 *   removes any style attribute that could load something (url(), image-set(), @import, escapes).
 * - img-src https: — remote images in answers are never requested by the renderer itself: it
 *   emits a "Load image from <host>" button, and only a click sets an <img>'s src. The CSP has to
 *   allow https: images for that click to work; the guarantee that model output cannot send data
 *   to another host on its own comes from the renderer and the sanitizer, which never emit a
 *   remote src, srcset, poster, background or CSS url(); a click checks the URL again (https
 *   only, never ssechat's own host).
 * - connect-src 'self': the API and its event streams are same-origin.
 * - form-action 'none', object-src 'none', base-uri 'none', frame-src 'none'.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "style-src-attr 'unsafe-inline'",
  "img-src 'self' data: blob: https:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "media-src 'none'",
  "object-src 'none'",
  "frame-src 'none'",
  "worker-src 'none'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

export function contentSecurityPolicy(): Plugin {
  return {
    name: "ssechat-csp",
    apply: "build",
    transformIndexHtml: {
      order: "pre",
      handler: () => [
        {
          tag: "meta",
          attrs: { "http-equiv": "Content-Security-Policy", content: CONTENT_SECURITY_POLICY },
          injectTo: "head-prepend",
        },
      ],
    },
  };
}

export default defineConfig({
  plugins: [react(), contentSecurityPolicy()],
  build: {
    target: "es2022",
    sourcemap: false,
    // No inlined JS; small assets (fonts) may become data: URLs, which the CSP allows.
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 1500,
  },
  server: {
    // `npm run dev` talks to a running `ssechat serve` on the default port.
    proxy: { "/api": { target: "http://127.0.0.1:8000", changeOrigin: false } },
    // The sanitizer's unit tests import the XSS payload lists the end-to-end tests use.
    fs: { allow: [".", "../tests/e2e/fixtures/xss"] },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
