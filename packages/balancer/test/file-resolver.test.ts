import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { Balancer, fileResolver, parseEndpointsFile, type ResolverUpdate } from "../src/index.js";
import { startServer } from "./helpers.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

async function take(it: AsyncIterator<ResolverUpdate>): Promise<ResolverUpdate> {
  const r = await it.next();
  if (r.done) throw new Error("resolver ended");
  return r.value;
}

function dir(): string {
  return mkdtempSync(join(tmpdir(), "balancer-file-"));
}

describe("fileResolver with real file changes", () => {
  it("reads YAML, follows edits, reports a bad file and keeps going after a fix", async () => {
    const file = join(dir(), "endpoints.yaml");
    writeFileSync(
      file,
      "endpoints:\n  - address: 10.0.0.1:80\n    weight: 2\n    zone: a\n  - 10.0.0.2:80\n",
    );
    const it = fileResolver(file, { debounceMs: 5 })[Symbol.asyncIterator]();
    cleanup.push(() => it.return?.());
    expect(await take(it)).toEqual({
      type: "endpoints",
      endpoints: [{ address: "10.0.0.1:80", weight: 2, zone: "a" }, { address: "10.0.0.2:80" }],
    });
    writeFileSync(file, "endpoints:\n  - address: 10.0.0.3:80\n    weight: -1\n");
    const bad = await take(it);
    expect(bad.type).toBe("error");
    expect(bad.type === "error" && bad.error.message).toBe(
      `file:${file}: endpoints[0].weight: expected a number in 0 (exclusive)..1000000, got -1`,
    );
    expect(bad.type === "error" && (bad.error as { code?: string }).code).toBe(
      "MESH_BALANCER_RESOLVER",
    );
    // Atomic replace (write + rename), as config tools do.
    writeFileSync(`${file}.tmp`, "- 10.0.0.4:80\n");
    renameSync(`${file}.tmp`, file);
    expect(await take(it)).toEqual({ type: "endpoints", endpoints: [{ address: "10.0.0.4:80" }] });
  });

  it("a Balancer keeps serving its last good set while the file is broken", async () => {
    const [a, c] = await Promise.all([startServer(), startServer()]);
    cleanup.push(
      () => a.close(),
      () => c.close(),
    );
    const file = join(dir(), "endpoints.json");
    writeFileSync(file, JSON.stringify([a.address]));
    const errors: string[] = [];
    let onError: () => void = () => {};
    const b = new Balancer({
      endpoints: fileResolver(file, { debounceMs: 5 }),
      onResolverError: (e) => {
        errors.push(e.message);
        onError();
      },
    });
    cleanup.push(() => b.destroy());
    const first = await request("http://svc/", { dispatcher: b });
    expect(await first.body.text()).toBe(String(a.port));
    const reported = new Promise<void>((r) => {
      onError = r;
    });
    writeFileSync(file, "{ not json");
    await reported;
    expect(errors[0]).toMatch(/not valid JSON/);
    expect(b.snapshot().endpoints.map((e) => e.address)).toEqual([a.address]);
    const still = await request("http://svc/", { dispatcher: b });
    expect(await still.body.text()).toBe(String(a.port));
    const removed = new Promise<void>((resolve) => {
      const poll = () =>
        b.snapshot().endpoints.length === 1 && b.snapshot().endpoints[0]!.address === c.address
          ? resolve()
          : setTimeout(poll, 5);
      poll();
    });
    writeFileSync(file, JSON.stringify({ endpoints: [{ address: c.address }] }));
    await removed;
    const moved = await request("http://svc/", { dispatcher: b });
    expect(await moved.body.text()).toBe(String(c.port));
  });

  it("reports a missing file instead of failing", async () => {
    const it = fileResolver(join(dir(), "nope.yaml"), { watch: false })[Symbol.asyncIterator]();
    cleanup.push(() => it.return?.());
    const u = await take(it);
    expect(u.type === "error" && u.error.message).toMatch(/nope\.yaml: cannot read: ENOENT/);
  });

  it("parseEndpointsFile names the bad field", () => {
    expect(() => parseEndpointsFile("endpoints: 3", "x.yaml")).toThrow(
      "file:x.yaml: endpoints: expected a list of endpoints, got 3",
    );
    expect(() => parseEndpointsFile('[{"address":"10.0.0.1"}]', "x.json")).toThrow(
      'endpoints[0].address: expected an address like "10.0.0.1:8080", "[::1]:8080" or "https://host:8443", got "10.0.0.1"',
    );
    expect(() => parseEndpointsFile("- address: 10.0.0.1:80\n  protocol: h3\n", "x.yml")).toThrow(
      'endpoints[0].protocol: expected "http1" or "h2", got "h3"',
    );
  });
});
