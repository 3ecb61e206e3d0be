/**
 * Preload (`node --import ./nice-v8.mjs …`) for a scheduling experiment: gives V8's worker
 * threads (concurrent GC marking and sweeping, background compiles) the nice value
 * MESH_V8_NICE (default 19), so on a CPU shared with other processes they run when the
 * main threads do not need it instead of taking time slices from them.
 */
import { readdirSync, readFileSync } from "node:fs";
import { setPriority } from "node:os";

const nice = Number(process.env.MESH_V8_NICE ?? 19);
for (const tid of readdirSync("/proc/self/task")) {
  const name = readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim();
  if (name === "V8Worker") setPriority(Number(tid), nice);
}
