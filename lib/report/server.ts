/**
 * The live training dashboard: a small HTTP server (node:http) on 127.0.0.1 by default that serves one
 * page, its scripts (Chart.js from the package, no CDN) and the latest validation overlays of each run
 * folder, and pushes the events appended to each `log.jsonl` with Server-Sent Events. The server polls the
 * logs (a stat every `pollMs`), so a run folder that does not exist yet, is empty or ends in a truncated
 * line is shown with what is there and picked up when it grows. Only its own routes answer; anything else
 * (path traversal included) is a 404.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import { assetFiles, assetText, chartSections, classNamesOf, escapeHtml, runsSection } from './assets.js';
import { OVERLAY_FILE, RunLog, thinIterations, type LogEvent } from './runlog.js';

/** Options of {@link startDashboard}. */
export interface DashboardOptions {
  /** Run folders (training output folders with `log.jsonl`); several are drawn on the same axes. */
  runs: string[];
  /** Address to bind (default 127.0.0.1: this machine only). */
  host?: string;
  /** Port (default 0: any free port). */
  port?: number;
  /** How often the logs are checked for new lines, in ms (default 500). */
  pollMs?: number;
  /** Page title (default: the run names). */
  title?: string;
}

/** A running dashboard. */
export interface Dashboard {
  /** The page's address, e.g. `http://127.0.0.1:8080/`. */
  url: string;
  host: string;
  port: number;
  /** Stops polling, ends the event streams and closes the server. */
  close(): Promise<void>;
}

function page(title: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><link rel="icon" href="data:,"><link rel="stylesheet" href="assets/style.css">
</head><body data-mode="live">
<header><h1>semiseg · ${escapeHtml(title)}</h1><span class="status" id="status">connecting…</span></header>
<main>
${runsSection()}
${chartSections()}
<section><h2>Latest validation: image | reference | prediction</h2><div id="overlays"></div>
<p class="note">Class colours: 1 red, 2 green, 3 blue, 4 yellow.</p></section>
</main>
<script src="assets/chart.js"></script><script src="assets/app.js"></script>
</body></html>
`;
}

const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'",
  'Referrer-Policy': 'no-referrer',
};

/**
 * Starts the dashboard over `runs` and resolves once it listens. A port in use or an address that cannot
 * be bound rejects with one line naming it.
 */
export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  if (!Array.isArray(o.runs) || o.runs.length === 0) throw new Error('dashboard: give at least one run folder');
  const host = o.host ?? '127.0.0.1';
  const logs = o.runs.map((dir) => new RunLog(dir));
  // distinct names when two folders share a basename
  const names = logs.map((l, i) => (logs.filter((m) => m.name === l.name).length > 1 ? `${l.name} (${i + 1})` : l.name));
  const title = o.title ?? names.join(', ');
  const html = page(title);
  const assets = assetFiles();
  const clients = new Set<ServerResponse>();
  for (const l of logs) {
    l.poll();
    l.overlaysChanged();
  }

  const snapshot = () => {
    const recipe = logs.flatMap((l) => l.events).find((e) => e.type === 'start')?.recipe as string | undefined;
    return {
      classNames: classNamesOf(recipe),
      runs: logs.map((l, i) => ({ name: names[i], dir: l.dir, status: l.status, events: thinIterations(l.events, 5000), overlays: l.overlays() })),
    };
  };
  const send = (res: ServerResponse, event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  const broadcast = (event: string, data: unknown) => {
    for (const c of clients) send(c, event, data);
  };

  const poll = () => {
    let reset = false;
    logs.forEach((l, i) => {
      const fresh = l.poll();
      if (fresh === 'reset') reset = true;
      else if (fresh.length > 0) broadcast('append', { run: i, events: fresh as LogEvent[] });
      if (l.overlaysChanged()) {
        const index = l.overlays();
        if (index) broadcast('overlays', { run: i, index });
      }
    });
    if (reset && clients.size > 0) broadcast('snapshot', snapshot());
  };
  const timer = setInterval(poll, o.pollMs ?? 500);
  const heartbeat = setInterval(() => {
    for (const c of clients) c.write(': keep-alive\n\n');
  }, 15000);

  const notFound = (res: ServerResponse) => {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
    res.end('not found\n');
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
      res.end('method not allowed\n');
      return;
    }
    // the raw path, undecoded: '..', '%2e%2e', '%2f' and backslashes simply match no route
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', ...SECURITY_HEADERS });
      res.end(req.method === 'HEAD' ? undefined : html);
      return;
    }
    if (path === '/events') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', ...SECURITY_HEADERS });
      res.write('retry: 2000\n\n');
      clients.add(res);
      req.on('close', () => clients.delete(res));
      send(res, 'snapshot', snapshot());
      return;
    }
    let m = /^\/assets\/([a-z]+\.(?:js|css))$/.exec(path);
    if (m && Object.hasOwn(assets, m[1])) {
      res.writeHead(200, { 'Content-Type': assets[m[1]].type, 'Cache-Control': 'no-cache', ...SECURITY_HEADERS });
      res.end(req.method === 'HEAD' ? undefined : assetText(m[1]));
      return;
    }
    m = /^\/runs\/(\d{1,4})\/overlays\/([^/]+)$/.exec(path);
    if (m && Number(m[1]) < logs.length && OVERLAY_FILE.test(m[2])) {
      let png: Buffer;
      try {
        png = readFileSync(join(logs[Number(m[1])].dir, 'overlays', m[2]));
      } catch {
        notFound(res);
        return;
      }
      res.writeHead(200, { 'Content-Type': 'image/png', 'Cache-Control': 'no-cache', ...SECURITY_HEADERS });
      res.end(req.method === 'HEAD' ? undefined : png);
      return;
    }
    notFound(res);
  };

  const server: Server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(`error: ${(err as Error).message}\n`);
    }
  });
  const stop = () => {
    clearInterval(timer);
    clearInterval(heartbeat);
  };
  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      stop();
      const where = `${host}:${o.port ?? 0}`;
      if (err.code === 'EADDRINUSE') reject(new Error(`dashboard: port ${o.port} on ${host} is in use (choose another with --port, or 0 for any free one)`));
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') reject(new Error(`dashboard: cannot listen on ${where}: no such local address`));
      else if (err.code === 'EACCES') reject(new Error(`dashboard: not allowed to listen on ${where} (ports below 1024 need privileges)`));
      else reject(new Error(`dashboard: cannot listen on ${where}: ${err.message}`));
    });
    server.listen(o.port ?? 0, host, () => resolvePromise());
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/`,
    host,
    port,
    close: () =>
      new Promise<void>((done) => {
        stop();
        for (const c of clients) c.end();
        clients.clear();
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
