/**
 * What the dashboard shows, folded from the log (worker, map, pool and job events), heartbeats
 * and task spans. The same fold runs on the server (the snapshot a page opens with) and in the
 * page (the deltas that follow), so it is pure, plain JSON and imports nothing at run time.
 */
import type { Envelope } from '../../actors/events.ts';
import type { Span, SpanBatch } from '../process/span.ts';

export type { Span, SpanBatch };

/** A worker's heartbeat (`colony.<c>.hb.<pid>`). */
export interface Heartbeat {
  pid: number;
  running?: number;
  completed?: number;
  task?: string | null;
  refs?: Record<string, number>;
  rss?: number;
  at?: number;
}

export interface WorkerView {
  pid: number;
  host: string;
  manager: string;
  ospid: number;
  /** The recorded state: registered, ready, stopping, exited, lost. */
  state: string;
  registeredAt: number;
  endedAt: number | null;
  reason: string | null;
  /** The last heartbeat, with the time it arrived here. */
  hb: (Heartbeat & { seenAt: number }) | null;
  /** Calls seen in spans (a pmap batch counts its items). */
  spanCalls: number;
  /** The task of the last span seen. */
  lastTask: string | null;
}

export interface MapView {
  id: string;
  task: string;
  total: number;
  done: number;
  retried: number;
  /** Items that threw, from the spans of this map's batches (live only). */
  failed: number;
  state: string;
  workers: number[];
  startedAt: number;
  endedAt: number | null;
  error: string | null;
}

/** One point of a pool's history: `[at, size, queued, ready]`. */
export type PoolPoint = [at: number, size: number, queued: number, ready: number];

export interface PoolDecision {
  at: number;
  action: string;
  reason: string;
  ready: number;
  idle: number;
  queued: number;
  running: number;
}

export interface PoolView {
  id: string;
  manager: string;
  state: string;
  reason: string | null;
  workers: number[];
  queued: number;
  ready: number;
  launches: number;
  failures: number;
  series: PoolPoint[];
  decisions: PoolDecision[];
  /** Joins, retirements, launches, failures and pauses, for the chart's marks. */
  marks: { at: number; type: string; text: string }[];
}

export interface JobView {
  id: string;
  name: string;
  cls: string;
  queue: string;
  host: string | null;
  state: string;
  steps: string[];
  done: string[];
  run: number;
  code: number | null;
  reason: string | null;
  tail: string;
  queuedAt: number;
  endedAt: number | null;
}

export interface Model {
  name: string;
  /** True when drawn from the stored log of a stopped cluster. */
  offline: boolean;
  /** When the driver's heartbeat was last seen here. */
  driverSeenAt: number | null;
  workers: Record<string, WorkerView>;
  maps: Record<string, MapView>;
  pools: Record<string, PoolView>;
  jobs: Record<string, JobView>;
  /** Spans per pid, oldest first. */
  spans: Record<string, Span[]>;
  /** The latest events, oldest first. */
  log: Envelope[];
  /** Events seen per kind. */
  counts: Record<string, number>;
  /** The last actor seq folded, per `kind.id` of the kinds folded here (repeats are skipped). */
  seqs: Record<string, number>;
}

/** What the server sends a page every few hundred milliseconds. */
export interface Delta {
  /** The server's clock. */
  now: number;
  events: Envelope[];
  hbs: Heartbeat[];
  spans: SpanBatch[];
  /** Events left out of `events` (a flood of ref events); they are in the log, not in this tail. */
  dropped: number;
}

/** Spans older than this (behind the newest) are let go. */
export const SPAN_KEEP_MS = 15 * 60_000;
/** At most this many spans per process. */
export const SPAN_KEEP_MAX = 20_000;
/** At most this many pool points and decisions kept per pool. */
const POOL_KEEP = 2000;

export function emptyModel(name: string, offline = false): Model {
  return { name, offline, driverSeenAt: null, workers: {}, maps: {}, pools: {}, jobs: {}, spans: {}, log: [], counts: {}, seqs: {} };
}

const FOLDED = new Set(['worker', 'map', 'pool', 'job']);

const num = (v: unknown, d = 0): number => (typeof v === 'number' && Number.isFinite(v) ? v : d);
const str = (v: unknown, d = ''): string => (typeof v === 'string' ? v : v === undefined || v === null ? d : String(v));

/**
 * Folds one event. Returns false when it was seen already (the history and the live feed can
 * overlap). `logMax` bounds the tail kept in `model.log`.
 */
