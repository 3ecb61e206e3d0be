import { execFile, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { missingPeer } from "../../../scripts/peers.mjs";
import {
  endpointSlice,
  type FakeKubeApiserver,
  startFakeKubeApiserver,
} from "../../../test/fake-kube-apiserver.js";

const run = promisify(execFile);

// The fake API server is only as good as its protocol: the real kubectl must read the same
// EndpointSlices from it (discovery documents, list, watch) through an ordinary kubeconfig.
describe.skipIf(missingPeer("kubectl"))("kubectl against the fake Kubernetes API server", () => {
  let api: FakeKubeApiserver;
  let env: NodeJS.ProcessEnv;
  const slice = (ips: string[]) =>
    endpointSlice({
      namespace: "shop",
      service: "books",
      ports: [{ name: "http", port: 8080 }],
      endpoints: ips.map((ip) => ({ ip })),
    });

  beforeAll(async () => {
    api = await startFakeKubeApiserver({ tokens: ["kubectl-token"] });
    const dir = mkdtempSync(join(tmpdir(), "kubectl-"));
    api.writeKubeconfig(join(dir, "kubeconfig"), "kubectl-token", "shop");
    env = { ...process.env, KUBECONFIG: join(dir, "kubeconfig"), HOME: dir };
    api.apply(slice(["10.0.0.1", "10.0.0.2"]));
  });
  afterAll(() => api.close());

  it("kubectl get lists the EndpointSlices by the service-name label", async () => {
    const { stdout } = await run(
      "kubectl",
      [
        "get",
        "endpointslices.discovery.k8s.io",
        "-l",
        "kubernetes.io/service-name=books",
        "-o",
        "jsonpath={.items[*].metadata.name} {.items[*].endpoints[*].addresses[0]}",
      ],
      { env },
    );
    expect(stdout).toBe("books-abcde 10.0.0.1 10.0.0.2");
  });

  it("kubectl get --watch sees a change made after its list", async () => {
    const child = spawn(
      "kubectl",
      [
        "get",
        "endpointslices",
        "--watch",
        "-o",
        'jsonpath={.metadata.resourceVersion} {.endpoints[*].addresses[0]}{"\\n"}',
      ],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    const lines: string[] = [];
    let stderr = "";
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    const next = (n: number) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (lines.length >= n) resolve();
        };
        child.stdout.setEncoding("utf8");
        child.stdout.on("data", (c: string) => {
          lines.push(...c.split("\n").filter(Boolean));
          check();
        });
        child.on("exit", (code) => reject(new Error(`kubectl exited ${code}: ${stderr}`)));
        check();
      });
    try {
      await next(1);
      await api.waitForWatches(1);
      const updated = api.apply(slice(["10.0.0.1", "10.0.0.2", "10.0.0.3"]));
      await next(2);
      expect(lines[1]).toBe(`${updated.metadata.resourceVersion} 10.0.0.1 10.0.0.2 10.0.0.3`);
      expect(
        api.requests.some(
          (r) =>
            /endpointslices\?.*watch=true.*resourceVersion=/.test(r) ||
            /endpointslices\?.*resourceVersion=.*watch=true/.test(r),
        ),
      ).toBe(true);
    } finally {
      child.kill();
    }
  });
});
