import { mkdtempSync } from "node:fs";
import type http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  endpointSlice,
  type FakeKubeApiserver,
  service,
  startFakeKubeApiserver,
} from "../../../test/fake-kube-apiserver.js";
import {
  eventually,
  h1App,
  type Listening,
  launch,
  type ProxyProcess,
  startProxy,
  tempDir,
  writeConfig,
} from "./helpers.js";

// A real proxy process whose only discovery is `discovery.kubernetes`, against the fake
// Kubernetes API server (no cluster here): it balances across the ready endpoints of the
// Service's EndpointSlices and, through a rolling update, drains terminating pods with
// zero failed requests.
describe("discovery.kubernetes in a running proxy", () => {
  let api: FakeKubeApiserver;
  let proxy: ProxyProcess;
  const apps = new Map<string, Listening<http.Server>>();
  let release: () => void = () => undefined;
  const held = new Promise<void>((r) => {
    release = r;
  });
  const agent = new Agent({ connections: 16 });
  let heldArrived = 0;

  const app = async (name: string) => {
    const a = await h1App((req, res) => {
      req.resume();
      const answer = () => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end(name);
      };
      if (req.url === "/held") {
        heldArrived++;
        void held.then(answer);
      } else answer();
    });
    apps.set(name, a);
    return a;
  };
  /** One EndpointSlice per pod: every app listens on 127.0.0.1, each on its own port. */
  const slice = (
    name: string,
    conditions: { ready: boolean; serving?: boolean; terminating?: boolean },
  ) => {
    const port = Number(apps.get(name)!.address.split(":")[1]);
    return api.apply(
      endpointSlice({
        namespace: "shop",
        service: "books",
        name: `books-${name}`,
        ports: [{ name: "http", port, appProtocol: "http" }],
        endpoints: [{ ip: "127.0.0.1", pod: name, ...conditions }],
      }),
    );
  };
  const endpoints = async () => {
    const res = await request(`http://${proxy.addresses.admin}/endpoints`);
    const body = (await res.body.json()) as {
      backends: { endpoints: { address: string; state: string; pending: number }[] }[];
    }[];
    return body.flatMap((s) => s.backends.flatMap((b) => b.endpoints));
  };
  const send = async (path = "/") => {
    const res = await request(`http://${proxy.addresses.outbound}${path}`, {
      headers: { host: "books" },
      dispatcher: agent,
    });
    return { status: res.statusCode, body: await res.body.text() };
  };

  beforeAll(async () => {
    api = await startFakeKubeApiserver({ tokens: ["proxy-token"] });
    const dir = mkdtempSync(join(tmpdir(), "proxy-k8s-"));
    api.writeKubeconfig(join(dir, "kubeconfig"), "proxy-token", "shop");
    api.apply(
      service({
        name: "books",
        namespace: "shop",
        selector: { app: "books" },
        ports: [{ name: "http", port: 80, targetPort: "http", appProtocol: "http" }],
      }),
    );
    for (const name of ["v1-a", "v1-b", "v1-c"]) await app(name);
    slice("v1-a", { ready: true });
    slice("v1-b", { ready: true });
    slice("v1-c", { ready: false, serving: false }); // not ready yet: never gets requests
    proxy = await launch(
      {
        outbound: {
          listen: "127.0.0.1:0",
          services: [
            {
              name: "books",
              discovery: { kubernetes: { service: "books", namespace: "shop", port: 80 } },
            },
          ],
        },
      },
      { KUBECONFIG: join(dir, "kubeconfig") },
    );
  });
  afterAll(async () => {
    release();
    await proxy?.stop();
    await agent.close();
    await Promise.all([...apps.values()].map((a) => a.close()));
    await api?.close();
  });

  test("balances across the ready endpoints only, from one watch of the Service's slices", async () => {
    // Concurrent requests: P2C's cost counts requests in flight, so both ready pods serve.
    const seen = new Set<string>();
    for (let i = 0; i < 5 && seen.size < 2; i++) {
      for (const r of await Promise.all(Array.from({ length: 10 }, () => send()))) {
        expect(r.status).toBe(200);
        seen.add(r.body);
      }
    }
    expect([...seen].sort()).toEqual(["v1-a", "v1-b"]);
    for (let i = 0; i < 20; i++) expect((await send()).body).not.toBe("v1-c");
    const watches = api.requests.filter(
      (r) => r.includes("/endpointslices?") && r.includes("watch=1"),
    );
    expect(watches).toHaveLength(1);
  });

  test("a rolling update (new pods ready, old ones terminating, then gone): zero failed requests, in-flight requests on terminating pods finish", async () => {
    let failures = 0;
    let ok = 0;
    let running = true;
    const load = Array.from({ length: 8 }, async () => {
      while (running) {
        const r = await send().catch((err: Error) => ({ status: 0, body: err.message }));
        if (r.status === 200) ok++;
        else failures++;
      }
    });
    try {
      // A request in flight on each old pod, held until after its pod has left the set.
      const inflight = [send("/held"), send("/held"), send("/held"), send("/held")];
      // Every held request has reached an old pod before the rollout starts.
      await eventually(() => heldArrived === inflight.length);

      for (const [oldPod, newPod] of [
        ["v1-a", "v2-a"],
        ["v1-b", "v2-b"],
      ] as const) {
        await app(newPod);
        slice(newPod, { ready: true });
        const newAddress = apps.get(newPod)!.address;
        await eventually(async () =>
          (await endpoints()).some((e) => e.address === newAddress && e.state === "ready"),
        );
        // The old pod is terminating: still serving, no longer ready.
        slice(oldPod, { ready: false, serving: true, terminating: true });
        const oldAddress = apps.get(oldPod)!.address;
        await eventually(async () =>
          (await endpoints()).every((e) => e.address !== oldAddress || e.state !== "ready"),
        );
        const before = ok;
        await eventually(() => ok > before + 20);
        // Kubelet kills it after the grace period; its slice is gone.
        api.remove("EndpointSlice", "shop", `books-${oldPod}`);
      }
      api.remove("EndpointSlice", "shop", "books-v1-c");
      release();
      const held = await Promise.all(inflight);
      expect(held.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      expect(held.every((r) => r.body.startsWith("v1-"))).toBe(true);
      await eventually(async () =>
        (await endpoints()).every((e) => e.address !== apps.get("v1-a")!.address),
      );
      for (const name of ["v1-a", "v1-b", "v1-c"]) await apps.get(name)!.close();
      const before = ok;
      await eventually(() => ok > before + 50);
    } finally {
      // Also when an assertion above fails: a load loop left running against a stopped
      // proxy spins on instant rejections and starves the worker's event loop forever.
      running = false;
      await Promise.all(load);
    }
    expect(failures).toBe(0);
    expect(ok).toBeGreaterThan(100);
    const now = new Set<string>();
    for (let i = 0; i < 5 && now.size < 2; i++)
      for (const r of await Promise.all(Array.from({ length: 10 }, () => send()))) now.add(r.body);
    expect([...now].sort()).toEqual(["v2-a", "v2-b"]);
    const set = (await endpoints()).map((e) => `${e.address} ${e.state}`).sort();
    expect(set).toEqual(["v2-a", "v2-b"].map((n) => `${apps.get(n)!.address} ready`).sort());
  });
});

