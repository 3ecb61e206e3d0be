// The @mesh dashboard page: renders the snapshots `mesh-proxy dashboard` pushes on /events
// (server-sent events) and relays a live tap from /tap. Plain browser JavaScript, no build
// step: sparklines and the topology are hand-drawn SVG (a charting library would be larger
// than this file and draw nothing these few polylines do not).

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const pct = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(2)}%`);
const rps = (v) => (v === null || v === undefined ? "—" : `${v.toFixed(1)}rps`);
const ms = (v) => (v === null || v === undefined ? "—" : `${Math.round(v)}ms`);
const successClass = (v) =>
  v === null || v === undefined ? "muted" : v >= 0.99 ? "ok" : v >= 0.95 ? "warn" : "bad";
/** The short name of a SPIFFE ID: its service account. */
const shortId = (id) => (id ? (id.match(/\/sa\/([^/]+)$/)?.[1] ?? id) : "");

/** A 100×22 sparkline of the values (null = no data there). */
function sparkline(values, { max, color = "#5aa2ff" } = {}) {
  const w = 100;
  const h = 22;
  const finite = values.filter((v) => v !== null && Number.isFinite(v));
  if (finite.length === 0) return `<svg class="spark" width="${w}" height="${h}"></svg>`;
  const top = max ?? Math.max(...finite, 1e-9);
  const bottom = max === 1 ? Math.min(...finite, 0.9) : 0;
  const step = values.length > 1 ? w / (values.length - 1) : w;
  let d = "";
  let pen = false;
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      pen = false;
      return;
    }
    const y = h - 2 - ((v - bottom) / (top - bottom || 1)) * (h - 4);
    d += `${pen ? "L" : "M"}${(i * step).toFixed(1)},${y.toFixed(1)}`;
    pen = true;
  });
  return `<svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"/></svg>`;
}

function trafficRows(snapshot, routes) {
  const head = `<thead><tr><th>proxy</th><th>direction</th><th>authority</th>${routes ? "<th>route</th>" : ""}<th>mTLS</th><th class="num">success</th><th class="num">rps</th><th class="num">p50</th><th class="num">p95</th><th class="num">p99</th><th class="num">requests</th><th>rps</th><th>success</th></tr></thead>`;
  const rows = [];
  for (const p of snapshot.proxies) {
    for (const t of routes ? p.routes.filter((r) => r.direction === "outbound") : p.traffic) {
      rows.push(
        `<tr data-proxy="${esc(p.name)}" data-direction="${esc(t.direction)}" data-authority="${esc(t.authority)}"${routes ? ` data-route="${esc(t.route)}"` : ""} data-requests="${t.total.requests}">` +
          `<td>${esc(p.name)}</td><td>${esc(t.direction)}</td><td>${esc(t.authority)}</td>` +
          (routes ? `<td>${esc(t.route)}</td>` : "") +
          `<td class="${t.mtls === "yes" ? "ok" : t.mtls === "partial" ? "warn" : "muted"}">${esc(t.mtls)}</td>` +
          `<td class="num ${successClass(t.successRate)}">${pct(t.successRate)}</td>` +
          `<td class="num">${rps(t.rps)}</td><td class="num">${ms(t.p50)}</td><td class="num">${ms(t.p95)}</td><td class="num">${ms(t.p99)}</td>` +
          `<td class="num requests">${t.total.requests}</td>` +
          `<td>${sparkline(t.history.rps)}</td><td>${sparkline(t.history.success, { max: 1, color: "#3fb97f" })}</td></tr>`,
      );
    }
  }
  return `${head}<tbody>${rows.join("")}</tbody>`;
}

function endpointRows(snapshot) {
  const head = `<thead><tr><th>proxy</th><th>service</th><th>backend</th><th>endpoint</th><th>identity</th><th>state</th><th class="num">share</th><th class="num">rps</th><th class="num">success</th><th class="num">EWMA</th><th class="num">pending</th></tr></thead>`;
  const rows = [];
  for (const p of snapshot.proxies) {
    for (const e of p.endpoints) {
      rows.push(
        `<tr data-proxy="${esc(p.name)}" data-endpoint="${esc(e.address)}" data-state="${esc(e.state)}">` +
          `<td>${esc(p.name)}</td><td>${esc(e.service)}</td><td>${esc(e.backend)}</td><td>${esc(e.address)}</td>` +
          `<td class="muted">${esc(e.identity ?? "—")}</td>` +
          `<td class="${e.state === "ready" ? "ok" : e.state === "idle" ? "muted" : "bad"}">${esc(e.state)}</td>` +
          `<td class="num">${pct(e.share)}</td><td class="num">${rps(e.rps)}</td>` +
          `<td class="num ${successClass(e.successRate)}">${pct(e.successRate)}</td>` +
          `<td class="num">${ms(e.rttMs)}</td><td class="num">${e.pending}</td></tr>`,
      );
    }
  }
  return `${head}<tbody>${rows.join("")}</tbody>`;
}

