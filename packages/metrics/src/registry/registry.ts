import { MetricsError } from "../errors.js";
import {
  type AnyFamily,
  CounterFamily,
  type FamilyOptions,
  GaugeFamily,
  HistogramFamily,
  type HistogramOptions,
} from "./family.js";

/**
 * Holds metric families by name. Families are created once (at setup) and their series
 * resolved once per label set, so recording is a field increment.
 */
export class Registry {
  readonly #families = new Map<string, AnyFamily>();
  readonly #beforeCollect: Array<() => void> = [];

  /** Creates a counter family. Counter names should end in `_total`. */
  counter(options: FamilyOptions): CounterFamily {
    return this.#add(new CounterFamily(options));
  }

  /** Creates a gauge family. */
  gauge(options: FamilyOptions): GaugeFamily {
    return this.#add(new GaugeFamily(options));
  }

  /** Creates a histogram family with fixed buckets. */
  histogram(options: HistogramOptions): HistogramFamily {
    return this.#add(new HistogramFamily(options));
  }

  /** The family with this name, if any. */
  family(name: string): AnyFamily | undefined {
    return this.#families.get(name);
  }

  /** All families, in creation order. */
  families(): IterableIterator<AnyFamily> {
    return this.#families.values();
  }

  /**
   * Registers a hook run before each collection (render, snapshot, OTel export), e.g. to
   * expire idle series. Returns a function that removes it.
   */
  onCollect(hook: () => void): () => void {
    this.#beforeCollect.push(hook);
    return () => {
      const i = this.#beforeCollect.indexOf(hook);
      if (i >= 0) this.#beforeCollect.splice(i, 1);
    };
  }

  /** Runs the collection hooks. Renderers call this; call it yourself before reading series. */
  collect(): void {
    for (const hook of this.#beforeCollect) hook();
  }

  #add<F extends AnyFamily>(family: F): F {
    if (this.#families.has(family.name)) {
      throw new MetricsError(
        "MESH_METRICS_DUPLICATE_METRIC",
        `name: expected a metric name not yet registered, got ${JSON.stringify(family.name)}`,
      );
    }
    this.#families.set(family.name, family);
    return family;
  }
}
