import { createHash } from "node:crypto";
import { type FSWatcher, readFileSync, watch } from "node:fs";
import { basename, dirname } from "node:path";

/**
 * Watches a config file (through its directory, so editors that replace the file and
 * Kubernetes ConfigMap symlink swaps are seen) and calls `onChange` once per settled change
 * of content.
 */
export class ConfigWatcher {
  private readonly watcher: FSWatcher;
  private timer: NodeJS.Timeout | undefined;
  private digest: string | undefined;

  constructor(
    private readonly file: string,
    private readonly onChange: () => void,
    debounceMs = 100,
  ) {
    this.digest = this.read();
    const name = basename(file);
    this.watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
      if (changed !== null && changed !== name && !String(changed).startsWith("..")) return;
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.timer = setTimeout(() => this.check(), debounceMs);
    });
    this.watcher.on("error", () => undefined);
  }

  private read(): string | undefined {
    try {
      return createHash("sha256").update(readFileSync(this.file)).digest("hex");
    } catch {
      return undefined;
    }
  }

  private check(): void {
    this.timer = undefined;
    const d = this.read();
    if (d === undefined || d === this.digest) return;
    this.digest = d;
    this.onChange();
  }

  /** Stops watching. */
  close(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.watcher.close();
  }
}
