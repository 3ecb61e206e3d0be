import {
  type Attributes,
  type BatchObservableCallback,
  type Meter,
  type Observable,
  metrics as otelMetrics,
} from "@opentelemetry/api";
import type { AnyFamily } from "../registry/family.js";
import type { Labels } from "../registry/labels.js";
import type { Registry } from "../registry/registry.js";
import { INSTRUMENTATION_NAME } from "./trace.js";

const attributeCache = new WeakMap<Labels, Attributes>();

function attributesOf(labels: Labels): Attributes {
  let a = attributeCache.get(labels);
  if (a === undefined) {
    a = {};
    for (const [k, v] of Object.entries(labels)) if (v !== undefined && v !== "") a[k] = v;
    attributeCache.set(labels, a);
  }
  return a;
}

/** The OpenTelemetry instrument name of a family: counters drop `_total` (exporters add it back). */
export function otelInstrumentName(family: AnyFamily): string {
  return family.type === "counter" && family.name.endsWith("_total")
    ? family.name.slice(0, -"_total".length)
    : family.name;
}

/**
 * Exposes every family of `registry` (those existing now) through an OpenTelemetry
 * `Meter` from `@opentelemetry/api`, so an app that registered an OTel SDK exports the
 * same numbers (e.g. over OTLP) without extra code. Counters and gauges are observable
 * instruments read at collection time (no cost per request); histograms are synchronous
 * histograms with the same bucket bounds as advice, fed per observation. Without an SDK
 * the API's no-op meter makes this free. Returns a function that detaches the bridge.
 */
export function bridgeToOpenTelemetry(
  registry: Registry,
  meter: Meter = otelMetrics.getMeter(INSTRUMENTATION_NAME),
): () => void {
  const observables: Array<[Observable, AnyFamily]> = [];
  const histograms: AnyFamily[] = [];
  for (const family of registry.families()) {
    const name = otelInstrumentName(family);
    const unit = family.name.endsWith("_ms") ? "ms" : undefined;
    const options = { description: family.help, ...(unit === undefined ? {} : { unit }) };
    if (family.type === "counter") {
      observables.push([meter.createObservableCounter(name, options), family]);
    } else if (family.type === "gauge") {
      observables.push([meter.createObservableUpDownCounter(name, options), family]);
    } else {
      const h = meter.createHistogram(name, {
        ...options,
        advice: { explicitBucketBoundaries: [...family.buckets] },
      });
      family.sink = { record: (v, labels) => h.record(v, attributesOf(labels)) };
      histograms.push(family);
    }
  }
  const callback: BatchObservableCallback = (result) => {
    registry.collect();
    for (const [instrument, family] of observables) {
      if (family.type === "histogram") continue;
      for (const s of family.series()) result.observe(instrument, s.value, attributesOf(s.labels));
    }
  };
  const instruments = observables.map(([o]) => o);
  meter.addBatchObservableCallback(callback, instruments);
  return () => {
    meter.removeBatchObservableCallback(callback, instruments);
    for (const f of histograms) if (f.type === "histogram") f.sink = undefined;
  };
}
