/**
 * The proxyless mTLS example (`npm start -w @mesh/example-proxyless-mtls`).
 *
 * Starts an identity issuer, a `books` app with a `mesh-proxy` sidecar that only lets
 * `spiffe://demo.mesh/ns/demo/sa/client` in, then calls it from this process with no
 * sidecar: as `client` (200), as `intruder` (403), without a certificate (403), and
 * expecting the wrong server identity (refused by the client). Prints one JSON summary
 * line, stops everything and exits 0 when each call went as expected.
 *
 *   node src/main.ts           run the calls, stop, exit
 *   node src/main.ts --stay    keep the issuer, app and sidecar up after the calls until
 *                              Ctrl-C (SIGINT/SIGTERM), then stop and exit 0
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import type { TLSSocket } from "node:tls";
import { fetch, request } from "undici";
import type { BooksAnswer } from "./books.ts";
import { startBooks } from "./books.ts";
import { meshClient } from "./client.ts";
import { idOf, startIssuer, TRUST_DOMAIN } from "./mesh.ts";
import { inboundResponses, type Sidecar, startSidecar, stopAllSidecars } from "./sidecar.ts";

const CLIENT = idOf("client");
const INTRUDER = idOf("intruder");
const BOOKS = idOf("books");

/** The TLS details of each connection undici opened, in order (from its diagnostics channel). */
const connections: { alpn: string; tls: string; peer: string }[] = [];
function onConnected(message: unknown): void {
  const socket = (message as { socket?: Partial<TLSSocket> }).socket;
  if (typeof socket?.getProtocol !== "function") return;
  connections.push({
    alpn: String(socket.alpnProtocol),
    tls: String(socket.getProtocol()),
    peer: `${socket.remoteAddress}:${socket.remotePort}`,
  });
}

function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** The books app's answer, or an empty one when the body is not (e.g. a proxy error). */
function answerOf(text: string): Partial<BooksAnswer> {
  try {
    return JSON.parse(text) as BooksAnswer;
  } catch {
    return {};
  }
}

function causeOf(err: unknown): string {
  let e = err as { message?: string; cause?: unknown };
  while (e.cause !== undefined) e = e.cause as { message?: string; cause?: unknown };
  return String(e.message);
}

const STAY = process.argv.includes("--stay");
// Output piped into `head` may close early (EPIPE): keep going and clean up all the same.
process.stdout.on("error", () => {});

