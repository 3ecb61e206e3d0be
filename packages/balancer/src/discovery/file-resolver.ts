import { watch } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, extname, resolve } from "node:path";
import { duration, typeError } from "@mesh/core";
import { parse as parseYaml } from "yaml";
import { type EndpointInit, endpointInfo } from "../endpoints/endpoint.js";
import { ResolverError } from "../errors.js";
import { type Resolver, type ResolverUpdate, updateStream } from "./resolver.js";

/** Options for {@link fileResolver}. */
export interface FileResolverOptions {
  /** Watch the file and yield again on every valid change. Default true. */
  watch?: boolean;
  /** Quiet time after a change before re-reading, in ms (editors write in bursts). Default 50. */
  debounceMs?: number;
}

/**
 * Parses the text of an endpoints file: JSON (`.json`) or YAML (anything else). Accepts a list
 * of endpoints or `{ endpoints: [...] }`; each entry is an address string or an
 * {@link EndpointInit} without `connect`. Throws {@link ResolverError} naming the bad field.
 */
export function parseEndpointsFile(text: string, file: string): EndpointInit[] {
  const source = `file:${file}`;
  let doc: unknown;
  try {
    doc = extname(file).toLowerCase() === ".json" ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ResolverError(
      source,
      `not valid ${extname(file) === ".json" ? "JSON" : "YAML"}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const list = Array.isArray(doc) ? doc : (doc as { endpoints?: unknown } | null)?.endpoints;
  if (!Array.isArray(list)) {
    throw new ResolverError(
      source,
      typeError("endpoints", "a list of endpoints", list ?? doc).message,
    );
  }
  return list.map((entry: unknown, i: number) => {
    try {
      if (entry && typeof entry === "object" && "connect" in entry) {
        throw typeError(
          `endpoints[${i}].connect`,
          "no connect options in a file (set them in code)",
          "connect",
        );
      }
      endpointInfo(entry, `endpoints[${i}]`);
    } catch (err) {
      throw new ResolverError(source, (err as Error).message, { cause: err });
    }
    return typeof entry === "string" ? { address: entry } : (entry as EndpointInit);
  });
}

/**
 * Discovers endpoints from a JSON or YAML file, watched for changes. A file that is missing or
 * invalid yields an `error` update saying why (field path included) and the last good set
 * stays in use; the next valid write yields a new set.
 */
export function fileResolver(path: string, options: FileResolverOptions = {}): Resolver {
  if (typeof path !== "string" || path.length === 0) throw typeError("path", "a file path", path);
  const file = resolve(path);
  const watchFile = options.watch ?? true;
  if (typeof watchFile !== "boolean") throw typeError("watch", "a boolean", options.watch);
  const debounceMs = duration("debounceMs", options.debounceMs, 50, 0, 60_000);
  const source = `file:${file}`;

  return {
    source,
    [Symbol.asyncIterator]() {
      return updateStream((push: (u: ResolverUpdate) => void) => {
        let lastText: string | undefined;
        let lastError: string | undefined;
        let timer: NodeJS.Timeout | undefined;
        let stopped = false;
        let reading = false;
        let again = false;
        const read = async () => {
          if (reading) {
            again = true;
            return;
          }
          reading = true;
          try {
            let text: string;
            try {
              text = await readFile(file, "utf8");
            } catch (err) {
              throw new ResolverError(source, `cannot read: ${(err as Error).message}`, {
                cause: err,
              });
            }
            if (stopped || text === lastText) return;
            const endpoints = parseEndpointsFile(text, file);
            lastText = text;
            lastError = undefined;
            push({ type: "endpoints", endpoints });
          } catch (err) {
            const error =
              err instanceof ResolverError ? err : new ResolverError(source, String(err));
            if (!stopped && error.message !== lastError) {
              lastError = error.message;
              lastText = undefined;
              push({ type: "error", error });
            }
          } finally {
            reading = false;
            if (again && !stopped) {
              again = false;
              void read();
            }
          }
        };
        const name = basename(file);
        // Watch the directory: editors and config tools replace files by rename, which a
        // watch on the file itself would not survive.
        const watcher = watchFile
          ? watch(dirname(file), { persistent: false }, (_event, changed) => {
              if (changed !== null && changed !== name) return;
              if (timer) clearTimeout(timer);
              timer = setTimeout(read, debounceMs);
              timer.unref();
            })
          : undefined;
        watcher?.on("error", (err) =>
          push({
            type: "error",
            error: new ResolverError(source, `watch failed: ${err.message}`, { cause: err }),
          }),
        );
        void read();
        return () => {
          stopped = true;
          if (timer) clearTimeout(timer);
          watcher?.close();
        };
      });
    },
  };
}
