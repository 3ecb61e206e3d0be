/**
 * Preload (`node --import ./cpusample.mjs …`) for CPU profiles of one window: SIGUSR2 starts
 * V8's CPU profiler, the next SIGUSR2 stops it and writes
 * `<MESH_CPUSAMPLE_DIR>/<pid>-<n>.cpuprofile` (read it with top.mjs). pair.mjs `--cpuprof`
 * drives it around the measured window, so warm-up and start-up stay out of the profile.
 */

import { writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.env.MESH_CPUSAMPLE_DIR;
if (dir) {
  const { post } = await import("./inspector-post.mjs");
  let running = false;
  let n = 0;
  process.on("SIGUSR2", async () => {
    if (!running) {
      running = true;
      await post("Profiler.enable");
      await post("Profiler.setSamplingInterval", { interval: 100 });
      await post("Profiler.start");
      return;
    }
    running = false;
    const { profile } = await post("Profiler.stop");
    writeFileSync(join(dir, `${process.pid}-${n++}.cpuprofile`), JSON.stringify(profile));
  });
}
