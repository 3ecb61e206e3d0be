// Copies the dashboard page (plain HTML + JS, no build step) to dist/dashboard/ (run by tsup
// after the build), where `mesh-proxy dashboard` serves it from.
import { cp } from "node:fs/promises";

await cp(
  new URL("../src/dashboard/static/", import.meta.url),
  new URL("../dist/dashboard/", import.meta.url),
  {
    recursive: true,
  },
);
