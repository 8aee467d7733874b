import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

/** The rendering benchmark page (bench/), built apart from the app into dist-bench/.
 * Paths are relative to web/, where `npm run build:bench` runs. */
export default defineConfig({
  root: "bench",
  base: "./",
  plugins: [react()],
  build: {
    outDir: "../dist-bench",
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 2000,
  },
});
