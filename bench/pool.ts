/**
 * Elastic pool scenarios for `npm run bench` (wired in by bench/run.ts: `--only pool`).
 *
 * - pool_ramp: under the real Slurm, a pool from 0 to 4 workers for a pmap of 200 items of
 *   50 ms. Reports the time to the first and the last result, the worker-seconds the pool's
 *   workers were up during the map (and until they retired) against the ideal (the item time,
 *   10 s, spread over 4 workers: 2.5 s of wall time), the jobs submitted, and the scheduler's
 *   own submit-to-start times (from the adapter actor's events).
 *   Goal: the map ends within 1.3 x the ideal plus the scheduler's share (what its start times
 *   add: the ideal end given when each job started, minus the ideal), with no more jobs
 *   submitted than max. Items block their worker for 50 ms without using a core (Atomics.wait),
 *   so the measure is the pool's ramp, not how many cores the machine has.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Envelope } from '../actors/index.ts';
import { SlurmManager } from '../adapters/slurm-manager.ts';
import { Cluster } from '../runtime/index.ts';
import { occupy } from '../test/fixtures/pool-tasks.ts';
import { slurmGate } from '../test/schedulers/gate.ts';
import { withFloor } from './floors.ts';

type Emit = (line: Record<string, unknown>) => void;

const POOL_TASKS = new URL('../test/fixtures/pool-tasks.ts', import.meta.url);
const ITEMS = 200;
const ITEM_MS = 50;
const MAX = 4;
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : 0;
};

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

async function poolRamp(emit: Emit): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'colony-bench-pool-'));
  let cluster: Cluster | null = null;
  const manager = new SlurmManager({ partition: 'main', time: 600, jobDir: join(dir, 'jobs') });
  try {
    cluster = await Cluster.start({ workers: 0, stateDir: dir, workerOutput: 'ignore' });
    await cluster.everywhere(POOL_TASKS);
    const pool = await cluster.pool(manager, { min: 0, max: MAX, spawnIntervalMs: 100, spawnCount: 1, maxQueued: MAX, idleMs: 1000 });
    const items = Array.from({ length: ITEMS }, (_, i) => i);
    let first = 0;
    const t0 = Date.now();
    const out = await cluster.pmap(occupy, items, { shared: ITEM_MS, onProgress: () => { first ||= Date.now(); } });
    const end = Date.now();
    if (out.length !== ITEMS || out.some((r, i) => r.item !== i)) throw new Error('pmap returned wrong results');
    const t = Date.now();
    while (pool.status().workers > 0 && Date.now() - t < 30_000) await new Promise((r) => setTimeout(r, 100));
    await pool.close();
    await cluster.flush();
    const evs = await cluster.events.history(`pool.${pool.id}`);
    const adapter = await cluster.events.history(`adapter.${manager.id}`);
    const joinedAt = new Map<number, number>();
    const retiredAt = new Map<number, number>();
    for (const e of evs) {
      const d = e.data as { pid?: number };
      if (e.type === 'pool.worker.joined') joinedAt.set(d.pid!, e.at);
      if (e.type === 'pool.worker.retired') retiredAt.set(d.pid!, e.at);
    }
    let duringMap = 0;
    let untilRetired = 0;
    for (const [pid, j] of joinedAt) {
      duringMap += Math.max(0, Math.min(end, retiredAt.get(pid) ?? end) - j);
      untilRetired += (retiredAt.get(pid) ?? Date.now()) - j;
    }
    const queuedAt = new Map<string, number>();
    const latencies: number[] = [];
    let firstStart = 0;
    for (const e of adapter as Envelope<{ units?: string[]; unit?: string }>[]) {
      if (e.type === 'adapter.queued') for (const u of e.data.units ?? []) queuedAt.set(u, e.at);
      if (e.type === 'adapter.started' && e.data.unit) {
        const q = queuedAt.get(e.data.unit);
        if (q !== undefined) latencies.push(e.at - q);
        if (!firstStart) firstStart = e.at;
      }
    }
    // Colony's own share of each start: from the job running to its worker joining the pool
    // (node and the runtime booting, registration, the tasks module loading).
    const startedAts = (adapter as Envelope<{ unit?: string }>[]).filter((e) => e.type === 'adapter.started').map((e) => e.at).sort((a, b) => a - b);
    const joinedAts = [...joinedAt.values()].sort((a, b) => a - b);
    const startToJoin = joinedAts.map((j, i) => j - (startedAts[i] ?? j));
    const jobs = evs.filter((e) => e.type === 'pool.spawned').reduce((n, e) => n + (e.data as { count: number }).count, 0);
    const idealWall = (ITEMS * ITEM_MS) / MAX;
    // The best any pool could do once the scheduler starts the jobs when it did: the end T at which
    // the workers, each from its job's start, add up to the item time (sum of T - start_i = 10 s).
    const starts = startedAts.slice(0, MAX).map((x) => x - t0);
    let idealWithStarts = idealWall;
    for (let k = starts.length; k >= 1; k--) {
      const T = (ITEMS * ITEM_MS + starts.slice(0, k).reduce((a, b) => a + b, 0)) / k;
      if (k === starts.length || T <= starts[k]!) {
        idealWithStarts = T;
        if (T >= starts[k - 1]!) break;
      }
    }
    const schedulerMs = idealWithStarts - idealWall;
    const lastMs = end - t0;
    const goalMs = 1.3 * idealWall + schedulerMs;
    log(`pool_ramp: first ${first - t0} ms, last ${lastMs} ms, ${jobs} jobs, scheduler to first start ${schedulerMs} ms`);
    emit({
      scenario: 'pool_ramp',
      items: ITEMS,
      item_ms: ITEM_MS,
      max: MAX,
      first_result_ms: first - t0,
      last_result_ms: lastMs,
      ideal_wall_ms: idealWall,
      first_start_ms: firstStart ? firstStart - t0 : null,
      ideal_with_starts_ms: round(idealWithStarts, 0),
      scheduler_ms: round(schedulerMs, 0),
      submit_to_start_ms: latencies.map((x) => round(x, 0)),
      submit_to_start_median_ms: round(median(latencies), 0),
      start_to_join_ms: startToJoin,
      joined_at_ms: joinedAts.map((j) => j - t0),
      worker_s_during_map: round(duringMap / 1000, 2),
      worker_s_until_retired: round(untilRetired / 1000, 2),
      ideal_worker_s: round((ITEMS * ITEM_MS) / 1000, 2),
      jobs_submitted: jobs,
      ...withFloor('last_result_ms', lastMs, 'floor_ms', round(idealWithStarts, 0), 'time',
        'the end no pool could beat once the scheduler started the jobs when it did (the item time over the workers, each from its job start; no worker boot, no Colony)'),
      workers_used: new Set(out.map((r) => r.pid)).size,
      goal: `last_result_ms <= 1.3 x ideal_wall_ms + scheduler_ms (${round(goalMs, 0)}; scheduler_ms: what the jobs' start times add to the ideal) and jobs_submitted <= ${MAX}`,
      ok: lastMs <= goalMs && jobs <= MAX,
    });
  } finally {
    await cluster?.close();
    await manager.close();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function run(emit: Emit): Promise<void> {
  const slurm = await slurmGate();
  if (slurm.up) await poolRamp(emit);
  else emit({ scenario: 'pool_ramp', skipped: slurm.reason, ok: true });
}
