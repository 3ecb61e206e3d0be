import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  endpointSlice,
  type FakeKubeApiserver,
  pod,
  service,
  startFakeKubeApiserver,
} from "../../../test/fake-kube-apiserver.js";
import {
  type EndpointInit,
  inClusterKubeApi,
  KubernetesDiscovery,
  kubeconfigKubeApi,
  type ResolverUpdate,
  type Timers,
} from "../src/index.js";

/** Timers a test fires by hand: backoff delays are recorded, never waited for. */
function manualTimers() {
  const pending = new Map<number, { fn: () => void; ms: number }>();
  let id = 0;
  const timers: Timers & { delays: number[]; fire(): number } = {
    delays: [],
    setTimeout(fn, ms) {
      pending.set(++id, { fn, ms });
      timers.delays.push(ms);
      return id;
    },
    clearTimeout(h) {
      pending.delete(h as number);
    },
    fire() {
      const due = [...pending.values()];
      pending.clear();
      for (const t of due) t.fn();
      return due.length;
    },
  };
  return timers;
}

/** Reads updates until one satisfies `ok` (error updates are collected). */
async function until(
  it: AsyncIterator<ResolverUpdate>,
  ok: (e: readonly EndpointInit[]) => boolean,
  errors: Error[] = [],
): Promise<readonly EndpointInit[]> {
  for (;;) {
    const r = await it.next();
    if (r.done) throw new Error("resolver ended");
    if (r.value.type === "error") errors.push(r.value.error);
    else if (ok(r.value.endpoints)) return r.value.endpoints;
  }
}
const addresses = (e: readonly EndpointInit[]) => e.map((x) => x.address);

let api: FakeKubeApiserver;
let dir: string;
beforeEach(async () => {
  api = await startFakeKubeApiserver({ tokens: ["token-1"] });
  dir = mkdtempSync(join(tmpdir(), "k8s-"));
  writeFileSync(join(dir, "token"), "token-1\n");
  api.apply(
    service({
      name: "books",
      namespace: "shop",
      selector: { app: "books" },
      ports: [{ name: "http", port: 80, targetPort: 8080, appProtocol: "kubernetes.io/h2c" }],
    }),
  );
  for (const [n, sa] of [
    ["books-1", "books"],
    ["books-2", "books"],
  ] as const)
    api.apply(pod({ name: n, namespace: "shop", labels: { app: "books" }, serviceAccount: sa }));
  api.apply(
    endpointSlice({
      namespace: "shop",
      service: "books",
      ports: [{ name: "http", port: 8080, appProtocol: "kubernetes.io/h2c" }],
      endpoints: [
        { ip: "10.0.0.1", pod: "books-1", zone: "zone-a" },
        { ip: "10.0.0.2", pod: "books-2", zone: "zone-b" },
      ],
    }),
  );
});
afterEach(async () => {
  await api.close();
});

