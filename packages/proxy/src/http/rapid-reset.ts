import http2 from "node:http2";

/**
 * HTTP/2 rapid-reset mitigation (CVE-2023-44487), as Envoy's premature-reset check does:
 * a session whose client has reset at least {@link MIN_PREMATURE_RESETS} streams before
 * their responses ended, and at least half of all its streams, is closed at once with
 * GOAWAY ENHANCE_YOUR_CALM. Cancelling is legitimate; a connection that mostly cancels is
 * not, and each of its streams costs the proxy work no one waits for.
 */
export const MIN_PREMATURE_RESETS = 100;

/** Marks a stream the proxy itself reset (an upstream failure mid-response): not the client's doing. */
export const PROXY_RESET = Symbol("mesh.proxyReset");

interface ResetCounts {
  streams: number;
  resets: number;
  session: http2.ServerHttp2Session;
  onAbuse: (session: http2.ServerHttp2Session, streams: number, resets: number) => void;
}

const COUNTS = Symbol("mesh.resetCounts");

type CountedStream = http2.ServerHttp2Stream & {
  [COUNTS]?: ResetCounts;
  [PROXY_RESET]?: boolean;
};

/**
 * Counts `session`'s streams and premature resets, and destroys it with ENHANCE_YOUR_CALM
 * (after calling `onAbuse`) when its client resets too many. One listener per stream, no
 * closure per stream.
 */
export function guardRapidReset(
  session: http2.ServerHttp2Session,
  onAbuse: ResetCounts["onAbuse"],
): void {
  const counts: ResetCounts = { streams: 0, resets: 0, session, onAbuse };
  (session as { [COUNTS]?: ResetCounts })[COUNTS] = counts;
  session.on("stream", onStream);
}

function onStream(this: http2.ServerHttp2Session, stream: CountedStream): void {
  const counts = (this as { [COUNTS]?: ResetCounts })[COUNTS];
  if (counts === undefined) return;
  counts.streams++;
  stream[COUNTS] = counts;
  stream.on("close", onStreamClose);
}

function onStreamClose(this: CountedStream): void {
  const counts = this[COUNTS];
  if (counts === undefined || this.rstCode === http2.constants.NGHTTP2_NO_ERROR) return;
  if (this[PROXY_RESET] === true) return;
  counts.resets++;
  if (counts.resets < MIN_PREMATURE_RESETS || counts.resets * 2 < counts.streams) return;
  const session = counts.session;
  if (session.destroyed) return;
  this[COUNTS] = undefined;
  counts.onAbuse(session, counts.streams, counts.resets);
  // With an error, `code` goes out in the GOAWAY (without one it would be NO_ERROR).
  session.destroy(new Error("rapid reset"), http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
}