// The Service's watches start with the config, not at the first request, and /ready waits
// for their first list (bounded by kubernetes.readyTimeout), as Linkerd's proxy resolves
// before it serves. The fake API server holds its list answers so the order is observable.
describe("discovery.kubernetes: watches start with the config, /ready waits for the first list", () => {
  let api: FakeKubeApiserver;
  let app: Listening<http.Server>;
  let dir: string;
  const proxies: ProxyProcess[] = [];
  const releases: (() => void)[] = [];
  const isSliceList = (r: string) => r.includes("/endpointslices?") && !r.includes("watch=1");
  const readyStatus = async (p: ProxyProcess) =>
    (await request(`http://${p.addresses.admin}/ready`)).statusCode;

  beforeAll(async () => {
    api = await startFakeKubeApiserver({ tokens: ["proxy-token"] });
    dir = tempDir();
    api.writeKubeconfig(join(dir, "kubeconfig"), "proxy-token", "shop");
    app = await h1App((req, res) => {
      req.resume();
      res.end("authors");
    });
    api.apply(
      service({
        name: "authors",
        namespace: "shop",
        selector: { app: "authors" },
        ports: [{ name: "http", port: 80, targetPort: "http" }],
      }),
    );
    api.apply(
      endpointSlice({
        namespace: "shop",
        service: "authors",
        name: "authors-a",
        ports: [{ name: "http", port: Number(app.address.split(":")[1]) }],
        endpoints: [{ ip: "127.0.0.1", pod: "authors-a", ready: true }],
      }),
    );
  });
  afterAll(async () => {
    for (const r of releases) r();
    await Promise.all(proxies.map((p) => p.stop()));
    await app?.close();
    await api?.close();
  });

  const config = (services: unknown[], kubernetes: Record<string, unknown> = {}) => ({
    admin: { listen: "127.0.0.1:0" },
    kubernetes: { kubeconfig: join(dir, "kubeconfig"), ...kubernetes },
    outbound: { listen: "127.0.0.1:0", services },
  });
  const authors = {
    name: "authors",
    discovery: { kubernetes: { service: "authors", namespace: "shop", port: "http" } },
  };

  test("lists before any request, is ready only after the list, and a reload removing the Service stops its watch", async () => {
    const releaseLists = api.holdLists();
    releases.push(releaseLists);
    const before = api.requests.length;
    const file = writeConfig(dir, config([authors]), "ready.yaml");
    const proxy = await startProxy(file);
    proxies.push(proxy);

    // No request has been sent through the proxy, yet the list reaches the API server.
    await api.waitForRequest(isSliceList);
    expect(await readyStatus(proxy)).toBe(503);
    await proxy.waitForLog(
      (l) => l.msg === "waiting for the first Kubernetes endpoint lists before ready",
    );

    releaseLists();
    await proxy.waitForLog((l) => l.msg === "Kubernetes endpoints listed; ready");
    expect(await readyStatus(proxy)).toBe(200);
    // slices and Service watches, opened by the config alone.
    await api.waitForWatches(2);

    // The first request is served from the list already in: it lists nothing itself.
    const res = await request(`http://${proxy.addresses.outbound}/`, {
      headers: { host: "authors" },
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe("authors");
    expect(api.requests.slice(before).filter(isSliceList)).toHaveLength(1);

    // A reload that drops the Service closes its watch connections at the API server.
    writeConfig(
      dir,
      config([{ name: "other", discovery: { static: [app.address] } }]),
      "ready.yaml",
    );
    proxy.child.kill("SIGHUP");
    await proxy.waitForLog((l) => l.msg === "config reloaded");
    await api.waitForWatches(0);
    expect(await readyStatus(proxy)).toBe(200);
  });

  test("an API server that does not answer the list: ready after kubernetes.readyTimeout, saying which Services are unlisted", async () => {
    const releaseLists = api.holdLists();
    releases.push(releaseLists);
    const proxy = await startProxy(
      writeConfig(dir, config([authors], { readyTimeout: "300ms" }), "timeout.yaml"),
    );
    proxies.push(proxy);
    await api.waitForRequest(isSliceList);
    expect(await readyStatus(proxy)).toBe(503);
    const expired = await proxy.waitForLog((l) =>
      String(l.msg).startsWith("kubernetes.readyTimeout expired"),
    );
    expect(expired).toMatchObject({ level: "warn", services: ["shop/authors"], timeoutMs: 300 });
    expect(await readyStatus(proxy)).toBe(200);
    releaseLists();
    await proxy.stop();
  });
});
