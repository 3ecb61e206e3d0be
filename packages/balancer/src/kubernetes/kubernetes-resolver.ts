import { duration, optionsObject, typeError } from "@mesh/core";
import { type Resolver, type ResolverUpdate, updateStream } from "../discovery/resolver.js";
import type { EndpointInit, ProtocolHint } from "../endpoints/endpoint.js";
import { type KubeApiError, ResolverError } from "../errors.js";
import type { Random } from "../random.js";
import {
  type EndpointSliceObject,
  endpointsFromSlices,
  type PodObject,
  type ServiceObject,
} from "./endpoint-slices.js";
import { KubeApiClient, type KubeApiConfig } from "./kube-api.js";
import { ListWatch, type Timers, type WatchBackoff } from "./list-watch.js";

/** Options of {@link KubernetesDiscovery}. */
export interface KubernetesDiscoveryOptions {
  /**
   * The API server: a config ({@link inClusterKubeApi}, {@link kubeconfigKubeApi}), a function
   * loading one (`() => defaultKubeApi()`, retried until it works), or a client.
   */
  api: KubeApiConfig | (() => Promise<KubeApiConfig>) | KubeApiClient;
  /**
   * The mesh's trust domain. With it, every endpoint carries its Pod's identity
   * (`spiffe://<td>/ns/<ns>/sa/<sa>`), from a watch on the service's Pods.
   */
  trustDomain?: string;
  /** Reconnect backoff of the watches. */
  backoff?: WatchBackoff;
  /** Timers for the backoff (tests inject their own). */
  timers?: Timers;
  random?: Random;
}

/** Which service a {@link KubernetesDiscovery.resolver} follows. */
export interface KubernetesServiceRef {
  /** The Service's name. */
  service: string;
  /** Its namespace. Default `default`. */
  namespace?: string;
  /** The Service port, by name or number. */
  port: string | number;
  /** Protocol when the port has no `appProtocol` saying one. Default none (HTTP/1.1). */
  protocol?: ProtocolHint;
}

/**
 * A hold on the shared watches of one Service, from {@link KubernetesDiscovery.hold}: they run
 * (list, then watch) until {@link release}, whether or not a resolver iterates.
 */
export interface KubernetesServiceHold {
  /** `namespace/service`. */
  readonly key: string;
  /** True once every watch needed for a complete answer (slices, Service, Pods) has listed. */
  readonly synced: boolean;
  /**
   * Resolves at the first complete list ({@link synced}). It never rejects: API trouble only
   * delays it (the watches retry with their backoff), so bound the wait yourself.
   */
  readonly whenSynced: Promise<void>;
  /** Lets the watches go (they stop when nothing else holds or resolves the Service). Idempotent. */
  release(): void;
}

type Listener = (update: ResolverUpdate | "changed") => void;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** The shared watches of one Service: its EndpointSlices, the Service, and its Pods. */
class ServiceWatch {
  readonly slices: ListWatch<EndpointSliceObject>;
  readonly service: ListWatch<ServiceObject>;
  pods: ListWatch<PodObject> | undefined;
  #selector: string | undefined;
  readonly listeners = new Set<Listener>();
  serviceAccounts = new Map<string, string>();

