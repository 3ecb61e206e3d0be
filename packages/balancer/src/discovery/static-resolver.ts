import { typeError } from "@mesh/core";
import { type EndpointInit, endpointInfo } from "../endpoints/endpoint.js";
import type { Resolver, ResolverUpdate } from "./resolver.js";

/**
 * A fixed endpoint list as a {@link Resolver}: yields the set once. Validates eagerly, so a bad
 * address or weight throws here, naming the field (`endpoints[1].weight: expected ...`).
 */
export function staticResolver(endpoints: readonly (EndpointInit | string)[]): Resolver {
  if (!Array.isArray(endpoints)) throw typeError("endpoints", "an array of endpoints", endpoints);
  const list: EndpointInit[] = endpoints.map((e, i) => {
    endpointInfo(e, `endpoints[${i}]`);
    return typeof e === "string" ? { address: e } : { ...e };
  });
  return {
    source: "static",
    async *[Symbol.asyncIterator](): AsyncGenerator<ResolverUpdate> {
      yield { type: "endpoints", endpoints: list };
    },
  };
}
