import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    passWithNoTests: true, // TEMPORARY until each package has tests
    hookTimeout: 20_000,
  },
});