async function main(): Promise<boolean> {
  const issuer = await startIssuer(["books", "client", "intruder"]);
  const books = await startBooks();
  let sidecar: Sidecar | undefined;
  // With --stay the calls are followed by a wait for Ctrl-C; a signal before that stops
  // the sidecar and exits at once (130 / 143), so no process outlives this one.
  let waiting = false;
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const onSignal = (signal: NodeJS.Signals) => {
    if (waiting) return release();
    process.stderr.write(`${signal}: stopping\n`);
    const code = signal === "SIGINT" ? 130 : 143;
    void stopAllSidecars().finally(() => process.exit(code));
  };
  process.on("SIGINT", onSignal).on("SIGTERM", onSignal);
  subscribe("undici:client:connected", onConnected);
  try {
    sidecar = await startSidecar({
      trustDomain: TRUST_DOMAIN,
      id: BOOKS,
      issuerUrl: issuer.url,
      token: issuer.tokens.get("books") as string,
      app: books.address,
      allow: [CLIENT],
    });
    print(`issuer    ${issuer.url} (trust domain ${TRUST_DOMAIN})`);
    print(
      `books     app ${books.address}, sidecar ${sidecar.inbound} (pid ${sidecar.pid}, admin ${sidecar.admin})`,
    );
    print(`          policy: default deny, allow ${CLIENT}`);
    const base = `https://${sidecar.inbound}`;

    // 1. The allowed client: its own SVID from the issuer, mTLS straight to the sidecar.
    const client = await meshClient({
      issuer: issuer.url,
      id: CLIENT,
      token: issuer.tokens.get("client") as string,
      server: BOOKS,
    });
    const viaFetch = await fetch(`${base}/books/42`, { dispatcher: client.dispatcher });
    const fetched = answerOf(await viaFetch.text());
    const conn = connections.at(-1);
    print(`client    ${CLIENT}`);
    print(
      `  fetch   GET /books/42 -> ${viaFetch.status} over ${conn?.tls} ${conn?.alpn}; the app saw mesh-client-id: ${fetched.meshClientId ?? "(no answer from the app)"}`,
    );
    // A header the caller forges is dropped by the sidecar: the app sees the verified ID.
    const viaRequest = await request(`${base}/books/7`, {
      dispatcher: client.dispatcher,
      headers: { "mesh-client-id": idOf("admin") },
    });
    const requested = answerOf(await viaRequest.body.text());
    print(
      `  request GET /books/7 with a forged mesh-client-id -> ${viaRequest.statusCode}; the app saw mesh-client-id: ${requested.meshClientId ?? "(no answer from the app)"}`,
    );
    await client.close();

    // 2. A workload of the same mesh, but not allowed by the policy.
    const intruder = await meshClient({
      issuer: issuer.url,
      id: INTRUDER,
      token: issuer.tokens.get("intruder") as string,
      server: BOOKS,
    });
    const denied = await fetch(`${base}/books/42`, { dispatcher: intruder.dispatcher });
    await denied.arrayBuffer();
    const deniedReason = denied.headers.get("mesh-proxy-error");
    print(`intruder  ${INTRUDER}`);
    print(`  fetch   GET /books/42 -> ${denied.status} mesh-proxy-error: ${deniedReason}`);
    await intruder.close();

    // 3. No client certificate at all (plain HTTP to the same port).
    const plain = await fetch(`http://${sidecar.inbound}/books/42`);
    await plain.arrayBuffer();
    const plainReason = plain.headers.get("mesh-proxy-error");
    print(`plaintext no certificate`);
    print(`  fetch   GET /books/42 -> ${plain.status} mesh-proxy-error: ${plainReason}`);

    // 4. The client's side of mTLS: it refuses a server that is not who it expects.
    const wrongServer = idOf("payments");
    const mistaken = await meshClient({
      issuer: issuer.url,
      id: CLIENT,
      token: issuer.tokens.get("client") as string,
      server: wrongServer,
    });
    let refused = "";
    try {
      await fetch(`${base}/books/42`, { dispatcher: mistaken.dispatcher });
    } catch (err) {
      refused = causeOf(err);
    }
    print(`client    ${CLIENT}, expecting ${wrongServer}`);
    print(`  fetch   GET /books/42 -> refused by the client: ${refused}`);
    await mistaken.close();

    // The sidecar's own account: every request by verified identity (or none), over TLS or not.
    const sidecarSaw = await inboundResponses(sidecar.admin);
    print("sidecar   counted (response_total, inbound):");
    for (const r of sidecarSaw) {
      const who = r.clientId ?? "(no identity)";
      print(`  ${who} tls=${r.tls} ${r.status} x${r.count}`);
    }

    if (STAY) {
      print(`the sidecar stays up (try: curl http://${sidecar.admin}/metrics); Ctrl-C stops all`);
      waiting = true;
      await released;
      waiting = false; // a second Ctrl-C during the cleanup exits at once
    }

    const sidecarPid = sidecar.pid;
    const sidecarPorts = [sidecar.inbound, sidecar.admin].map((a) => Number(a.split(":").at(-1)));
    const sidecarExit = await sidecar.stop();
    sidecar = undefined;
    const summary = {
      msg: "result",
      trustDomain: TRUST_DOMAIN,
      allowed: {
        id: CLIENT,
        fetch: { status: viaFetch.status, appSaw: fetched.meshClientId ?? null },
        request: { status: viaRequest.statusCode, appSaw: requested.meshClientId ?? null },
        tls: conn?.tls ?? null,
        alpn: conn?.alpn ?? null,
      },
      intruder: { id: INTRUDER, status: denied.status, reason: deniedReason },
      plaintext: { status: plain.status, reason: plainReason },
      wrongServer: { expected: wrongServer, refused },
      appServed: books.served(),
      sidecarSaw,
      sidecar: { pid: sidecarPid, ports: sidecarPorts, exit: sidecarExit },
    };
    print(JSON.stringify(summary));
    return (
      viaFetch.status === 200 &&
      fetched.meshClientId === CLIENT &&
      requested.meshClientId === CLIENT &&
      denied.status === 403 &&
      plain.status === 403 &&
      refused !== "" &&
      books.served() === 2 &&
      sidecarSaw.some((r) => r.clientId === CLIENT && r.tls && r.status === 200) &&
      sidecarSaw.some((r) => r.clientId === INTRUDER && r.tls && r.status === 403) &&
      sidecarExit === 0
    );
  } finally {
    unsubscribe("undici:client:connected", onConnected);
    await sidecar?.stop();
    await books.close();
    await issuer.close();
    process.removeListener("SIGINT", onSignal).removeListener("SIGTERM", onSignal);
  }
}

main().then(
  (ok) => {
    if (!ok) process.stderr.write("proxyless-mtls: a call did not go as expected (see above)\n");
    process.exitCode = ok ? 0 : 1;
  },
  (err: unknown) => {
    process.stderr.write(`proxyless-mtls: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
