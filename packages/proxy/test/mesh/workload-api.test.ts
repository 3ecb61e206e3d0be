import { once } from "node:events";
import tls from "node:tls";
import { createTrustAnchor, type X509Svid } from "@mesh/tls-identity";
import { describe, expect, it } from "vitest";
// The fake SPIRE agent lives with @mesh/tls-identity's tests (a grpc-js Workload API server
// on a Unix socket); there is no SPIRE here, so both packages' tests share it.
import { FakeSpireAgent, svidMessage } from "../../../tls-identity/test/fake-spire-agent.js";
import {
  admin,
  BOOKS,
  cleanupAfterAll,
  echoApp,
  get,
  meshPair,
  metric,
  ready,
  TD,
  tcpEcho,
  WEB,
} from "./fixtures.js";

const anchor = createTrustAnchor({ trustDomain: TD });
const ca = anchor.createAuthority();

/** The certificate serial a proxy's inbound listener presents to an mTLS client now. */
async function inboundSerial(inbound: string, client: X509Svid): Promise<string> {
  const [host, port] = inbound.split(":") as [string, string];
  const s = tls.connect({
    host,
    port: Number(port),
    cert: client.chainPem,
    key: client.privateKey.export({ type: "pkcs8", format: "pem" }),
    ca: anchor.bundle.pem,
    minVersion: "TLSv1.3",
    ALPNProtocols: ["h2"],
    checkServerIdentity: () => undefined,
  });
  await once(s, "secureConnect");
  const serial = s.getPeerX509Certificate()?.serialNumber ?? "";
  s.destroy();
  return serial;
}

describe("identity.workloadApi: SVIDs from a SPIRE agent's Workload API", () => {
  const defer = cleanupAfterAll();

  it("a proxy pair serves mTLS with the agent's SVIDs and follows a rotation without a restart", async () => {
    // One agent per workload, as each pod talks to its node's agent and gets its own SVID.
    const [booksAgent, webAgent] = await Promise.all([
      FakeSpireAgent.start(),
      FakeSpireAgent.start(),
    ]);
    defer(
      () => booksAgent.close(),
      () => webAgent.close(),
    );
    const booksSvid = ca.issue(BOOKS);
    // The agent may hand out several SVIDs; the proxy takes the one for identity.id.
    booksAgent.send({
      svids: [svidMessage(ca.issue(WEB), ca.bundle), svidMessage(booksSvid, ca.bundle)],
    });
    webAgent.send({ svids: [svidMessage(ca.issue(WEB), ca.bundle)] });

    const app = await echoApp();
    const echo = await tcpEcho();
    defer(
      () => app.close(),
      () => echo.close(),
    );
    const section = (id: string, agent: FakeSpireAgent) => ({
      trustDomain: TD,
      id,
      workloadApi: { socket: agent.address },
    });
    const pair = await meshPair(
      { books: section(BOOKS, booksAgent), web: section(WEB, webAgent) },
      app.address,
      echo.port,
    );
    defer(
      () => pair.books.stop(),
      () => pair.web.stop(),
      () => pair.relay.close(),
    );
    await Promise.all([ready(pair.books), ready(pair.web)]);

    // web → books over mTLS; the app sees the verified client identity.
    const r = await get(pair.web.addresses.outbound as string, "books", "/hello");
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).headers["mesh-client-id"]).toBe(WEB);
    const inbound = pair.books.addresses.inbound as string;
    const client = ca.issue(WEB);
    expect(await inboundSerial(inbound, client)).toBe(booksSvid.serialNumber);
    const metrics = (await admin(pair.books, "/metrics")).body;
    expect(metric(metrics, "identity_cert_refresh_total", 'source="workload-api"')).toBe(1);

    // The agent rotates books' SVID: the proxy logs it and serves it on new connections;
    // the web → books HTTP/2 connection carries on.
    const rotated = ca.issue(BOOKS);
    const inUse = pair.books.waitForLog(
      (l) => l.msg === "identity certificate in use" && l.serialNumber === rotated.serialNumber,
    );
    booksAgent.send({ svids: [svidMessage(rotated, ca.bundle)] });
    await inUse;
    expect(await inboundSerial(inbound, client)).toBe(rotated.serialNumber);
    const again = await get(pair.web.addresses.outbound as string, "books", "/again");
    expect(again.status).toBe(200);
    expect(pair.relay.accepted).toBe(1);
    expect(booksAgent.calls).toBe(1);
  });
});