describe("Kubernetes EndpointSlice discovery against a fake API server", () => {
  it("lists, then follows the watch: ready endpoints with identity, zone and appProtocol; one shared watch per service", async () => {
    const timers = manualTimers();
    const discovery = new KubernetesDiscovery({
      api: { server: api.url, ca: api.ca, tokenFile: join(dir, "token") },
      trustDomain: "mesh.local",
      timers,
    });
    const a = discovery
      .resolver({ service: "books", namespace: "shop", port: 80 })
      [Symbol.asyncIterator]();
    const b = discovery
      .resolver({ service: "books", namespace: "shop", port: "http" })
      [Symbol.asyncIterator]();
    const first = await until(a, (e) => e.length === 2);
    expect(first[0]).toEqual({
      address: "10.0.0.1:8080",
      identity: "spiffe://mesh.local/ns/shop/sa/books",
      protocol: "h2",
      zone: "zone-a",
      labels: { pod: "books-1" },
    });
    expect(addresses(await until(b, (e) => e.length === 2))).toEqual([
      "10.0.0.1:8080",
      "10.0.0.2:8080",
    ]);
    expect(discovery.watchCount).toBe(1);
    // slices, service, pods: three watches, not six.
    await api.waitForWatches(3);

    // A rolling update step: books-3 comes up, books-1 terminates.
    api.apply(
      pod({
        name: "books-3",
        namespace: "shop",
        labels: { app: "books" },
        serviceAccount: "books",
      }),
    );
    api.apply(
      endpointSlice({
        namespace: "shop",
        service: "books",
        ports: [{ name: "http", port: 8080, appProtocol: "kubernetes.io/h2c" }],
        endpoints: [
          { ip: "10.0.0.1", pod: "books-1", ready: false, serving: true, terminating: true },
          { ip: "10.0.0.2", pod: "books-2" },
          { ip: "10.0.0.3", pod: "books-3" },
        ],
      }),
    );
    expect(addresses(await until(a, (e) => e.some((x) => x.address === "10.0.0.3:8080")))).toEqual([
      "10.0.0.2:8080",
      "10.0.0.3:8080",
    ]);
    await a.return?.();
    expect(discovery.watchCount).toBe(1);
    await b.return?.();
    expect(discovery.watchCount).toBe(0);
    await api.waitForWatches(0);
    // Lists: slices, service, pods once each; nothing per endpoint.
    expect(api.requests.filter((r) => r.includes("/pods/"))).toEqual([]);
  });

  it("hold(): starts the Service's watches before any resolver, says when the first list is in, and resolvers reuse it", async () => {
    const discovery = new KubernetesDiscovery({
      api: { server: api.url, ca: api.ca, tokenFile: join(dir, "token") },
      trustDomain: "mesh.local",
      timers: manualTimers(),
    });
    const releaseLists = api.holdLists();
    const hold = discovery.hold({ service: "books", namespace: "shop" });
    expect(hold.key).toBe("shop/books");
    // The list goes out now, with nobody resolving yet.
    await api.waitForRequest((r) => r.includes("/endpointslices?") && !r.includes("watch=1"));
    expect(discovery.watchCount).toBe(1);
    expect(hold.synced).toBe(false);
    releaseLists();
    await hold.whenSynced;
    expect(hold.synced).toBe(true);
    // slices, service, pods (the Pods list follows the Service's selector).
    await api.waitForWatches(3);

    // A resolver created now answers from the watches already running: no second list.
    const r = discovery
      .resolver({ service: "books", namespace: "shop", port: "http" })
      [Symbol.asyncIterator]();
    const first = await r.next();
    expect(first.value?.type === "endpoints" && addresses(first.value.endpoints)).toEqual([
      "10.0.0.1:8080",
      "10.0.0.2:8080",
    ]);
    const lists = api.requests.filter((x) => !x.includes("watch=1") && x.includes("/namespaces/"));
    expect(lists.filter((x) => x.includes("/endpointslices?"))).toHaveLength(1);

    // The watches stay while either holds them, and stop when both let go.
    await r.return?.();
    expect(discovery.watchCount).toBe(1);
    expect(api.watches).toBe(3);
    hold.release();
    hold.release();
    expect(discovery.watchCount).toBe(0);
    await api.waitForWatches(0);
  });

  it("survives a dropped watch, a 410 Gone, the API server down and a rotated token, serving the last endpoints throughout", async () => {
    const timers = manualTimers();
    const discovery = new KubernetesDiscovery({
      api: { server: api.url, ca: api.ca, tokenFile: join(dir, "token") },
      timers,
      random: () => 1,
      backoff: { minMs: 500, maxMs: 30_000 },
    });
    const it = discovery
      .resolver({ service: "books", namespace: "shop", port: "http" })
      [Symbol.asyncIterator]();
    await until(it, (e) => e.length === 2);
    await api.waitForWatches(2);
    const slice = (ips: string[]) =>
      api.apply(
        endpointSlice({
          namespace: "shop",
          service: "books",
          ports: [{ name: "http", port: 8080 }],
          endpoints: ips.map((ip) => ({ ip })),
        }),
      );

    // Dropped watch: re-watched after a backoff from the last resourceVersion; nothing missed.
    api.bookmark();
    api.dropWatches();
    await api.waitForWatches(0);
    slice(["10.0.0.1", "10.0.0.2", "10.0.0.4"]);
    const errors: Error[] = [];
    // Fire the retry timers once they are scheduled.
    const fireSoon = setInterval(() => timers.fire(), 5);
    try {
      expect(addresses(await until(it, (e) => e.length === 3, errors))).toContain("10.0.0.4:8080");
      const listsBefore = api.requests.filter(
        (r) => r.includes("endpointslices?") && !r.includes("watch="),
      ).length;
      expect(listsBefore).toBe(1);

      // 410: history compacted while the watch was away → relist.
      await api.waitForWatches(2);
      api.dropWatches();
      await api.waitForWatches(0);
      slice(["10.0.0.8"]); // missed by the watcher, then compacted away
      api.compact();
      slice(["10.0.0.5"]);
      expect(addresses(await until(it, (e) => e.length === 1, errors))).toEqual(["10.0.0.5:8080"]);
      expect(
        api.requests.filter((r) => r.includes("endpointslices?") && !r.includes("watch=")).length,
      ).toBe(2);
    } finally {
      clearInterval(fireSoon);
    }

    // API server down: errors are reported, backoff grows to its cap, no endpoint update.
    await api.waitForWatches(2);
    await api.stop();
    timers.delays.length = 0;
    const seen: ResolverUpdate[] = [];
    for (let i = 0; i < 12; i++) {
      // Each fire retries every watch; each retry fails (connection refused) and reschedules.
      while (timers.fire() === 0) await new Promise((r) => setImmediate(r));
      const r = await it.next();
      seen.push(r.value as ResolverUpdate);
    }
    expect(seen.every((u) => u.type === "error")).toBe(true);
    expect(Math.max(...timers.delays)).toBe(30_000);
    expect(timers.delays.reduce((a, b) => a + b, 0)).toBeGreaterThan(30_000);

    // Back up, with a rotated token: the next request reads the new one from the file.
    api.tokens = new Set(["token-2"]);
    writeFileSync(join(dir, "token"), "token-2\n");
    await api.start();
    slice(["10.0.0.6", "10.0.0.7"]);
    const fire = setInterval(() => timers.fire(), 5);
    try {
      expect(addresses(await until(it, (e) => e.length === 2))).toEqual([
        "10.0.0.6:8080",
        "10.0.0.7:8080",
      ]);
    } finally {
      clearInterval(fire);
    }
    await it.return?.();
  });

  it("backs off instead of spinning when watches keep ending without an event", async () => {
    const timers = manualTimers();
    api.endWatchesAtOnce = true;
    const discovery = new KubernetesDiscovery({
      api: { server: api.url, ca: api.ca, token: "token-1" },
      timers,
    });
    const it = discovery
      .resolver({ service: "books", namespace: "shop", port: "http" })
      [Symbol.asyncIterator]();
    await until(it, (e) => e.length === 2);
    // Each of the two watches (slices, Service) re-opens twice at once, then backs off.
    const errors: Error[] = [];
    while (errors.length < 2) {
      const r = await it.next();
      if (r.value?.type === "error") errors.push(r.value.error);
    }
    expect(errors[0]?.message).toContain("watches end without events");
    expect(timers.delays.length).toBeGreaterThanOrEqual(1);
    const watches = api.requests.filter((r) => r.includes("watch=1")).length;
    expect(watches).toBe(6);
    await it.return?.();
  });

  it("in-cluster config: the API server from the environment, CA and token from the service-account directory", async () => {
    writeFileSync(join(dir, "ca.crt"), api.ca);
    const port = new URL(api.url).port;
    const config = await inClusterKubeApi({
      dir,
      env: { KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: port },
    });
    expect(config).toMatchObject({ server: api.url, tokenFile: join(dir, "token") });
    const it = new KubernetesDiscovery({ api: config })
      .resolver({ service: "books", namespace: "shop", port: "http" })
      [Symbol.asyncIterator]();
    expect(addresses(await until(it, (e) => e.length === 2))).toEqual([
      "10.0.0.1:8080",
      "10.0.0.2:8080",
    ]);
    await it.return?.();
    await expect(inClusterKubeApi({ dir, env: {} })).rejects.toThrow(
      "KUBERNETES_SERVICE_HOST: expected the API server address (in a pod), got undefined",
    );
  });

  it("reads a kubeconfig with @kubernetes/client-node's KubeConfig", async () => {
    const file = join(dir, "kubeconfig");
    api.writeKubeconfig(file, "token-1", "shop");
    const config = await kubeconfigKubeApi({ path: file });
    expect(config.server).toBe(api.url);
    const discovery = new KubernetesDiscovery({ api: config });
    const it = discovery
      .resolver({ service: "books", namespace: "shop", port: "http" })
      [Symbol.asyncIterator]();
    expect(addresses(await until(it, (e) => e.length === 2))).toEqual([
      "10.0.0.1:8080",
      "10.0.0.2:8080",
    ]);
    await it.return?.();
  });
});