  constructor(
    readonly namespace: string,
    readonly name: string,
    private readonly owner: KubernetesDiscovery,
    private readonly o: KubernetesDiscoveryOptions & { client: KubeApiClient },
  ) {
    const common = {
      client: o.client,
      ...(o.backoff ? { backoff: o.backoff } : {}),
      ...(o.timers ? { timers: o.timers } : {}),
      ...(o.random ? { random: o.random } : {}),
      onError: (error: KubeApiError) => this.#error(error),
    };
    this.slices = new ListWatch<EndpointSliceObject>({
      ...common,
      path: `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
      labelSelector: `kubernetes.io/service-name=${name}`,
      onChange: () => this.#changed(),
    });
    this.service = new ListWatch<ServiceObject>({
      ...common,
      path: `/api/v1/namespaces/${namespace}/services`,
      fieldSelector: `metadata.name=${name}`,
      onChange: () => this.#serviceChanged(),
    });
  }

  get source(): string {
    return `kubernetes:${this.namespace}/${this.name}`;
  }

  /** True when every watch needed for a complete answer has listed once. */
  get synced(): boolean {
    if (!this.slices.listed || !this.service.listed) return false;
    if (this.o.trustDomain === undefined) return true;
    return this.#selector === undefined || (this.pods?.listed ?? false);
  }

  get serviceObject(): ServiceObject | undefined {
    return this.service.items.get(this.name);
  }

  start(): void {
    this.slices.start();
    this.service.start();
  }

  stop(): void {
    this.slices.stop();
    this.service.stop();
    this.pods?.stop();
  }

  #serviceChanged(): void {
    if (this.o.trustDomain !== undefined) {
      const sel = this.serviceObject?.spec?.selector;
      const selector =
        sel && Object.keys(sel).length > 0
          ? Object.entries(sel)
              .sort(([a], [b]) => (a < b ? -1 : 1))
              .map(([k, v]) => `${k}=${v}`)
              .join(",")
          : undefined;
      if (selector !== this.#selector) {
        this.#selector = selector;
        this.pods?.stop();
        this.pods = undefined;
        this.serviceAccounts = new Map();
        if (selector !== undefined) {
          this.pods = new ListWatch<PodObject>({
            client: this.o.client,
            ...(this.o.backoff ? { backoff: this.o.backoff } : {}),
            ...(this.o.timers ? { timers: this.o.timers } : {}),
            ...(this.o.random ? { random: this.o.random } : {}),
            path: `/api/v1/namespaces/${this.namespace}/pods`,
            labelSelector: selector,
            onError: (error) => this.#error(error),
            onChange: (items) => {
              const accounts = new Map<string, string>();
              for (const [name, p] of items)
                accounts.set(name, p.spec?.serviceAccountName || "default");
              this.serviceAccounts = accounts;
              this.#changed();
            },
          });
          this.pods.start();
        }
      }
    }
    this.#changed();
  }

  #changed(): void {
    if (!this.synced) return;
    for (const l of this.listeners) l("changed");
  }

  #error(error: KubeApiError): void {
    const e = new ResolverError(this.source, error.message, { cause: error });
    for (const l of this.listeners) l({ type: "error", error: e });
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.start();
    else if (this.synced) listener("changed");
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) {
        this.stop();
        this.owner.forget(this);
      }
    };
  }
}

/**
 * Kubernetes discovery: one set of watches (EndpointSlices by `kubernetes.io/service-name`,
 * the Service, and with a trust domain the Service's Pods) per namespace/service, shared by
 * every {@link resolver} naming it and stopped when the last one stops iterating.
 */
export class KubernetesDiscovery {
  readonly #o: KubernetesDiscoveryOptions & { client: KubeApiClient };
  readonly #watches = new Map<string, ServiceWatch>();

  constructor(options: KubernetesDiscoveryOptions) {
    if (options === undefined) throw typeError("options", "{ api, trustDomain? }", options);
    optionsObject("KubernetesDiscovery", options, {
      known: ["api", "trustDomain", "backoff", "timers", "random"],
      hints: {
        kubeconfig: "api: await kubeconfigKubeApi({ path })",
        namespace: "resolver({ namespace })",
      },
    });
    if (options.api === undefined || options.api === null)
      throw typeError(
        "KubernetesDiscovery.api",
        "an API server config, a function loading one, or a KubeApiClient",
        options.api,
      );
    if (options.backoff !== undefined) {
      optionsObject("backoff", options.backoff, { known: ["minMs", "maxMs"] });
      const minMs = duration("backoff.minMs", options.backoff.minMs, 500, 1);
      duration("backoff.maxMs", options.backoff.maxMs, Math.max(30_000, minMs), minMs);
    }
    const client =
      options.api instanceof KubeApiClient ? options.api : new KubeApiClient(options.api);
    if (
      options.trustDomain !== undefined &&
      (typeof options.trustDomain !== "string" || !/^[a-z0-9._-]+$/.test(options.trustDomain))
    )
      throw typeError("trustDomain", "a SPIFFE trust domain", options.trustDomain);
    this.#o = { ...options, client };
  }

  /** Open service watches (one per namespace/service in use). */
  get watchCount(): number {
    return this.#watches.size;
  }

  /** @internal */
  forget(watch: ServiceWatch): void {
    const key = `${watch.namespace}/${watch.name}`;
    if (this.#watches.get(key) === watch) this.#watches.delete(key);
  }

  #watch(namespace: string, service: string): ServiceWatch {
    const key = `${namespace}/${service}`;
    let watch = this.#watches.get(key);
    if (!watch) {
      watch = new ServiceWatch(namespace, service, this, this.#o);
      this.#watches.set(key, watch);
    }
    return watch;
  }

  /**
   * Starts the shared watches of a Service now (list, then watch) and keeps them running
   * until the hold is released, so resolvers created later start from a complete set instead
   * of paying the list, and a caller can wait for the first list (a proxy's readiness).
   * Holds and resolvers of the same Service share one set of watches.
   */
  hold(ref: { service: string; namespace?: string }): KubernetesServiceHold {
    if (ref === undefined) throw typeError("kubernetes", "{ service, namespace }", ref);
    const { service, namespace } = checkService(ref);
    const watch = this.#watch(namespace, service);
    let markSynced!: () => void;
    const whenSynced = new Promise<void>((resolve) => {
      markSynced = resolve;
    });
    let synced = false;
    let unsubscribe: (() => void) | undefined;
    unsubscribe = watch.subscribe((u) => {
      if (u !== "changed" || synced) return;
      synced = true;
      markSynced();
    });
    return {
      key: `${namespace}/${service}`,
      get synced() {
        return synced;
      },
      whenSynced,
      release() {
        unsubscribe?.();
        unsubscribe = undefined;
      },
    };
  }

  /**
   * A {@link Resolver} for one Service port. Yields the full set of ready endpoints (see
   * {@link endpointsFromSlices}) after the first list and after every change; API trouble
   * yields `error` updates and the last set stays in use.
   */
  resolver(ref: KubernetesServiceRef): Resolver {
    if (ref === undefined) throw typeError("kubernetes", "{ service, namespace, port }", ref);
    optionsObject("kubernetes", ref, {
      known: ["service", "namespace", "port", "protocol"],
      hints: { name: "service", serviceName: "service", portName: "port" },
    });
    const { namespace } = checkService(ref);
    const { port } = ref;
    if (
      !(typeof port === "string" && DNS_LABEL.test(port)) &&
      !(typeof port === "number" && Number.isInteger(port) && port >= 1 && port <= 65535)
    )
      throw typeError("kubernetes.port", "a port name or a number in 1..65535", port);
    if (ref.protocol !== undefined && ref.protocol !== "http1" && ref.protocol !== "h2")
      throw typeError("kubernetes.protocol", '"http1" or "h2"', ref.protocol);
    const key = `${namespace}/${ref.service}`;
    const source = `kubernetes:${key}:${port}`;
    return {
      source,
      [Symbol.asyncIterator]: () =>
        updateStream((push) => {
          const w = this.#watch(namespace, ref.service);
          let last: string | undefined;
          return w.subscribe((u) => {
            if (u !== "changed") return push(u);
            const endpoints: EndpointInit[] = endpointsFromSlices(
              {
                namespace,
                slices: w.slices.items.values(),
                service: w.serviceObject,
                serviceAccounts: w.serviceAccounts,
              },
              { port, trustDomain: this.#o.trustDomain, protocol: ref.protocol },
            );
            const text = JSON.stringify(endpoints);
            if (text === last) return;
            last = text;
            if (w.serviceObject === undefined)
              push({
                type: "error",
                error: new ResolverError(source, `no Service ${key} (yet)`),
              });
            push({ type: "endpoints", endpoints });
          });
        }),
    };
  }

  /** Stops every watch. */
  close(): void {
    for (const w of this.#watches.values()) w.stop();
    this.#watches.clear();
  }
}

function checkService(ref: { service: string; namespace?: string }): {
  service: string;
  namespace: string;
} {
  const namespace = ref.namespace ?? "default";
  if (typeof ref.service !== "string" || !DNS_LABEL.test(ref.service))
    throw typeError("kubernetes.service", "a Service name (DNS label)", ref.service);
  if (typeof namespace !== "string" || !DNS_LABEL.test(namespace))
    throw typeError("kubernetes.namespace", "a namespace name (DNS label)", namespace);
  return { service: ref.service, namespace };
}

/** A standalone Kubernetes resolver with its own watches (use one {@link KubernetesDiscovery} to share them). */
export function kubernetesResolver(
  options: KubernetesDiscoveryOptions & KubernetesServiceRef,
): Resolver {
  const { service, namespace, port, protocol, ...discovery } = optionsObject(
    "kubernetesResolver",
    options,
  ) as KubernetesDiscoveryOptions & KubernetesServiceRef;
  const ref: KubernetesServiceRef = { service, port };
  if (namespace !== undefined) ref.namespace = namespace;
  if (protocol !== undefined) ref.protocol = protocol;
  return new KubernetesDiscovery(discovery).resolver(ref);
}
