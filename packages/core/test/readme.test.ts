import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

// The README's example, run as written: a user copying it gets the output its comments show.
describe("README example", () => {
  it("runs and prints what its comments say", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.indexOf("## Example"));
    const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    expect(code).toBeDefined();
    const file = new URL("../readme-example.ts", import.meta.url);
    writeFileSync(file, code as string);
    try {
      const out = execFileSync(process.execPath, [file.pathname], { encoding: "utf8" });
      expect(out.split("\n").filter(Boolean)).toEqual([
        "true [ 'accept', 'text/plain' ]",
        "[ 'a=1', 'b=2' ]",
        "failure success",
        "true",
        "RangeError: budget.limit: expected an integer in 0..100, got 1.5",
      ]);
    } finally {
      rmSync(file, { force: true });
    }
  });
});
