import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type EndpointSliceObject,
  endpointsFromSlices,
  KubernetesDiscovery,
} from "../src/index.js";

const slice = (
  name: string,
  endpoints: NonNullable<EndpointSliceObject["endpoints"]>,
  ports: EndpointSliceObject["ports"] = [{ name: "http", port: 8080 }],
): EndpointSliceObject => ({ metadata: { name }, addressType: "IPv4", ports, endpoints });

describe("endpointsFromSlices (the pure core of Kubernetes discovery)", () => {
  it("keeps ready endpoints, drops terminating ones, maps zone, identity, protocol and labels", () => {
    const out = endpointsFromSlices(
      {
        namespace: "shop",
        slices: [
          slice(
            "books-a",
            [
              {
                addresses: ["10.0.0.1"],
                conditions: { ready: true, serving: true, terminating: false },
                zone: "zone-a",
                nodeName: "n1",
                targetRef: { kind: "Pod", name: "books-1" },
              },
              {
                addresses: ["10.0.0.2"],
                conditions: { ready: false, serving: true, terminating: true },
                targetRef: { kind: "Pod", name: "books-2" },
              },
              {
                addresses: ["10.0.0.3"],
                conditions: {},
                hints: { forZones: [{ name: "zone-b" }] },
                targetRef: { kind: "Pod", name: "books-3" },
              },
            ],
            [{ name: "http", port: 8080, appProtocol: "kubernetes.io/h2c" }],
          ),
        ],
        serviceAccounts: new Map([
          ["books-1", "books"],
          ["books-2", "books"],
          ["books-3", "books"],
        ]),
      },
      { port: "http", trustDomain: "mesh.local" },
    );
    expect(out).toEqual([
      {
        address: "10.0.0.1:8080",
        identity: "spiffe://mesh.local/ns/shop/sa/books",
        protocol: "h2",
        zone: "zone-a",
        labels: { pod: "books-1", node: "n1" },
      },
      {
        address: "10.0.0.3:8080",
        identity: "spiffe://mesh.local/ns/shop/sa/books",
        protocol: "h2",
        zone: "zone-b",
        labels: { pod: "books-3" },
      },
    ]);
  });

  it("maps a Service port number to its name and takes appProtocol from the Service", () => {
    const out = endpointsFromSlices(
      {
        namespace: "shop",
        slices: [
          slice(
            "s",
            [{ addresses: ["10.0.0.1", "fd00::1"] }],
            [
              { name: "web", port: 8080 },
              { name: "admin", port: 9000 },
            ],
          ),
        ],
        service: {
          metadata: { name: "books" },
          spec: { ports: [{ name: "web", port: 80, appProtocol: "http" }] },
        },
      },
      { port: 80 },
    );
    expect(out).toEqual([
      { address: "10.0.0.1:8080", protocol: "http1" },
      { address: "[fd00::1]:8080", protocol: "http1" },
    ]);
  });

  it("withholds an endpoint whose Pod (and so identity) is not known yet", () => {
    const out = endpointsFromSlices(
      {
        namespace: "shop",
        slices: [
          slice("s", [{ addresses: ["10.0.0.9"], targetRef: { kind: "Pod", name: "new" } }]),
        ],
        serviceAccounts: new Map(),
      },
      { port: "http", trustDomain: "mesh.local" },
    );
    expect(out).toEqual([]);
  });

  it("uses serving terminating endpoints only when none is ready", () => {
    const term = { ready: false, serving: true, terminating: true };
    const state = (ready: boolean) => ({
      namespace: "x",
      slices: [
        slice("s", [
          { addresses: ["10.0.0.1"], conditions: term },
          {
            addresses: ["10.0.0.2"],
            conditions: { ready: false, serving: false, terminating: true },
          },
          ...(ready ? [{ addresses: ["10.0.0.3"] }] : []),
        ]),
      ],
    });
    expect(endpointsFromSlices(state(true), { port: "http" }).map((e) => e.address)).toEqual([
      "10.0.0.3:8080",
    ]);
    expect(endpointsFromSlices(state(false), { port: "http" }).map((e) => e.address)).toEqual([
      "10.0.0.1:8080",
    ]);
  });

  it("property: the set depends only on the endpoints, not on how they are split into slices or ordered", () => {
    const endpoint = fc.record({
      ip: fc.integer({ min: 1, max: 40 }).map((n) => `10.1.0.${n}`),
      ready: fc.option(fc.boolean(), { nil: undefined }),
      terminating: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(endpoint, { maxLength: 30 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer(),
        (eps, parts, seed) => {
          const toApi = (e: (typeof eps)[number]) => ({
            addresses: [e.ip],
            conditions: { ready: e.ready, serving: e.ready !== false, terminating: e.terminating },
          });
          const one = endpointsFromSlices(
            { namespace: "n", slices: [slice("all", eps.map(toApi))] },
            { port: "http" },
          );
          const split: EndpointSliceObject[] = [];
          const shuffled = [...eps].sort(
            (a, b) => ((a.ip.length * 31 + seed) % 7) - ((b.ip.length * 31 + seed) % 7),
          );
          for (let i = 0; i < parts; i++)
            split.push(slice(`p${i}`, shuffled.filter((_, j) => j % parts === i).map(toApi)));
          const many = endpointsFromSlices(
            { namespace: "n", slices: split.reverse() },
            { port: "http" },
          );
          expect(many).toEqual(one);
          // No duplicates; only ready ones when any is ready.
          const addresses = one.map((e) => e.address);
          expect(new Set(addresses).size).toBe(addresses.length);
          const readyIps = new Set(eps.filter((e) => e.ready !== false).map((e) => `${e.ip}:8080`));
          if (readyIps.size > 0) expect(new Set(addresses)).toEqual(readyIps);
        },
      ),
    );
  });
});

describe("Kubernetes discovery options", () => {
  const api = { server: "https://127.0.0.1:6443", token: "t" };
  it("name the bad field", () => {
    const d = new KubernetesDiscovery({ api });
    expect(() => d.resolver({ service: "Books", port: 80 })).toThrow(
      'kubernetes.service: expected a Service name (DNS label), got "Books"',
    );
    expect(() => d.resolver({ service: "books", port: 0 })).toThrow(
      "kubernetes.port: expected a port name or a number in 1..65535, got 0",
    );
    expect(() => d.resolver({ service: "books", port: "http", serviceName: "x" } as never)).toThrow(
      'kubernetes: unknown option "serviceName" (did you mean "service"?)',
    );
    expect(() => new KubernetesDiscovery({ api: { server: "ftp://x" } })).toThrow(
      'kubeApi.server: expected an http(s):// URL, got "ftp://x"',
    );
    expect(() => new KubernetesDiscovery({ api, trustDomain: "Bad Domain" })).toThrow(
      'trustDomain: expected a SPIFFE trust domain, got "Bad Domain"',
    );
    expect(() => new KubernetesDiscovery({ api, backoff: { minMs: -1 } })).toThrow(
      "backoff.minMs: expected a duration in ms",
    );
  });
});
