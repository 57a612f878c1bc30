/**
 * Soak scenarios for `npm run bench` (`--only soak`): long runs must stay flat.
 *
 * - soak_pmap: one `pmap` of 1,000,000 tiny items (after a warm-up map of 100,000), default
 *   options: auto batches of a thousand or more, so it is quick.
 * - soak_pmap_batched: the same with `batchSize: 10`, so the map is 100,000 calls long.
 * - soak_refs: 100,000 refs created with `remotecall`, fetched and freed, 200 in flight (after
 *   a warm-up of 20,000, in which the workers' V8 heaps grow to their working size).
 *
 * Each reports the RSS of the driver and of each worker (VmRSS of /proc/<ospid>/status) at the
 * start (after the warm-up), the middle and the end, and checks that the log holds every event
 * of the run: the map's history is contiguous from map.started to map.finished, and every ref has
 * exactly created, ready, freed. Goal: under 50 MB of growth in any process.
 * Each sample also gives every process's RSS and live heap after a full GC (bench/soak-tasks.ts),
 * so growth in RSS can be told apart: garbage waiting for a major GC, or a leak. The goal is on
 * the RSS before that GC, what the system sees.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'colony';
import type { RemoteRef } from 'colony';
import { echo } from './tasks.ts';
import { afterGc, workerAfterGc } from './soak-tasks.ts';

type Emit = (line: Record<string, unknown>) => void;

const TASKS = new URL('./tasks.ts', import.meta.url);
const SOAK_TASKS = new URL('./soak-tasks.ts', import.meta.url);
const PMAP_ITEMS = 1_000_000;
const PMAP_WARMUP = 100_000;
const PMAP_SMALL_BATCH = 10;
const REFS = 100_000;
const REFS_WARMUP = 20_000;
const REFS_IN_FLIGHT = 200;
const GOAL_MB = 50;

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

/**
 * MB by process (`driver` and worker pids): RSS as the system sees it, garbage included; then,
 * after a full collection in each process, the RSS again and the live V8 heap. RSS that grows
 * while the after-GC figures stay flat is garbage waiting for a major GC, not a leak.
 */
interface Rss {
  rss: Record<string, number>;
  rss_after_gc: Record<string, number>;
  live_heap: Record<string, number>;
}

function vmRssMb(ospid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${ospid}/status`, 'utf8'));
  return m ? round(Number(m[1]) / 1024) : Number.NaN;
}

async function sample(cluster: Cluster): Promise<Rss> {
  const info = cluster.workerInfo();
  const rss: Record<string, number> = { driver: round(process.memoryUsage().rss / 2 ** 20) };
  for (const w of info) rss[w.pid] = vmRssMb(w.ospid);
  const d = afterGc();
  const rss_after_gc: Record<string, number> = { driver: d.rss };
  const live_heap: Record<string, number> = { driver: d.heap };
  for (const w of info) {
    const g = await cluster.remotecallFetch(workerAfterGc, w.pid);
    rss_after_gc[w.pid] = g.rss;
    live_heap[w.pid] = g.heap;
  }
  return { rss, rss_after_gc, live_heap };
}

const label = (k: string) => (k === 'driver' ? k : `worker_${k}`);

/** Growth from `start` to `end` of one figure, by process, and its largest. */
function delta(start: Record<string, number>, end: Record<string, number>): Record<string, number> {
  const by: Record<string, number> = {};
  for (const k of Object.keys(start)) by[label(k)] = round((end[k] ?? Number.NaN) - start[k]!);
  return by;
}

function growth(start: Rss, end: Rss) {
  const by = delta(start.rss, end.rss);
  return { max: Math.max(...Object.values(by)), by, afterGc: delta(start.rss_after_gc, end.rss_after_gc), liveHeap: delta(start.live_heap, end.live_heap) };
}

async function withCluster<T>(fn: (cluster: Cluster) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'colony-bench-soak-'));
  let cluster: Cluster | null = null;
  try {
    cluster = await Cluster.start({ workers: 2, stateDir: dir, workerOutput: 'ignore' });
    await cluster.everywhere(TASKS);
    await cluster.everywhere(SOAK_TASKS);
    return await fn(cluster);
  } finally {
    await cluster?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Whether `seqs` is 1, 2, ..., n. */
function contiguous(seqs: number[]): boolean {
  return seqs.every((s, i) => s === i + 1);
}

/** soak_pmap: default options, which batch these items by the thousand. */
function soakPmap(cluster: Cluster): Promise<Record<string, unknown>> {
  return pmapSoak(cluster, 'soak_pmap', 'auto');
}

/** soak_pmap_batched: batches of 10, so the run is 100,000 calls long. */
function soakPmapBatched(cluster: Cluster): Promise<Record<string, unknown>> {
  return pmapSoak(cluster, 'soak_pmap_batched', PMAP_SMALL_BATCH);
}

async function pmapSoak(cluster: Cluster, scenario: string, batchSize: number | 'auto'): Promise<Record<string, unknown>> {
  const warm = Array.from({ length: PMAP_WARMUP }, (_, i) => i);
  await cluster.pmap(echo, warm, { batchSize });
  const items = Array.from({ length: PMAP_ITEMS }, (_, i) => i);
  const start = await sample(cluster);
  let middle: Promise<Rss> | null = null;
  const id = `soak${Date.now().toString(36)}`;
  const t0 = performance.now();
  const out = await cluster.pmap(echo, items, {
    id,
    batchSize,
    onProgress: (done) => {
      if (!middle && done >= PMAP_ITEMS / 2) middle = sample(cluster);
    },
  });
  const ms = performance.now() - t0;
  await cluster.flush();
  const end = await sample(cluster);
  if (out.length !== PMAP_ITEMS || out[PMAP_ITEMS - 1] !== PMAP_ITEMS - 1) throw new Error('pmap returned wrong results');
  const events = await cluster.events.history(`map.${id}`);
  const types = events.map((e) => e.type);
  const last = events.at(-1);
  const logOk = contiguous(events.map((e) => e.seq)) && types[0] === 'map.started' && last?.type === 'map.finished' &&
    (last.data as { done: number }).done === PMAP_ITEMS && (events[0]!.data as { items: number }).items === PMAP_ITEMS;
  const g = growth(start, end);
  log(`${scenario}: ${PMAP_ITEMS} items in ${round(ms / 1000)} s; growth ${JSON.stringify(g.by)} MB; ${events.length} map events`);
  return {
    scenario,
    items: PMAP_ITEMS,
    batch_size: batchSize,
    ms: round(ms),
    items_per_s: round(PMAP_ITEMS / (ms / 1000), 0),
    start_mb: start,
    middle_mb: await middle,
    end_mb: end,
    rss_growth_mb: g.by,
    rss_after_gc_growth_mb: g.afterGc,
    live_heap_growth_mb: g.liveHeap,
    map_events: events.length,
    map_progressed_events: types.filter((t) => t === 'map.progressed').length,
    log_complete: logOk,
    goal: `RSS growth (garbage included) under ${GOAL_MB} MB in the driver and each worker after a ${PMAP_WARMUP}-item warm-up map; the map's log contiguous from map.started to map.finished (done = items)`,
    ok: g.max < GOAL_MB && logOk,
  };
}

