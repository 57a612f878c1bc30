/**
 * Soak scenarios for `npm run bench` (`--only soak`): long runs must stay flat.
 *
 * - soak_pmap: one `pmap` of 1,000,000 tiny items (after a warm-up map of 100,000).
 * - soak_refs: 100,000 refs created with `remotecall`, fetched and freed, 200 in flight (after
 *   a warm-up of 5,000).
 *
 * Each reports the RSS of the driver and of each worker (VmRSS of /proc/<ospid>/status) at the
 * start (after the warm-up), the middle and the end, and checks that the log holds every event
 * of the run: the map's history is contiguous from map.started to map.finished, and every ref has
 * exactly created, ready, freed. Goal: under 50 MB of growth in any process.
 * Each sample also gives every process's live heap after a full GC (bench/soak-tasks.ts), so
 * growth in RSS can be told apart: garbage and allocator slack, or a leak.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'colony';
import type { RemoteRef } from 'colony';
import { echo } from './tasks.ts';
import { liveHeapMb, workerLiveHeapMb } from './soak-tasks.ts';

type Emit = (line: Record<string, unknown>) => void;

const TASKS = new URL('./tasks.ts', import.meta.url);
const SOAK_TASKS = new URL('./soak-tasks.ts', import.meta.url);
const PMAP_ITEMS = 1_000_000;
const PMAP_WARMUP = 100_000;
const REFS = 100_000;
const REFS_WARMUP = 5_000;
const REFS_IN_FLIGHT = 200;
const GOAL_MB = 50;

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

/** RSS in MB of the driver and of each worker (by pid), and their live heaps after a full GC. */
interface Rss {
  driver: number;
  workers: Record<string, number>;
  live_heap: Record<string, number>;
}

function vmRssMb(ospid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${ospid}/status`, 'utf8'));
  return m ? round(Number(m[1]) / 1024) : Number.NaN;
}

/**
 * RSS as the system sees it (garbage included), then each process's live heap after a full
 * collection: RSS that grows while the live heap stays flat is garbage or allocator slack, not a leak.
 */
async function sample(cluster: Cluster): Promise<Rss> {
  const info = cluster.workerInfo();
  const workers: Record<string, number> = {};
  for (const w of info) workers[w.pid] = vmRssMb(w.ospid);
  const driver = round(process.memoryUsage().rss / 2 ** 20);
  const live_heap: Record<string, number> = { driver: liveHeapMb() };
  for (const w of info) live_heap[w.pid] = await cluster.remotecallFetch(workerLiveHeapMb, w.pid);
  return { driver, workers, live_heap };
}

/** The largest growth from `start` to `end` over the driver and the workers, and by process. */
function growth(start: Rss, end: Rss): { max: number; by: Record<string, number>; liveHeap: Record<string, number> } {
  const by: Record<string, number> = { driver: round(end.driver - start.driver) };
  for (const pid of Object.keys(start.workers)) by[`worker_${pid}`] = round((end.workers[pid] ?? Number.NaN) - start.workers[pid]!);
  const liveHeap: Record<string, number> = {};
  for (const k of Object.keys(start.live_heap)) liveHeap[k === 'driver' ? k : `worker_${k}`] = round((end.live_heap[k] ?? Number.NaN) - start.live_heap[k]!);
  return { max: Math.max(...Object.values(by)), by, liveHeap };
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

async function soakPmap(cluster: Cluster): Promise<Record<string, unknown>> {
  const warm = Array.from({ length: PMAP_WARMUP }, (_, i) => i);
  await cluster.pmap(echo, warm);
  const items = Array.from({ length: PMAP_ITEMS }, (_, i) => i);
  const start = await sample(cluster);
  let middle: Promise<Rss> | null = null;
  const id = `soak${Date.now().toString(36)}`;
  const t0 = performance.now();
  const out = await cluster.pmap(echo, items, {
    id,
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
  log(`soak_pmap: ${PMAP_ITEMS} items in ${round(ms / 1000)} s; growth ${JSON.stringify(g.by)} MB; ${events.length} map events`);
  return {
    scenario: 'soak_pmap',
    items: PMAP_ITEMS,
    ms: round(ms),
    items_per_s: round(PMAP_ITEMS / (ms / 1000), 0),
    rss_start_mb: start,
    rss_middle_mb: await middle,
    rss_end_mb: end,
    growth_mb: g.by,
    live_heap_growth_mb: g.liveHeap,
    map_events: events.length,
    map_progressed_events: types.filter((t) => t === 'map.progressed').length,
    log_complete: logOk,
    goal: `growth under ${GOAL_MB} MB in the driver and each worker after a ${PMAP_WARMUP}-item warm-up; the map's log contiguous from map.started to map.finished (done = items)`,
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
    rss_start_mb: start,
    rss_middle_mb: await middle,
    rss_end_mb: end,
    growth_mb: g.by,
    live_heap_growth_mb: g.liveHeap,
    ref_events: events,
    ref_events_expected: 3 * REFS,
    refs_incomplete: incomplete,
    goal: `growth under ${GOAL_MB} MB in the driver and each worker after ${REFS_WARMUP} warm-up refs; every ref's log is created, ready, freed`,
    ok: g.max < GOAL_MB && incomplete === 0 && events === 3 * REFS,
  };
}

/** Runs the soak scenarios, emitting one object per scenario. */
export async function run(emit: Emit): Promise<void> {
  for (const [name, scenario] of [['soak_pmap', soakPmap], ['soak_refs', soakRefs]] as const) {
    try {
      emit(await withCluster(scenario));
    } catch (e) {
      emit({ scenario: name, ok: false, error: `${(e as Error).name}: ${(e as Error).message}` });
    }
  }
}
