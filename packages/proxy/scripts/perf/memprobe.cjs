/**
 * RSS and V8 heap of a fresh process after requiring the given modules:
 * `node memprobe.cjs [module[+module…]]` (no argument: bare node).
 */
const v8 = require("node:v8");

const list = process.argv[2];
if (list) for (const m of list.split("+")) require(m);
setTimeout(() => {
  const u = process.memoryUsage();
  const mb = (n) => (n / 1048576).toFixed(1);
  const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space");
  process.stdout.write(
    `${list || "(bare)"} rss ${mb(u.rss)} heapTotal ${mb(u.heapTotal)} heapUsed ${mb(u.heapUsed)} young ${mb(young?.space_size ?? 0)}\n`,
  );
}, 300);