export function applyEvent(m: Model, e: Envelope, logMax: number): boolean {
  if (FOLDED.has(e.kind)) {
    const key = `${e.kind}.${e.id}`;
    if ((m.seqs[key] ?? 0) >= e.seq) return false;
    m.seqs[key] = e.seq;
  }
  m.counts[e.kind] = (m.counts[e.kind] ?? 0) + 1;
  m.log.push(e);
  if (m.log.length > logMax + 256) m.log.splice(0, m.log.length - logMax);
  switch (e.kind) {
    case 'worker':
      workerEvent(m, e);
      break;
    case 'map':
      mapEvent(m, e);
      break;
    case 'pool':
      poolEvent(m, e);
      break;
    case 'job':
      jobEvent(m, e);
      break;
    default:
  }
  return true;
}

function workerEvent(m: Model, e: Envelope): void {
  const d = e.data ?? {};
  let w = m.workers[e.id];
  if (!w) {
    w = m.workers[e.id] = {
      pid: num(d.pid, Number(e.id)), host: '', manager: '', ospid: 0, state: e.to, registeredAt: e.at,
      endedAt: null, reason: null, hb: null, spanCalls: 0, lastTask: null,
    };
  }
  w.state = e.to;
  if (e.type === 'worker.registered') {
    w.host = str(d.host);
    w.manager = str(d.manager);
    w.ospid = num(d.ospid);
    w.registeredAt = e.at;
  } else if (e.type === 'worker.stopping' || e.type === 'worker.lost') {
    w.reason = str(d.reason) || null;
  }
  if (e.type === 'worker.exited' || e.type === 'worker.lost') w.endedAt = e.at;
}

function mapEvent(m: Model, e: Envelope): void {
  const d = e.data ?? {};
  let v = m.maps[e.id];
  if (!v) {
    v = m.maps[e.id] = { id: e.id, task: '', total: 0, done: 0, retried: 0, failed: 0, state: e.to, workers: [], startedAt: e.at, endedAt: null, error: null };
  }
  v.state = e.to;
  switch (e.type) {
    case 'map.started':
      v.task = str(d.task);
      v.total = num(d.items);
      v.workers = Array.isArray(d.workers) ? (d.workers as number[]).slice() : [];
      v.startedAt = e.at;
      break;
    case 'map.item.retried':
      v.retried += Array.isArray(d.items) ? d.items.length : 0;
      break;
    case 'map.worker.joined':
      if (!v.workers.includes(num(d.pid))) v.workers.push(num(d.pid));
      break;
    case 'map.failed':
      v.error = str((d.error as { message?: string } | undefined)?.message, 'failed');
      v.endedAt = e.at;
      break;
    case 'map.finished':
      v.endedAt = e.at;
      break;
    default:
  }
  if ('done' in d) v.done = Math.max(v.done, num(d.done));
}

function pool(m: Model, id: string, at: number): PoolView {
  let p = m.pools[id];
  if (!p) {
    p = m.pools[id] = {
      id, manager: '', state: 'running', reason: null, workers: [], queued: 0, ready: 0, launches: 0, failures: 0,
      series: [], decisions: [], marks: [],
    };
    p.series.push([at, 0, 0, 0]);
  }
  return p;
}

function keep<T>(list: T[]): void {
  if (list.length > POOL_KEEP + 100) list.splice(0, list.length - POOL_KEEP);
}

function poolEvent(m: Model, e: Envelope): void {
  const d = e.data ?? {};
  const p = pool(m, e.id, e.at);
  if (e.to) p.state = e.to;
  const mark = (text: string) => {
    p.marks.push({ at: e.at, type: e.type, text });
    keep(p.marks);
  };
  switch (e.type) {
    case 'pool.started':
      p.manager = str(d.manager);
      break;
    case 'pool.decided': {
      const dec: PoolDecision = {
        at: e.at, action: str(d.action), reason: str(d.reason), ready: num(d.ready), idle: num(d.idle), queued: num(d.queued), running: num(d.running),
      };
      p.decisions.push(dec);
      keep(p.decisions);
      p.queued = dec.queued;
      p.ready = dec.ready;
      p.reason = dec.reason || p.reason;
      break;
    }
    case 'pool.spawned':
      p.launches++;
      mark(`spawned ${num(d.count, 1)}`);
      break;
    case 'pool.worker.joined':
      if (!p.workers.includes(num(d.pid))) p.workers.push(num(d.pid));
      mark(`worker ${num(d.pid)} joined`);
      break;
    case 'pool.worker.retired':
      p.workers = p.workers.filter((x) => x !== num(d.pid));
      mark(`worker ${num(d.pid)} retired (${str(d.reason)})`);
      break;
    case 'pool.launch.failed':
      p.failures++;
      mark(`launch failed (code ${str(d.code, '?')})`);
      break;
    case 'pool.paused':
      p.state = e.to || 'paused';
      p.reason = str(d.reason) || p.reason;
      mark(`paused: ${str(d.reason)}`);
      break;
    case 'pool.resumed':
      mark('resumed');
      break;
    case 'pool.closed':
      p.state = e.to || 'closed';
      mark('closed');
      break;
    default:
  }
  const last = p.series[p.series.length - 1];
  const point: PoolPoint = [e.at, p.workers.length, p.queued, p.ready];
  if (last && last[1] === point[1] && last[2] === point[2] && last[3] === point[3]) return;
  p.series.push(point);
  keep(p.series);
}