function proxyRows(snapshot) {
  const head = `<thead><tr><th>proxy</th><th>state</th><th>admin</th><th>identity</th></tr></thead>`;
  const rows = snapshot.proxies.map(
    (p) =>
      `<tr data-proxy="${esc(p.name)}" data-state="${p.up ? "up" : "down"}"><td>${esc(p.name)}</td>` +
      `<td><span class="badge ${p.up ? "up" : "down"}">${p.up ? "up" : "down"}</span>${p.up ? "" : ` <span class="muted">${esc(p.error)}</span>`}</td>` +
      `<td class="muted">${esc(p.admin)}</td><td class="muted">${esc(p.identity ?? "—")}</td></tr>`,
  );
  return `${head}<tbody>${rows.join("")}</tbody>`;
}

/** Columns by distance from the callers (clients first), nodes spread down each column. */
function layout(nodes, edges) {
  const incoming = new Map(nodes.map((n) => [n.id, 0]));
  for (const e of edges) incoming.set(e.to, (incoming.get(e.to) ?? 0) + 1);
  const depth = new Map();
  const queue = nodes.filter((n) => (incoming.get(n.id) ?? 0) === 0).map((n) => n.id);
  for (const id of queue) depth.set(id, 0);
  while (queue.length > 0) {
    const id = queue.shift();
    for (const e of edges) {
      if (e.from === id && !depth.has(e.to)) {
        depth.set(e.to, depth.get(id) + 1);
        queue.push(e.to);
      }
    }
  }
  for (const n of nodes) if (!depth.has(n.id)) depth.set(n.id, 0);
  const columns = new Map();
  for (const n of nodes) {
    const d = depth.get(n.id);
    if (!columns.has(d)) columns.set(d, []);
    columns.get(d).push(n);
  }
  const pos = new Map();
  const rowH = 78;
  let height = 0;
  for (const [d, list] of columns) {
    list.sort((a, b) => a.id.localeCompare(b.id));
    list.forEach((n, i) => {
      pos.set(n.id, { x: 20 + d * 420, y: 24 + i * rowH });
    });
    height = Math.max(height, list.length * rowH);
  }
  return { pos, width: columns.size * 420 - 250, height: height + 24 };
}

function graph(snapshot) {
  const { nodes, edges } = snapshot;
  const { pos, width, height } = layout(nodes, edges);
  const W = 150;
  const H = 42;
  const parts = [];
  for (const e of edges) {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + W;
    const y1 = a.y + H / 2;
    const x2 = b.x;
    const y2 = b.y + H / 2;
    const mx = (x1 + x2) / 2;
    const label = `${rps(e.rps)} · ${pct(e.successRate)}`;
    parts.push(
      `<g class="edge${e.mtls ? " mtls" : ""}" data-from="${esc(e.from)}" data-to="${esc(e.to)}" data-service="${esc(e.service)}" data-mtls="${e.mtls}" data-identity="${esc(e.identity ?? "")}">` +
        `<path d="M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 4},${y2}" marker-end="url(#arrow)"/>` +
        // Labels sit just before the arrowhead: edges fanning out of one node keep them apart.
        `<text x="${x2 - 10}" y="${y2 - 16}" text-anchor="end">${e.mtls ? "mTLS · " : ""}${esc(label)}</text>` +
        `<text class="id" x="${x2 - 10}" y="${y2 - 5}" text-anchor="end">${esc(e.mtls ? e.identity : "plaintext")}</text></g>`,
    );
  }
  for (const n of nodes) {
    const p = pos.get(n.id);
    const down = !n.up;
    parts.push(
      `<g class="node ${n.kind}${down ? " down" : ""}" data-node="${esc(n.id)}" data-state="${down ? "down" : "up"}" transform="translate(${p.x},${p.y})">` +
        `<rect width="${W}" height="${H}"/>` +
        `<text x="10" y="18">${esc(n.id)}</text>` +
        `<text class="sub" x="10" y="33">${down ? "down" : n.kind === "proxy" ? "mesh-proxy" : n.kind === "clients" ? "unmeshed clients" : "service"}</text></g>`,
    );
  }
  const svg = $("graph");
  svg.setAttribute("viewBox", `0 0 ${Math.max(width, 400)} ${Math.max(height, 120)}`);
  svg.style.height = `${Math.max(height, 120)}px`;
  svg.innerHTML =
    `<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#6d7a96"/></marker></defs>` +
    parts.join("");
}

