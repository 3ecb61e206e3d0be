import { defineConfig } from "vitest/config";

// The repository's own tests (run by `npm test` after the packages' tests): README commands
// and the packed packages in a project outside the workspace.
export default defineConfig({
  test: {
    include: ["**/*.test.ts"],
    globalSetup: ["./consumer/project.ts"],
    // Each README command is a Node process (a few seconds each on a busy 2-core machine).
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
