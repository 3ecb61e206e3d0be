import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { duration, optionsObject, typeError } from "@mesh/core";
import { BUNDLE_PATH, type SvidSource, TrustBundle } from "@mesh/tls-identity";

/** Options of {@link watchIssuerBundle}. @public */
export interface IssuerBundleWatchOptions {
  /** Base URL of the issuer (the one the source gets SVIDs from). */
  url: string;
  /**
   * PEM CA that verifies an `https:` issuer, or a function returning it, called for each
   * check (so a rotated CA file applies to the next one).
   */
  ca?: string | Buffer | (() => string | Buffer | Promise<string | Buffer>) | undefined;
  /** How often to fetch `GET /v1/bundle`, ms. Default 60 000. */
  intervalMs?: number;
  /** Per-request timeout, ms. Default 10 000. */
  timeoutMs?: number;
  /** Called when the issuer's anchors differ from the source's, before renewing. */
  onChange?: (change: { added: string[]; removed: string[] }) => void;
  /** Called when a check failed (issuer unreachable, bad body); the next one still runs. */
  onError?: (error: Error) => void;
}

/** A running watch; {@link IssuerBundleWatch.close} stops it. @public */
export interface IssuerBundleWatch {
  /** Runs one check now; resolves with whether the bundle had changed. */
  check(): Promise<boolean>;
  /** Stops checking. */
  close(): void;
}

function getText(url: URL, ca: string | Buffer | undefined, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    const req = send(
      url,
      {
        method: "GET",
        headers: { accept: "application/json" },
        ...(url.protocol === "https:" && ca !== undefined ? { ca } : {}),
        timeout: timeoutMs,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode === 200) resolve(text);
          else reject(new Error(`${url.href} answered ${res.statusCode}: ${text.slice(0, 200)}`));
        });
      },
    );
    req.on("timeout", () =>
      req.destroy(new Error(`${url.href}: no answer within ${timeoutMs} ms`)),
    );
    req.on("error", reject);
    req.end();
  });
}

const fingerprints = (b: TrustBundle) => new Set(b.certificates.map((c) => c.fingerprint256));

/**
 * Watches the issuer's public trust bundle (`GET /v1/bundle`) and renews the SVID at once
 * when its anchors differ from the ones `source` holds. An issuer source otherwise learns
 * a new bundle only with its next SVID, which for day-long certificates is hours after a
 * root was added or removed; with this watch a trust-anchor rotation reaches every proxy
 * within one interval.
 *
 * @public
 */
export function watchIssuerBundle(
  source: SvidSource,
  options: IssuerBundleWatchOptions,
): IssuerBundleWatch {
  const o = optionsObject("options", options);
  if (typeof o.url !== "string" || !/^https?:\/\//.test(o.url))
    throw typeError("options.url", "an http(s):// URL", o.url);
  const url = new URL(BUNDLE_PATH, o.url);
  const intervalMs = duration("options.intervalMs", o.intervalMs, 60_000, 1);
  const timeoutMs = duration("options.timeoutMs", o.timeoutMs, 10_000, 1);
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const check = async (): Promise<boolean> => {
    const current = source.current;
    if (current === undefined) return false; // the first SVID brings the bundle anyway
    const ca = typeof o.ca === "function" ? await o.ca() : o.ca;
    const body = JSON.parse(await getText(url, ca, timeoutMs)) as { bundlePem?: unknown };
    if (typeof body?.bundlePem !== "string") throw new Error(`${url.href} sent no bundlePem`);
    const next = fingerprints(TrustBundle.fromPem(body.bundlePem));
    const held = fingerprints(current.bundle);
    const added = [...next].filter((f) => !held.has(f));
    const removed = [...held].filter((f) => !next.has(f));
    if (added.length === 0 && removed.length === 0) return false;
    o.onChange?.({ added, removed });
    // A new SVID from the issuer carries its current bundle (and, after a root switch,
    // a chain under the new root).
    await source.refreshNow();
    return true;
  };

  const tick = () => {
    timer = setTimeout(() => {
      check()
        .catch((err: Error) => o.onError?.(err))
        .finally(() => {
          if (!closed) tick();
        });
    }, intervalMs);
    timer.unref();
  };
  tick();
  return {
    check,
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}