let lastSnapshot = 0;
function render(snapshot) {
  lastSnapshot = Date.now();
  const up = snapshot.proxies.filter((p) => p.up).length;
  $("status").textContent = `updated ${new Date(snapshot.time).toLocaleTimeString()}`;
  $("status").className = "status";
  $("admins").textContent = `${up}/${snapshot.proxies.length} proxies up`;
  graph(snapshot);
  $("traffic").innerHTML = trafficRows(snapshot, false);
  $("routes").innerHTML = trafficRows(snapshot, true);
  $("proxies").innerHTML = proxyRows(snapshot);
  $("endpoints").innerHTML = endpointRows(snapshot);
  const select = $("tap-admin");
  const have = new Set([...select.options].map((o) => o.value));
  for (const p of snapshot.proxies) {
    if (!have.has(p.name)) select.add(new Option(p.name, p.name));
  }
  document.body.dataset.snapshots = String(Number(document.body.dataset.snapshots ?? 0) + 1);
}

const events = new EventSource("events");
events.addEventListener("snapshot", (e) => render(JSON.parse(e.data)));
events.addEventListener("error", () => {
  $("status").textContent = "dashboard server unreachable, retrying…";
  $("status").className = "status stale";
});
setInterval(() => {
  if (lastSnapshot > 0 && Date.now() - lastSnapshot > 10_000)
    $("status").className = "status stale";
}, 2_000);

// Live tap: one EventSource per started tap, filters from the form.
let tap;
const MAX_TAP_ROWS = 200;
function stopTap() {
  tap?.close();
  tap = undefined;
  $("tap-start").disabled = false;
  $("tap-stop").disabled = true;
  $("tap-state").textContent = "stopped";
}
$("tap-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  stopTap();
  const q = new URLSearchParams();
  for (const [k, v] of new FormData($("tap-form"))) if (v !== "") q.set(k, String(v));
  tap = new EventSource(`tap?${q}`);
  $("tap-start").disabled = true;
  $("tap-stop").disabled = false;
  $("tap-state").textContent = "tapping…";
  const body = $("tap").tBodies[0];
  tap.addEventListener("tap", (e) => {
    const r = JSON.parse(e.data);
    if (r.type === "tap") {
      $("tap-state").textContent = "tapping (live)";
      document.body.dataset.tapLive = String(Number(document.body.dataset.tapLive ?? 0) + 1);
      return;
    }
    if (r.type === "dropped") {
      $("tap-state").textContent = `${r.proxy}: dropped ${r.count} events (too slow)`;
      return;
    }
    const tr = document.createElement("tr");
    tr.dataset.path = r.path;
    tr.dataset.proxy = r.proxy;
    const id = r.clientId ?? r.serverId;
    tr.innerHTML =
      `<td>${new Date(r.ts).toLocaleTimeString()}</td><td>${esc(r.proxy)}</td><td>${r.direction === "inbound" ? "in" : "out"}</td>` +
      `<td>${esc(r.method)}</td><td>${esc(r.authority)}</td><td>${esc(r.path)}</td><td>${esc(r.route ?? "")}</td>` +
      `<td class="num ${r.status >= 500 || r.status === 0 ? "bad" : r.status >= 400 ? "warn" : "ok"}">${r.status}${r.grpcStatus !== undefined ? ` / grpc ${r.grpcStatus}` : ""}</td>` +
      `<td class="num">${r.latencyMs.toFixed(1)}ms</td><td class="num">${r.bytes}B</td>` +
      `<td class="muted">${r.tls ? '<span class="ok">mTLS</span> ' : ""}${esc(shortId(id))}${r.error ? ` <span class="bad">${esc(r.error)}</span>` : ""}</td>`;
    body.prepend(tr);
    while (body.rows.length > MAX_TAP_ROWS) body.deleteRow(-1);
  });
  tap.addEventListener("tap-error", (e) => {
    const r = JSON.parse(e.data);
    $("tap-state").textContent = `${r.proxy}: ${r.error}`;
  });
});
$("tap-stop").addEventListener("click", stopTap);
