/**
 * Elastic pools against a real batch scheduler (Grid Engine, Slurm): each test file gives the
 * scheduler's manager, its placement and hold options and how to list its queue.
 *
 * - growth: min 0, max 3, a pmap of 30 items of 300 ms grows the pool through the scheduler,
 *   never past max, never with more than maxQueued jobs waiting, spawns spaced by
 *   spawnIntervalMs, results in order; afterwards the workers retire once idle and the jobs
 *   leave the queue; the pool's log replays with --verify.
 * - storm: every job held, a pool with demand submits maxQueued jobs and no more, and says why.
 * - failures: a submit that fails pauses the pool after pauseAfterFailures attempts, with the
 *   scheduler's stderr; nothing is submitted while paused; resume() tries again.
 * - walltime: a worker near its walltime drains and is replaced while work remains; no item
 *   is lost or run twice.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Envelope } from '../../actors/index.ts';
import type { ShellScheduler, ShellSchedulerOptions } from '../../adapters/shell-scheduler.ts';
import { replayActor } from '../../runtime/log/replay.ts';
import type { Cluster } from '../../runtime/index.ts';
import { nap, occupy } from '../fixtures/pool-tasks.ts';
import { startCluster } from '../helpers/cluster.ts';
import type { TestCluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/wait.ts';
import type { Gate } from './gate.ts';

export const POOL_TASKS = new URL('../fixtures/pool-tasks.ts', import.meta.url);

export interface PoolSchedulerSpec {
  title: string;
  scheduler: string;
  gate: Gate;
  make(opts: ShellSchedulerOptions & Record<string, unknown>): ShellScheduler;
  /** Options that place jobs somewhere real (queue or partition, wall time). */
  placed: Record<string, unknown>;
  /** The same with a short wall time, in seconds. */
  shortWalltime(seconds: number): Record<string, unknown>;
  /** Options that submit jobs held. */
  held: Record<string, unknown>;
  /** A target that does not exist, and how the submit command says so. */
  bad: { opts: Record<string, unknown>; stderr: RegExp };
  tools: { submit: string; list: string };
  /** Job ids the scheduler still lists. */
  queueIds(): Promise<string[]>;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** The pool's and its adapter's events. */
async function logOf(cluster: Cluster, poolId: string, adapterId: string): Promise<{ pool: Envelope[]; adapter: Envelope[] }> {
  await cluster.flush();
  return { pool: await cluster.events.history(`pool.${poolId}`), adapter: await cluster.events.history(`adapter.${adapterId}`) };
}

/** The most adapter units waiting in the queue at once, from the adapter's events. */
function maxWaiting(adapter: Envelope[]): number {
  const waiting = new Set<string>();
  let max = 0;
  for (const e of adapter) {
    const d = e.data as { units?: string[]; unit?: string | null };
    if (e.type === 'adapter.queued') for (const u of d.units ?? []) waiting.add(u);
    if ((e.type === 'adapter.started' || e.type === 'adapter.exited' || e.type === 'adapter.failed') && d.unit) waiting.delete(d.unit);
    max = Math.max(max, waiting.size);
  }
  return max;
}

const jobIds = (adapter: Envelope[]) => [...new Set(adapter.filter((e) => e.type === 'adapter.queued').map((e) => (e.data as { jobId: string }).jobId))];

