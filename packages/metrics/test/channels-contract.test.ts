import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { allMeshChannels, meshChannels } from "@mesh/core";
import { describe, expect, it } from "vitest";
import { COUNTED_MESH_CHANNELS, UNCOUNTED_MESH_CHANNELS } from "../src/index.js";

// The publishers are read as source, not imported: the libraries never import each other.
const PACKAGES = join(import.meta.dirname, "..", "..");

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (name.endsWith(".ts")) out.push(path);
  }
  return out;
}

const publisherSources = readdirSync(PACKAGES)
  .filter((p) => p !== "core")
  .flatMap((p) => {
    try {
      return sources(join(PACKAGES, p, "src")).map((f) => [f, readFileSync(f, "utf8")] as const);
    } catch {
      return [];
    }
  });

describe("the mesh:* channel contract", () => {
  it("every channel is counted by @mesh/metrics or listed as deliberately not", () => {
    const accounted = [...COUNTED_MESH_CHANNELS, ...Object.keys(UNCOUNTED_MESH_CHANNELS)];
    expect([...accounted].sort()).toEqual([...allMeshChannels].sort());
    expect(new Set(accounted).size).toBe(accounted.length);
  });

  it("every channel is published by some package, through @mesh/core's names", () => {
    for (const [group, events] of Object.entries(meshChannels)) {
      for (const key of Object.keys(events)) {
        const used = publisherSources.some(
          ([file, text]) =>
            !file.includes(`${join("metrics", "src")}`) &&
            (text.includes(`meshChannels.${group}.${key}`) ||
              new RegExp(`meshChannels\\.${group};|= meshChannels\\.${group}\\b`).test(text)),
        );
        expect(used, `meshChannels.${group}.${key} is published nowhere`).toBe(true);
      }
    }
  });

  it("no package spells a channel name itself", () => {
    for (const [file, text] of publisherSources) {
      // metrics' handler table is keyed by name; its keys are type-checked against core's;
      // doc comments name channels in backticks, which this does not match.
      if (file.endsWith(join("mesh", "subscribe.ts"))) continue;
      const literal = /["']mesh:[a-z-]+:[a-z-]+["']/.exec(text);
      expect(literal?.[0], file).toBeUndefined();
    }
  });
});
