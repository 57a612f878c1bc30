/**
 * Pools across processes, over LocalManager (the scheduler suites are test/pool-sge.test.ts and
 * test/pool-slurm.test.ts):
 * - `colony up --pool NAME` (a real child process) runs the site file's pool; a driver that
 *   attaches with Cluster.connect and runs a pmap makes it grow; `colony pool status|pause|resume`,
 *   `colony status` and `colony replay pool/<id> --verify` act on it.
 * - a hand-started `colony worker` takes the pool's work at once and is never retired by it.
 * - preduce with a pool and no worker waits for the pool, and workers that join take the
 *   unstarted slices.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COLONY_BIN } from '../adapters/cluster-manager.ts';
import { LocalManager } from '../adapters/local-manager.ts';
import { Cluster } from '../runtime/index.ts';
import { nap, slowValue } from './fixtures/pool-tasks.ts';
import { startCluster, tempDir } from './helpers/cluster.ts';
import { startNats, uniqueName } from './helpers/nats.ts';
import type { TestNats } from './helpers/nats.ts';
import { waitFor } from './helpers/wait.ts';

const POOL_TASKS = new URL('./fixtures/pool-tasks.ts', import.meta.url);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function colony(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [COLONY_BIN, ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('pools across processes', () => {
  let nats: TestNats;
  beforeAll(async () => {
    nats = await startNats();
  });
  afterAll(async () => {
    await nats?.stop();
  });

  it('a driver that attaches to a `colony up --pool` cluster and runs a pmap makes the pool grow; colony pool status|pause|resume and replay --verify act on it', async () => {
    const name = uniqueName('up');
    const dir = await tempDir('colony-pool-up-');
    const config = join(dir, 'colony.yaml');
    await writeFile(config, [
      'managers:',
      '  local: { output: ignore }',
      'pools:',
      '  grow:',
      '    manager: local',
      '    min: 0',
      '    max: 2',
      '    spawnIntervalMs: 300',
      '    maxQueued: 1',
      '    idleMs: 1500',
      '',
    ].join('\n'));
    const target = ['--nats', nats.url, '--name', name];
    let up: ChildProcess | null = spawn(process.execPath, [COLONY_BIN, 'up', '--pool', 'grow', '--config', config, ...target, '--state-dir', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    up.stderr!.on('data', (b) => (err += String(b)));
    let driver: Cluster | null = null;
    try {
      await waitFor(() => /pool grow-\S+ through local/.test(err), { timeoutMs: 30_000, message: 'colony up --pool to start' });
      const id = /pool (grow-\S+) through/.exec(err)![1]!;
      driver = await Cluster.connect({ nats: nats.url, name });
      await driver.everywhere(POOL_TASKS);
      await waitFor(() => driver!.demand.hasPool(), { timeoutMs: 10_000, message: 'the driver to hear of the pool' });
      expect(driver.workers()).toEqual([1]);
      const out = await driver.pmap(nap, range(16), { id: `attach-${name}` });
      expect(out.map((r) => r.item)).toEqual(range(16));
      expect(out.every((r) => r.pid >= 2)).toBe(true);
      await driver.flush();
      const evs = await driver.events.history(`pool.${id}`);
      expect(evs.filter((e) => e.type === 'pool.spawned').length).toBeGreaterThanOrEqual(1);
      expect(evs.filter((e) => e.type === 'pool.worker.joined').length).toBeGreaterThanOrEqual(1);
      expect(evs.some((e) => e.type === 'pool.demand' && (e.data as { ready: number }).ready > 0)).toBe(true);

      const status = await colony(['pool', 'status', id, ...target]);
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).toMatch(new RegExp(`pool ${id} \\(local\\) running: `));
      expect(status.stdout).toMatch(/policy: min 0, max 2, spawnIntervalMs 300/);
      expect(status.stdout).toMatch(/last decisions:\n.*(spawn|hold|retire)/);
      const paused = await colony(['pool', 'pause', id, '--reason', 'maintenance', ...target]);
      expect(paused.code, paused.stderr).toBe(0);
      expect(paused.stdout).toMatch(new RegExp(`pool ${id}: paused \\(maintenance\\)`));
      const st = await colony(['status', ...target]);
      expect(st.stdout).toMatch(new RegExp(`pool ${id} \\(local\\) paused: .*maintenance`));
      const resumed = await colony(['pool', 'resume', id, ...target]);
      expect(resumed.stdout).toMatch(new RegExp(`pool ${id}: running`));
      const events = await colony(['events', 'pool.>', ...target]);
      expect(events.stdout).toMatch(/pool\.decided/);
      expect(events.stdout).toMatch(/pool\.paused/);
      const bad = await colony(['pool', 'pause', 'nosuch', ...target]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/pool 'nosuch' does not answer/);

      // Idle workers retire; then Ctrl-C closes the pool and the cluster.
      await waitFor(async () => {
        const s = await colony(['pool', 'status', id, ...target]);
        return /running: 0 workers/.test(s.stdout);
      }, { timeoutMs: 30_000, intervalMs: 500, message: 'the pool to retire its idle workers' });
      up.kill('SIGINT');
      await new Promise((r) => up!.once('exit', r));
      up = null;
      const replay = await colony(['replay', `pool/${id}`, '--verify', ...target]);
      expect(replay.code, replay.stderr).toBe(0);
      expect(replay.stdout).toMatch(/pool\.closed/);
    } finally {
      await driver?.close();
      up?.kill('SIGKILL');
    }
  }, 120_000);

  it('a hand-started `colony worker` takes the pool\'s work without a restart and is never retired by it', async () => {
    const tc = await startCluster({ workers: 0, nats: nats.url, name: uniqueName('hand') });
    let hand: ChildProcess | null = null;
    try {
      const { cluster } = tc;
      await cluster.everywhere(POOL_TASKS);
      const pool = await cluster.pool(new LocalManager({ output: 'ignore' }), { min: 0, max: 1, spawnIntervalMs: 200, maxQueued: 1, idleMs: 800 });
      hand = spawn(process.execPath, [COLONY_BIN, 'worker', '--nats', nats.url, '--name', cluster.name], { stdio: 'ignore' });
      await waitFor(() => cluster.registry.live().length === 1, { timeoutMs: 30_000, message: 'the hand-started worker to join' });
      const [handPid] = cluster.registry.live();
      const out = await cluster.pmap(nap, range(20), { batchSize: 1 });
      expect(out.map((r) => r.item)).toEqual(range(20));
      const by = new Set(out.map((r) => r.pid));
      expect(by.has(handPid!)).toBe(true);
      // The pool's own workers retire once idle; the hand-started one stays.
      await waitFor(() => pool.status().workers === 0, { timeoutMs: 30_000, message: 'the pool to retire its workers' });
      await cluster.flush();
      const evs = await cluster.events.history(`pool.${pool.id}`);
      expect(evs.filter((e) => e.type === 'pool.worker.retired').map((e) => (e.data as { pid: number }).pid)).not.toContain(handPid);
      expect(cluster.registry.live()).toContain(handPid);
      await pool.close();
      expect(cluster.registry.live()).toContain(handPid);
    } finally {
      await tc.close();
      hand?.kill('SIGKILL');
    }
  }, 90_000);

  it('preduce with a pool and no worker waits for pool workers, and a worker that joins takes unstarted slices', async () => {
    const tc = await startCluster({ workers: 0, nats: nats.url, name: uniqueName('red') });
    try {
      const { cluster } = tc;
      await cluster.everywhere(POOL_TASKS);
      const pool = await cluster.pool(new LocalManager({ output: 'ignore' }), { min: 0, max: 2, spawnIntervalMs: 200, maxQueued: 1, idleMs: 60_000 });
      // 300 iterations of 20 ms: 6 s of work in 8 slices; the second worker joins while it runs.
      const sum = await cluster.preduce('+', slowValue, 300);
      expect(sum).toBe((299 * 300) / 2);
      await cluster.flush();
      const evs = await cluster.events.history(`pool.${pool.id}`);
      expect(evs.filter((e) => e.type === 'pool.worker.joined')).toHaveLength(2);
      const busyBoth = evs.some((e) => e.type === 'pool.demand' && (e.data as { busy: number[] }).busy.length === 2);
      expect(busyBoth).toBe(true);
      await pool.close();
    } finally {
      await tc.close();
    }
  }, 90_000);
});