function jobEvent(m: Model, e: Envelope): void {
  const d = e.data ?? {};
  let j = m.jobs[e.id];
  if (!j) {
    j = m.jobs[e.id] = {
      id: e.id, name: e.id, cls: '', queue: '', host: null, state: e.to, steps: [], done: [], run: 0, code: null, reason: null, tail: '',
      queuedAt: e.at, endedAt: null,
    };
  }
  j.state = e.to;
  switch (e.type) {
    case 'job.queued': {
      const spec = (d.spec ?? {}) as Record<string, unknown>;
      j.name = str(spec.name, e.id);
      j.cls = str(spec.class);
      j.queue = str(spec.queue);
      j.host = spec.host ? str(spec.host) : j.host;
      j.steps = Array.isArray(spec.steps) ? (spec.steps as unknown[]).map((s) => str(s)) : [];
      j.queuedAt = e.at;
      break;
    }
    case 'job.granted':
      if (d.host) j.host = str(d.host);
      break;
    case 'job.started':
      if (d.host) j.host = str(d.host);
      j.run = num(d.run, j.run + 1);
      j.done = [];
      break;
    case 'job.step.completed':
      j.done.push(str(d.step));
      break;
    case 'job.succeeded':
      j.code = num(d.code);
      j.endedAt = e.at;
      j.tail = d.result === undefined || d.result === null ? j.tail : JSON.stringify(d.result).slice(0, 2000);
      break;
    case 'job.failed':
    case 'job.retrying':
      j.code = typeof d.code === 'number' ? d.code : null;
      j.reason = str(d.reason) || null;
      j.tail = str(d.stderrTail);
      if (e.type === 'job.failed') j.endedAt = e.at;
      break;
    case 'job.cancelled':
      j.reason = `cancelled by ${str(d.by)}`;
      j.endedAt = e.at;
      break;
    default:
  }
}

/** Folds one heartbeat; `seenAt` is the local clock when it arrived. */
export function applyHeartbeat(m: Model, hb: Heartbeat, seenAt: number): void {
  if (hb.pid === 1) {
    m.driverSeenAt = seenAt;
    return;
  }
  const w = m.workers[String(hb.pid)];
  if (w) w.hb = { ...hb, seenAt };
}

/** Folds a batch of spans, then lets go of those too old or too many. */
export function applySpans(m: Model, b: SpanBatch): void {
  if (!b || !Array.isArray(b.spans) || !b.spans.length) return;
  const key = String(b.pid);
  const list = (m.spans[key] ??= []);
  const w = m.workers[key];
  for (const s of b.spans) {
    list.push(s);
    if (w) {
      w.spanCalls += s[5];
      w.lastTask = s[0];
    }
    if (s[4] && s[6] > 0) {
      const map = m.maps[s[4]];
      if (map) map.failed += s[6];
    }
  }
  const newest = list[list.length - 1]![2];
  let drop = Math.max(0, list.length - SPAN_KEEP_MAX);
  while (drop < list.length && list[drop]![2] < newest - SPAN_KEEP_MS) drop++;
  if (drop) list.splice(0, drop);
}

/** Folds a delta from the server. */
export function applyDelta(m: Model, d: Delta, logMax: number, seenAt: number): void {
  for (const e of d.events) applyEvent(m, e, logMax);
  for (const hb of d.hbs) applyHeartbeat(m, hb, seenAt);
  for (const b of d.spans) applySpans(m, b);
}

/**
 * Whether an event's subject tail (`<kind>.<id>`) matches a filter such as `worker.*`, `ref.>`,
 * `worker.2` or `>`: NATS wildcards, token by token.
 */
export function matchesFilter(e: Pick<Envelope, 'kind' | 'id'>, filter: string): boolean {
  const f = filter.trim() || '>';
  const tokens = f.split('.');
  const subject = [e.kind, ...e.id.split('.')];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '>') return subject.length > i;
    if (i >= subject.length) return false;
    if (t !== '*' && t !== subject[i]) return false;
  }
  return tokens.length === subject.length;
}

/** `file:///x/tasks.ts#countHeads` -> `tasks.ts#countHeads`; builtins keep their scope. */
export function shortTask(key: string | null | undefined): string {
  if (!key) return '';
  const i = key.lastIndexOf('#');
  if (i < 0) return key;
  const mod = key.slice(0, i);
  const base = mod.startsWith('colony:') ? mod : mod.slice(mod.lastIndexOf('/') + 1);
  return `${base}#${key.slice(i + 1)}`;
}