export function describePoolScheduler(s: PoolSchedulerSpec): void {
  describe.runIf(s.gate.run)(s.title, () => {
    let tc: TestCluster;
    beforeAll(async () => {
      tc = await startCluster({ workers: 0 });
      await tc.cluster.everywhere(POOL_TASKS);
    });
    afterAll(async () => {
      await tc?.close();
    });
    const jobDir = () => join(tc.stateDir, 'jobs');
    const gone = (ids: string[]) => waitFor(async () => {
      const q = await s.queueIds();
      return ids.every((id) => !q.includes(id));
    }, { timeoutMs: 60_000, message: `jobs ${ids.join(', ')} to leave ${s.tools.list}` });

    it(`${s.scheduler} is up`, () => {
      expect(s.gate.up, s.gate.reason).toBe(true);
    });

    it(`min 0, max 3: a pmap of 30 items of 300 ms grows the pool through ${s.tools.submit}, results in order; idle workers retire and ${s.tools.list} empties`, async () => {
      const { cluster } = tc;
      const m = s.make({ ...s.placed, jobDir: jobDir() });
      const policy = { min: 0, max: 3, spawnIntervalMs: 700, maxQueued: 1, idleMs: 1500 };
      const pool = await cluster.pool(m, policy);
      let most = 0;
      const sampler = setInterval(() => {
        const st = pool.status();
        most = Math.max(most, st.workers + st.queued);
      }, 20);
      try {
        // Items that take their worker's whole time (one at a time per worker), 300 ms each.
        const out = await cluster.pmap(occupy, range(30), { shared: 300 });
        expect(out.map((r) => r.item)).toEqual(range(30));
        // Every item ran on a pool worker, never on the driver.
        expect(out.every((r) => r.pid >= 2)).toBe(true);
        await waitFor(() => pool.status().workers === 0 && pool.status().queued === 0, { timeoutMs: 60_000, message: 'the pool to retire its idle workers' });
      } finally {
        clearInterval(sampler);
      }
      expect(most).toBeLessThanOrEqual(3);
      const { pool: evs, adapter } = await logOf(cluster, pool.id, m.id);
      const spawned = evs.filter((e) => e.type === 'pool.spawned');
      expect(spawned.length).toBeGreaterThanOrEqual(2);
      // No worker ran anything but the pool's: the cluster had none before.
      expect(spawned.length).toBeLessThanOrEqual(3);
      for (let i = 1; i < spawned.length; i++) expect(spawned[i]!.at - spawned[i - 1]!.at).toBeGreaterThanOrEqual(policy.spawnIntervalMs);
      expect(maxWaiting(adapter)).toBeLessThanOrEqual(policy.maxQueued);
      // Every spawn joined, or was still queued when the work ran out and was cancelled then.
      const joined = evs.filter((e) => e.type === 'pool.worker.joined').length;
      const cancelled = evs.filter((e) => e.type === 'pool.launch.cancelled');
      expect(joined + cancelled.length).toBe(spawned.length);
      for (const c of cancelled) expect((c.data as { reason: string }).reason).toMatch(/shrink: no ready work/);
      expect(joined).toBeGreaterThanOrEqual(1);
      const retired = evs.filter((e) => e.type === 'pool.worker.retired').map((e) => (e.data as { reason: string }).reason);
      expect(retired).toEqual(Array(joined).fill('idle'));
      const decided = evs.filter((e) => e.type === 'pool.decided').map((e) => e.data as { action: string; reason: string });
      expect(decided.some((d) => d.action === 'spawn' && /ready > idle \+ queued: spawn 1/.test(d.reason))).toBe(true);
      expect(decided.some((d) => d.action === 'retire' && /idle >= idleMs 1500: retire/.test(d.reason))).toBe(true);
      expect(decided.some((d) => d.action === 'hold' && /(= max 3|= maxQueued 1|spawnIntervalMs)/.test(d.reason))).toBe(true);
      await gone(jobIds(adapter));
      await pool.close();
      // The pool's log replays, every decision included.
      const all = await cluster.events.history(`pool.${pool.id}`);
      const r = replayActor(all, { verify: true });
      expect(r.state).toBe('closed');
      expect(r.events).toBe(all.length);
      await m.close();
      // Nothing is left behind: no worker the pool did not retire (a cancelled job that started anyway is removed).
      await waitFor(() => cluster.registry.live().length === 0, { timeoutMs: 30_000, message: 'no worker left after close' });
    }, 120_000);

    it('storm: with every job held, a pool with demand submits maxQueued jobs and no more, and its last decision says why', async () => {
      const { cluster } = tc;
      const m = s.make({ ...s.placed, ...s.held, jobDir: jobDir() });
      const pool = await cluster.pool(m, { min: 0, max: 8, spawnIntervalMs: 200, maxQueued: 2, idleMs: 60_000 });
      const ac = new AbortController();
      const map = cluster.pmap(nap, range(20), { signal: ac.signal }).catch((e: Error) => e);
      try {
        await waitFor(() => pool.status().queued === 2, { timeoutMs: 30_000, message: 'two held jobs' });
        // Several spawn intervals later, still two.
        await waitFor(() => (pool.status().lastDecision?.at ?? 0) > 0 && /= maxQueued 2: hold/.test(pool.status().reason ?? ''), { timeoutMs: 10_000, message: 'a hold decision' });
        const t0 = Date.now();
        await waitFor(() => Date.now() - t0 > 1500, { timeoutMs: 5000 });
        const st = pool.status();
        expect(st.queued).toBe(2);
        expect(st.reason).toMatch(/20 items ready, 0 idle, 2 queued, 0 running; 2 queued = maxQueued 2: hold/);
        const { pool: evs, adapter } = await logOf(cluster, pool.id, m.id);
        expect(evs.filter((e) => e.type === 'pool.spawned')).toHaveLength(2);
        expect(jobIds(adapter)).toHaveLength(2);
        const last = evs.filter((e) => e.type === 'pool.decided').at(-1)!.data as { action: string; reason: string; queued: number };
        expect(last.action).toBe('hold');
        expect(last.queued).toBe(2);
        ac.abort();
        expect(await map).toBeInstanceOf(Error);
        await pool.close();
        await gone(jobIds(adapter));
      } finally {
        ac.abort();
        await pool.close();
        await m.close();
      }
    }, 90_000);

    it('failures: a submit that fails pauses the pool after pauseAfterFailures attempts, with the stderr; nothing is submitted while paused; resume() tries again', async () => {
      const { cluster } = tc;
      const m = s.make({ ...s.placed, ...s.bad.opts, jobDir: jobDir() });
      const pool = await cluster.pool(m, { min: 1, max: 2, spawnIntervalMs: 300, maxQueued: 1, pauseAfterFailures: 2 });
      try {
        await waitFor(() => pool.state === 'paused', { timeoutMs: 30_000, message: 'the pool to pause' });
        let { pool: evs } = await logOf(cluster, pool.id, m.id);
        const failed = evs.filter((e) => e.type === 'pool.launch.failed');
        expect(failed).toHaveLength(2);
        const paused = evs.find((e) => e.type === 'pool.paused')!.data as { reason: string; stderr: string; code: number | null };
        expect(paused.stderr).toMatch(s.bad.stderr);
        expect(paused.reason).toMatch(/2 launches failed in a row \(pauseAfterFailures 2\)/);
        expect(paused.reason).toMatch(s.bad.stderr);
        expect(pool.status().reason).toBe(paused.reason);
        // Paused: no submit however long it waits.
        const t0 = Date.now();
        await waitFor(() => Date.now() - t0 > 1200, { timeoutMs: 5000 });
        ({ pool: evs } = await logOf(cluster, pool.id, m.id));
        expect(evs.filter((e) => e.type === 'pool.spawned')).toHaveLength(2);
        expect(pool.status().lastDecision?.reason).toMatch(/paused/);
        await pool.resume();
        await waitFor(async () => (await logOf(cluster, pool.id, m.id)).pool.filter((e) => e.type === 'pool.launch.failed').length >= 3, { timeoutMs: 30_000, message: 'a new attempt after resume' });
        ({ pool: evs } = await logOf(cluster, pool.id, m.id));
        expect(evs.filter((e) => e.type === 'pool.resumed')).toHaveLength(1);
        await waitFor(() => pool.state === 'paused', { timeoutMs: 30_000, message: 'the pool to pause again' });
      } finally {
        await pool.close();
        await m.close();
      }
      expect(replayActor(await cluster.events.history(`pool.${pool.id}`), { verify: true }).state).toBe('closed');
    }, 90_000);

    it('walltime: a worker near its walltime drains and is replaced while work remains; no item is lost or run twice', async () => {
      const { cluster } = tc;
      const m = s.make({ ...s.shortWalltime(60), jobDir: jobDir() });
      // One worker at a time; each drains 4 s after it joins (walltimeMs - drainMarginMs), well
      // before the scheduler's 60 s, after some 13 items of 300 ms: the rest needs a replacement.
      const pool = await cluster.pool(m, { min: 0, max: 1, spawnIntervalMs: 500, maxQueued: 1, idleMs: 1000, walltimeMs: 8000, drainMarginMs: 4000 });
      try {
        const out = await cluster.pmap(occupy, range(24), { id: `wt-${pool.id}`, shared: 300 });
        expect(out.map((r) => r.item)).toEqual(range(24));
        await waitFor(() => pool.status().workers === 0, { timeoutMs: 60_000, message: 'the pool to retire its workers' });
        const { pool: evs, adapter } = await logOf(cluster, pool.id, m.id);
        const drains = evs.filter((e) => e.type === 'pool.worker.draining' && (e.data as { reason: string }).reason === 'walltime');
        expect(drains.length).toBeGreaterThanOrEqual(1);
        const firstDrain = drains[0]!;
        // Replaced while work remained: a spawn after the first drain, whose worker joined.
        const spawnsAfter = evs.filter((e) => e.type === 'pool.spawned' && e.seq > firstDrain.seq);
        expect(spawnsAfter.length).toBeGreaterThanOrEqual(1);
        expect(evs.filter((e) => e.type === 'pool.worker.retired').map((e) => (e.data as { reason: string }).reason)).toContain('walltime');
        // Nothing lost, nothing run twice: the map retried no item and finished all 40.
        const mapEvs = await cluster.events.history(`map.wt-${pool.id}`);
        expect(mapEvs.filter((e) => e.type === 'map.item.retried')).toHaveLength(0);
        expect((mapEvs.at(-1)!.data as { done: number }).done).toBe(24);
        const pids = new Set(out.map((r) => r.pid));
        expect(pids.size).toBeGreaterThanOrEqual(2);
        await gone(jobIds(adapter));
      } finally {
        await pool.close();
        await m.close();
      }
      await waitFor(() => cluster.registry.live().length === 0, { timeoutMs: 30_000, message: 'no worker left after close' });
    }, 120_000);
  });
}
