/**
 * The dashboard's web server (Node's http, nothing else): the page and its bundle, a server-sent
 * event stream (a snapshot of the model, then deltas), the event tail with a subject filter and
 * an actor's replayed timeline. It answers GET and HEAD only: it never changes the cluster.
 */
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { ActorKind, Envelope } from '../../actors/events.ts';
import { replayActor } from '../log/replay.ts';
import { InvalidArgumentError } from '../transport/errors.ts';
import { access } from './dashboard-access.ts';
import { DashboardFeed } from './dashboard-feed.ts';
import type { FeedSource } from './dashboard-feed.ts';
import type { Delta, Model } from './dashboard-model.ts';
import { BUNDLE_DIR, PAGE_DIR, ensurePage } from './page-bundle.ts';

/** Options of {@link startDashboard}. */
export interface DashboardOptions {
  /**
   * The port; 0 takes any free one. When the default port is busy, a free one is taken instead.
   * @default 8787 (Dask's)
   */
  port?: number;
  /** The address to listen on. Any other than 127.0.0.1, localhost or ::1 needs the token. @default '127.0.0.1' */
  host?: string;
}

export const DEFAULT_PORT = 8787;
export const DEFAULT_HOST = '127.0.0.1';
/** Events a page gets with its first snapshot. */
const SNAPSHOT_LOG = 1000;

export interface Dashboard {
  /** The address to open, with `?token=...` when one is needed. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly token: string | null;
  readonly feed: DashboardFeed;
  close(): Promise<void>;
}

/** What a snapshot message carries. */
export interface Snapshot {
  now: number;
  live: boolean;
  model: Model;
}

/** Starts a dashboard on a cluster (running or stopped) or on envelopes read from a file. */
export async function startDashboard(source: FeedSource, opts: DashboardOptions = {}): Promise<Dashboard> {
  const host = opts.host ?? DEFAULT_HOST;
  if (typeof host !== 'string' || !host) throw new InvalidArgumentError('host', `must be an address to listen on, got ${String(opts.host)}`);
  const port = opts.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('port', `must be a port number 0-65535, got ${String(opts.port)}`);
  await ensurePage();
  const feed = await DashboardFeed.open(source);
  const gate = access(host);
  const streams = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    void handle(req, res).catch((e) => {
      const status = (e as Error).name === 'InvalidArgumentError' ? 400 : 500;
      if (!res.headersSent) send(res, status, 'text/plain', `dashboard: ${(e as Error).message}\n`);
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const denied = gate.check(req, url);
    if (denied) return send(res, denied.status, 'text/plain', `${denied.message}\n`);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, 'text/plain', 'the dashboard only reads\n');
    }
    switch (url.pathname) {
      case '/':
      case '/index.html':
        return send(res, 200, 'text/html; charset=utf-8', await page(gate.token));
      case '/app.js':
        return send(res, 200, 'text/javascript; charset=utf-8', await readFile(join(BUNDLE_DIR, 'app.js')));
      case '/app.css':
        return send(res, 200, 'text/css; charset=utf-8', await readFile(join(BUNDLE_DIR, 'app.css')));
      case '/api/state':
        return send(res, 200, 'application/json', toJson(snapshot(feed)));
      case '/api/stream':
        return stream(req, res);
      case '/api/log': {
        const limit = Math.min(5000, Math.max(1, Number(url.searchParams.get('limit') ?? 500) || 500));
        return send(res, 200, 'application/json', toJson(feed.tail(url.searchParams.get('filter') ?? '>', limit)));
      }
      case '/api/replay':
        return send(res, 200, 'application/json', toJson(await replay(feed, url.searchParams.get('actor') ?? '')));
      default:
        return send(res, 404, 'text/plain', 'not found\n');
    }
  }

  function stream(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    // The other pages get what is pending first, so this page's snapshot is where its deltas start.
    feed.flush();
    res.write(`retry: 1000\nevent: snapshot\ndata: ${toJson(snapshot(feed))}\n\n`);
    const stop = feed.onDelta((d: Delta) => res.write(`data: ${toJson(d)}\n\n`));
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    ping.unref();
    streams.add(res);
    req.on('close', () => {
      stop();
      clearInterval(ping);
      streams.delete(res);
    });
  }

  const boundPort = await listen(server, host, port, opts.port === undefined);
  const shown = host === '0.0.0.0' || host === '::' ? hostname() : host.includes(':') ? `[${host}]` : host;
  const url = `http://${shown}:${boundPort}/${gate.token ? `?token=${gate.token}` : ''}`;
  return {
    url, host, port: boundPort, token: gate.token, feed,
    async close() {
      feed.close();
      for (const r of streams) r.end();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

function listen(server: Server, host: string, port: number, fallback: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      if (fallback && e.code === 'EADDRINUSE' && port !== 0) {
        server.off('error', onError);
        resolve(listen(server, host, 0, false));
        return;
      }
      reject(new InvalidArgumentError('port', `the dashboard cannot listen on ${host}:${port}: ${e.message}`));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as { port: number }).port);
    });
  });
}

/** The page, its asset links carrying the token when there is one. */
async function page(token: string | null): Promise<string> {
  const html = await readFile(join(PAGE_DIR, 'index.html'), 'utf8');
  return token ? html.replace(/(href|src)="(app\.(?:css|js))"/g, `$1="$2?token=${token}"`) : html;
}

function snapshot(feed: DashboardFeed): Snapshot {
  const m = feed.model;
  return { now: Date.now(), live: feed.live, model: { ...m, log: m.log.slice(-SNAPSHOT_LOG) } };
}

/** An actor's timeline, replayed through its machine; the raw events when it has none here. */
async function replay(feed: DashboardFeed, actor: string): Promise<unknown> {
  const m = /^([a-z]+)\/([A-Za-z0-9_.-]+)$/.exec(actor);
  if (!m) throw new InvalidArgumentError('actor', `expected <kind>/<id> such as worker/2, got '${actor}'`);
  const [, kind, id] = m as unknown as [string, ActorKind, string];
  const events = await feed.actorEvents(kind, id);
  const raw = (list: Envelope[]) => list.map((e) => ({ seq: e.seq, type: e.type, from: e.from ?? '', to: e.to, at: e.at }));
  if (!events.length) return { actor, events: 0, state: null, timeline: [], replayed: false };
  try {
    const r = replayActor(events, { verify: false });
    return { actor, events: r.events, state: r.state, timeline: r.timeline, replayed: true, data: events.map((e) => e.data) };
  } catch (e) {
    return { actor, events: events.length, state: events.at(-1)!.to, timeline: raw(events), replayed: false, note: (e as Error).message, data: events.map((x) => x.data) };
  }
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    // Everything comes from this server: no CDN, no inline script.
    'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** JSON that survives what msgpack can carry: bigints, Maps, Sets, typed arrays. */
export function toJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => {
    if (typeof x === 'bigint') return `${x}n`;
    if (x instanceof Map) return Object.fromEntries(x);
    if (x instanceof Set) return [...x];
    if (ArrayBuffer.isView(x)) return `[${x.constructor.name} ${(x as Uint8Array).length}]`;
    return x;
  });
}
