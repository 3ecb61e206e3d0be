/**
 * Scenario `identity`: SVID issuances per second (keygen + CSR + sign) and mTLS (TLS 1.3,
 * client cert required) handshakes per second, ECDSA P-256 via @mesh/tls-identity vs
 * RSA-2048 via node-forge. Each round runs in a fresh process pinned to one CPU.
 */
import { join } from "node:path";
import type { BenchContext } from "../lib/context.ts";
import { type Chart, fmt, fmtSpread, type PeerStatus, type ScenarioOutput } from "../lib/result.ts";
import { SRC_DIR } from "../lib/runners.ts";
import { ratio, spread } from "../lib/stats.ts";

interface Measured {
  issuance: { perSecond: number; ops: number };
  handshakes: { perSecond: number; ops: number };
}

/** Runs the identity scenario. */
export async function identity(ctx: BenchContext): Promise<ScenarioOutput> {
  const seconds = ctx.quick ? 0.5 : 5;
  const runs: { ecdsa: Measured[]; rsa: Measured[] } = { ecdsa: [], rsa: [] };
  let ecdsaReason: string | null = null;
  let rsaReason: string | null = null;
  for (let r = 0; r < ctx.rounds; r++) {
    ctx.log(`identity: round ${r + 1}/${ctx.rounds}`);
    const proc = ctx.pm.start(
      "identity",
      process.execPath,
      [join(SRC_DIR, "load", "identity-worker.ts"), String(seconds)],
      {
        cpus: ctx.pinning.load,
      },
    );
    const timer = setTimeout(() => void ctx.pm.stop(proc), 60_000 + seconds * 8000);
    await proc.exited;
    clearTimeout(timer);
    const m = /^RESULT (.*)$/m.exec(proc.stdout());
    if (!m) {
      rsaReason = `identity worker produced no result: ${proc.stderr().slice(-400)}`;
      ecdsaReason ??= rsaReason;
      break;
    }
    const res = JSON.parse(m[1]!) as { ecdsa: Measured | { unavailable: string }; rsa: Measured };
    if ("unavailable" in res.ecdsa) ecdsaReason = res.ecdsa.unavailable;
    else runs.ecdsa.push(res.ecdsa);
    runs.rsa.push(res.rsa);
  }
  const peers: PeerStatus[] = [
    ecdsaReason
      ? {
          name: "ecdsa-p256-mesh",
          describe: "ECDSA P-256 via @mesh/tls-identity (node:crypto)",
          status: "unavailable",
          reason: ecdsaReason,
        }
      : {
          name: "ecdsa-p256-mesh",
          describe: "ECDSA P-256 via @mesh/tls-identity (node:crypto)",
          status: "ok",
        },
    rsaReason
      ? {
          name: "rsa2048-forge",
          describe: "RSA-2048 via node-forge",
          status: "failed",
          reason: rsaReason,
        }
      : { name: "rsa2048-forge", describe: "RSA-2048 via node-forge", status: "ok" },
  ];
  const summary = {
    ecdsa: {
      issuance: spread(runs.ecdsa.map((x) => x.issuance.perSecond)),
      handshakes: spread(runs.ecdsa.map((x) => x.handshakes.perSecond)),
    },
    rsa: {
      issuance: spread(runs.rsa.map((x) => x.issuance.perSecond)),
      handshakes: spread(runs.rsa.map((x) => x.handshakes.perSecond)),
    },
  };
  const issueRatio = ratio(summary.ecdsa.issuance?.median, summary.rsa.issuance?.median);
  const hsRatio = ratio(summary.ecdsa.handshakes?.median, summary.rsa.handshakes?.median);
  return {
    notes: [
      `${seconds} s per measurement; handshakes are sequential, client and server in one process on one CPU (so each counts both sides' cost), TLS 1.3, client certificate required, no session resumption`,
      "issuance = generate key pair + build and sign a CSR + CA verifies the CSR and signs the SVID",
    ],
    peers,
    targets: [
      {
        name: "ECDSA P-256 vs RSA-2048 issuances/s",
        target: "reported (no numeric target)",
        value: issueRatio === null ? null : `${issueRatio.toFixed(1)}×`,
        pass: null,
        note: ecdsaReason ?? "informational",
      },
      {
        name: "ECDSA P-256 vs RSA-2048 mTLS handshakes/s",
        target: "reported (no numeric target)",
        value: hsRatio === null ? null : `${hsRatio.toFixed(2)}×`,
        pass: null,
        note: ecdsaReason ?? "informational",
      },
    ],
    tables: [
      {
        title: `Identity operations per second (median (min–max) of ${ctx.rounds} round(s))`,
        columns: ["key type", "issuances/s", "mTLS handshakes/s"],
        rows: [
          [
            "ECDSA P-256 (@mesh/tls-identity)",
            fmtSpread(summary.ecdsa.issuance, 1),
            fmtSpread(summary.ecdsa.handshakes, 1),
          ],
          [
            "RSA-2048 (node-forge)",
            fmtSpread(summary.rsa.issuance, 1),
            fmtSpread(summary.rsa.handshakes, 1),
          ],
          ["ECDSA / RSA", fmt(issueRatio, 1), fmt(hsRatio, 2)],
        ],
      },
    ],
    charts: [
      {
        kind: "bars",
        file: "identity.svg",
        title: "Identity operations per second",
        unit: "ops/s",
        groups: ["issuances/s", "handshakes/s"],
        series: [
          {
            name: "ECDSA P-256",
            values: [
              summary.ecdsa.issuance?.median ?? null,
              summary.ecdsa.handshakes?.median ?? null,
            ],
          },
          {
            name: "RSA-2048",
            values: [summary.rsa.issuance?.median ?? null, summary.rsa.handshakes?.median ?? null],
          },
        ],
      },
    ] satisfies Chart[],
    data: { seconds, runs, summary },
  };
}
