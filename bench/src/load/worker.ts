/**
 * A load-generator process. The harness starts it (pinned to the load CPU) with a JSON
 * job as its only argument; it prints one `RESULT {json}` line and exits. Keeping load
 * generation out of the harness process lets it be pinned and keeps its CPU off the
 * peer under test.
 */
import { type ClientSpec, createClient } from "./clients.ts";
import { runClosedLoop } from "./closed-loop-undici.ts";
import { runOpenLoop } from "./open-loop.ts";

/** A job for the worker. */
export interface LoadJob {
  mode: "open" | "closed";
  client: ClientSpec;
  path: string;
  /** open: requests per second. */
  rate?: number;
  durationMs: number;
  /** open: warm-up at the same rate before measuring, ms (0 = none). */
  warmupMs?: number;
  drainTimeoutMs?: number;
  /** closed: concurrent request loops. */
  concurrency?: number;
  /** Wait until this wall-clock time (ms since epoch) before starting. */
  startAtEpochMs?: number;
  idHeader?: string;
  bucketMs?: number;
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? "{}") as LoadJob;
  const runId = `${process.pid}-${Date.now()}`;
  const client = await createClient(job.client, { path: job.path, idHeader: job.idHeader, runId });
  try {
    if (job.mode === "closed") {
      const result = await runClosedLoop({
        concurrency: job.concurrency ?? 32,
        durationMs: job.durationMs,
        send: client.send,
      });
      emit({ describe: client.describe, ...result });
      return;
    }
    const rate = job.rate ?? 1000;
    let warmupCompleted = 0;
    if (job.warmupMs && job.warmupMs > 0) {
      const warm = await runOpenLoop({
        rate,
        durationMs: job.warmupMs,
        drainTimeoutMs: 2000,
        send: client.send,
      });
      warmupCompleted = warm.completed;
    }
    // Header counts of the measured run only, not the warm-up's.
    const countedBefore = client.headerCounts?.() ?? {};
    if (job.startAtEpochMs) {
      const wait = job.startAtEpochMs - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, Math.min(wait, 60_000)));
    }
    const result = await runOpenLoop({
      rate,
      durationMs: job.durationMs,
      drainTimeoutMs: job.drainTimeoutMs ?? 5000,
      bucketMs: job.bucketMs,
      send: client.send,
    });
    emit({
      describe: client.describe,
      warmupCompleted,
      ...result,
      ...(client.headerCounts && {
        headerCounts: Object.fromEntries(
          Object.entries(client.headerCounts()).map(([k, n]) => [k, n - (countedBefore[k] ?? 0)]),
        ),
      }),
    });
  } finally {
    await Promise.race([client.close(), new Promise((r) => setTimeout(r, 1000))]);
  }
}

function emit(result: object): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stdout.write(
      `ERROR ${JSON.stringify({ message: String((error as Error)?.message ?? error), reason: (error as { reason?: string })?.reason })}\n`,
    );
    process.exit(1);
  },
);