/** `n` refs made, fetched and freed, `REFS_IN_FLIGHT` at a time, alternating workers. Returns their ids. */
async function refRound(cluster: Cluster, n: number, onHalf?: () => void): Promise<string[]> {
  const pids = cluster.workers();
  const ids: string[] = [];
  let next = 0;
  let finished = 0;
  const lane = async () => {
    while (next < n) {
      const i = next++;
      const r = cluster.remotecall(echo, pids[i % pids.length]!, i) as RemoteRef<number>;
      ids.push(r.id);
      const v = await r.fetch();
      if (v !== i) throw new Error(`echo(${i}) returned ${v}`);
      await r.free();
      if (++finished === n >> 1) onHalf?.();
    }
  };
  await Promise.all(Array.from({ length: REFS_IN_FLIGHT }, lane));
  return ids;
}

async function soakRefs(cluster: Cluster): Promise<Record<string, unknown>> {
  await refRound(cluster, REFS_WARMUP);
  await cluster.flush();
  const start = await sample(cluster);
  let middle: Promise<Rss> | null = null;
  const t0 = performance.now();
  const ids = await refRound(cluster, REFS, () => (middle = sample(cluster)));
  const ms = performance.now() - t0;
  await cluster.flush();
  const end = await sample(cluster);
  // The log: every ref of the run has exactly created, ready, freed (seq 1, 2, 3).
  const mine = new Set(ids);
  const perRef = new Map<string, string[]>();
  let events = 0;
  for (const e of await cluster.events.history('ref.>')) {
    if (!mine.has(e.id)) continue;
    events++;
    let list = perRef.get(e.id);
    if (!list) perRef.set(e.id, (list = []));
    list[e.seq - 1] = e.type;
  }
  let incomplete = 0;
  for (const id of ids) {
    const l = perRef.get(id);
    if (!l || l.length !== 3 || l[0] !== 'ref.created' || l[1] !== 'ref.ready' || l[2] !== 'ref.freed') incomplete++;
  }
  const g = growth(start, end);
  log(`soak_refs: ${REFS} refs in ${round(ms / 1000)} s; growth ${JSON.stringify(g.by)} MB; ${events} ref events, ${incomplete} refs incomplete`);
  return {
    scenario: 'soak_refs',
    refs: REFS,
    ms: round(ms),
    refs_per_s: round(REFS / (ms / 1000), 0),
    start_mb: start,
    middle_mb: await middle,
    end_mb: end,
    rss_growth_mb: g.by,
    rss_after_gc_growth_mb: g.afterGc,
    live_heap_growth_mb: g.liveHeap,
    ref_events: events,
    ref_events_expected: 3 * REFS,
    refs_incomplete: incomplete,
    goal: `RSS growth (garbage included) under ${GOAL_MB} MB in the driver and each worker after ${REFS_WARMUP} warm-up refs; every ref's log is created, ready, freed`,
    ok: g.max < GOAL_MB && incomplete === 0 && events === 3 * REFS,
  };
}

/** Runs the soak scenarios, emitting one object per scenario. */
export async function run(emit: Emit): Promise<void> {
  for (const [name, scenario] of [['soak_pmap', soakPmap], ['soak_pmap_batched', soakPmapBatched], ['soak_refs', soakRefs]] as const) {
    try {
      emit(await withCluster(scenario));
    } catch (e) {
      emit({ scenario: name, ok: false, error: `${(e as Error).name}: ${(e as Error).message}` });
    }
  }
}
