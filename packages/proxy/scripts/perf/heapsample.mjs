/**
 * Preload (`node --import ./heapsample.mjs …`) for allocation measurements: SIGUSR2 starts
 * V8's sampling heap profiler (objects collected by minor and major GC included, so the
 * profile counts everything allocated, not only what survives); the next SIGUSR2 stops it
 * and writes `<MESH_HEAPSAMPLE_DIR>/<pid>-<n>.json`: `{ totalBytes, byUrl, top }` (self
 * bytes per script and per function) and the raw profile next to it. pair.mjs `--alloc`
 * drives it around the measured window and divides by the requests served.
 */

import { writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.env.MESH_HEAPSAMPLE_DIR;
const interval = Number(process.env.MESH_HEAPSAMPLE_INTERVAL ?? 256);
// MESH_HEAPSAMPLE_PROMOTED=1 leaves out what scavenges collect: the profile then holds what
// survived the young generation (promoted to old space: still live, or garbage that only a
// mark-compact frees), the allocation that drives major GCs.
const promotedOnly = process.env.MESH_HEAPSAMPLE_PROMOTED === "1";
if (dir) {
  const { post } = await import("./inspector-post.mjs");
  let running = false;
  let n = 0;
  process.on("SIGUSR2", async () => {
    if (!running) {
      running = true;
      await post("HeapProfiler.startSampling", {
        samplingInterval: interval,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: !promotedOnly,
      });
      return;
    }
    running = false;
    const { profile } = await post("HeapProfiler.stopSampling");
    const byUrl = {};
    const byFn = {};
    let totalBytes = 0;
    const walk = (node) => {
      const { functionName, url, lineNumber } = node.callFrame;
      const self = node.selfSize;
      totalBytes += self;
      const u = url || "(native)";
      byUrl[u] = (byUrl[u] ?? 0) + self;
      const f = `${functionName || "(anonymous)"} ${u.replace(/^.*\//, "")}:${lineNumber + 1}`;
      byFn[f] = (byFn[f] ?? 0) + self;
      for (const c of node.children) walk(c);
    };
    walk(profile.head);
    const top = Object.entries(byFn)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 60);
    const base = join(dir, `${process.pid}-${n++}`);
    writeFileSync(`${base}.heapprofile`, JSON.stringify(profile));
    writeFileSync(`${base}.json`, JSON.stringify({ totalBytes, byUrl, top }));
  });
}
