/**
 * What-if replay of pool policies (actors/pool-whatif.ts, runtime/pool/whatif.ts, `colony pool
 * whatif`), over a run recorded under the real Slurm (test/fixtures/logs/pool-slurm.jsonl, made
 * by test/fixtures/record-pool-log.ts: three pmaps of uneven items through a pool of max 3):
 * - --verify on the recorded policy passes; a tampered decision or spawn in a copy fails, named;
 * - a larger spawnCount drains sooner; a shorter idleMs uses fewer worker-seconds;
 * - the same seed gives the same results;
 * - the CLI runs on the exported file (text, --json, a bad policy field named) and on the live
 *   log of a cluster whose pool (over LocalManager) just ran.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Envelope } from '../actors/index.ts';
import { recording, simulate } from '../actors/pool-whatif.ts';
import { COLONY_BIN } from '../adapters/cluster-manager.ts';
import { LocalManager } from '../adapters/local-manager.ts';
import { readJsonl } from '../runtime/log/replay.ts';
import { Cluster, PoolDecisionMismatchError, formatWhatif, verifyPool, whatif } from '../runtime/index.ts';
import { nap } from './fixtures/pool-tasks.ts';
import { tempDir } from './helpers/cluster.ts';
import { startNats, uniqueName } from './helpers/nats.ts';
import type { TestNats } from './helpers/nats.ts';
import { waitFor } from './helpers/wait.ts';

const FIXTURE = new URL('./fixtures/logs/pool-slurm.jsonl', import.meta.url).pathname;
const POOL_TASKS = new URL('./fixtures/pool-tasks.ts', import.meta.url);

function colony(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [COLONY_BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('pool what-if over a run recorded under Slurm', () => {
  let log: Envelope[];
  let dir: string;
  beforeAll(async () => {
    log = await readJsonl(FIXTURE);
    dir = await mkdtemp(join(tmpdir(), 'colony-whatif-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('extracts the demand (three maps of uneven items) and the scheduler and start-up latencies', () => {
    const rec = recording(log, 'whatif');
    expect(rec.maps.map((m) => m.items)).toEqual([30, 12, 20]);
    // Items of 300, 800 and 200 ms: the busy worker-time per item is near each.
    for (const [m, ms] of rec.maps.map((m, i) => [m, [300, 800, 200][i]!] as const)) expect(m.itemMs).toBeGreaterThan(ms * 0.6);
    // The second map followed the first after the driver's pause, the third followed the second.
    expect(rec.maps[1]!.after).toBe(0);
    expect(rec.maps[1]!.gapMs).toBeGreaterThanOrEqual(1900);
    expect(rec.maps[2]!.after).toBe(1);
    const spawns = log.filter((e) => e.kind === 'pool' && e.type === 'pool.spawned').length;
    expect(rec.submitToStartMs).toHaveLength(spawns);
    expect(rec.startupMs).toHaveLength(spawns);
    expect(rec.submitToStartMs.every((x) => x > 0)).toBe(true);
    expect(rec.recorded.jobs).toBe(spawns);
    expect(rec.recorded.workerSeconds.up).toBeGreaterThan(rec.recorded.workerSeconds.busy);
    expect(rec.recorded.drainMs).toBeGreaterThan(0);
  });

  it('--verify: the recorded policy reproduces every recorded decision and spawn', () => {
    const v = verifyPool(log);
    expect(v.pool).toBe('whatif');
    expect(v.decisions).toBe(log.filter((e) => e.type === 'pool.decided').length);
    expect(v.spawns).toBe(log.filter((e) => e.type === 'pool.spawned').length);
    expect(whatif(log, [], { verify: true }).verified).toEqual({ decisions: v.decisions, spawns: v.spawns });
  });

  it('--verify: a tampered decision in a copy of the log fails, naming its seq and both decisions', () => {
    const copy = structuredClone(log);
    const first = copy.find((e) => e.type === 'pool.decided' && (e.data as { action: string }).action === 'spawn')!;
    (first.data as { count: number }).count = 2;
    let err: unknown;
    try {
      verifyPool(copy);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PoolDecisionMismatchError);
    const m = err as PoolDecisionMismatchError;
    expect(m.seq).toBe(first.seq);
    expect(m.message).toContain(`event #${first.seq} 'pool.decided'`);
    expect(m.recordedDecision).toMatch(/^spawn 2: .*spawn 1$/);
    expect(m.replayedDecision).toMatch(/^spawn 1: .*spawn 1$/);
    // A spawn of another count than decided is named too.
    const copy2 = structuredClone(log);
    const sp = copy2.find((e) => e.type === 'pool.spawned')!;
    (sp.data as { count: number }).count = 3;
    expect(() => verifyPool(copy2)).toThrow(new RegExp(`event #${sp.seq} 'pool.spawned'.*recorded decision 'spawn 3 \\(pool.spawned\\)' but decide\\(\\) gives 'spawn 1: `));
  });

  it('a larger spawnCount drains sooner; a shorter idleMs uses fewer worker-seconds (several seeds)', () => {
    for (const seed of [1, 2, 3]) {
      const r = whatif(log, [{ spawnCount: 3, maxQueued: 3 }, { idleMs: 500 }], { seed });
      const [bigger, shorter] = r.policies;
      expect(bigger!.simulated.drainMs).toBeLessThan(r.baseline.drainMs);
      expect(shorter!.simulated.workerSeconds.up).toBeLessThan(r.baseline.workerSeconds.up);
      // Retiring sooner costs submits: the pool comes back for the second and third maps.
      expect(shorter!.simulated.jobs).toBeGreaterThan(r.baseline.jobs);
      // Every item ran: the busy worker-time is the demand's, whatever the policy.
      expect(bigger!.simulated.workerSeconds.busy).toBeCloseTo(r.baseline.workerSeconds.busy, 6);
      for (const f of [r.baseline, bigger!.simulated, shorter!.simulated]) {
        expect(f.truncated).toBeUndefined();
        expect(f.size.every(([, n]) => n <= 3)).toBe(true);
        expect(f.peakQueued).toBeLessThanOrEqual(3);
      }
    }
  });

  it('min keeps workers to the end; a short walltime drains workers and replaces them; max 1 takes longer', () => {
    const r = whatif(log, [{ min: 2 }, { walltimeMs: 4000, drainMarginMs: 1000 }, { max: 1 }], { seed: 2 });
    const [min2, wall, one] = r.policies.map((p) => p.simulated);
    expect(min2!.truncated).toBeUndefined();
    expect(min2!.size.at(-1)![1]).toBe(2);
    expect(wall!.jobs).toBeGreaterThan(r.baseline.jobs);
    expect(wall!.size.every(([, n]) => n <= 3)).toBe(true);
    expect(one!.jobs).toBe(1);
    expect(one!.drainMs).toBeGreaterThan(r.baseline.drainMs);
    // One worker does all the items: its busy time is the whole demand's.
    expect(one!.workerSeconds.busy).toBeCloseTo(r.baseline.workerSeconds.busy, 6);
  });

  it('the same seed gives the same results; the recorded policy simulated comes near the recording', () => {
    const a = whatif(log, [{ spawnCount: 2 }, { idleMs: 1000, maxQueued: 1 }], { seed: 7 });
    const b = whatif(log, [{ spawnCount: 2 }, { idleMs: 1000, maxQueued: 1 }], { seed: 7 });
    const strip = (r: typeof a) => ({ ...r, simulatedInMs: 0 });
    expect(strip(b)).toEqual(strip(a));
    const rec = recording(log, 'whatif');
    expect(simulate(rec, rec.policy, { seed: 11 })).toEqual(simulate(rec, rec.policy, { seed: 11 }));
    // Same demand, same policy: the same jobs, and a drain within the recorded launch latencies.
    expect(a.baseline.jobs).toBe(a.recorded.jobs);
    expect(Math.abs(a.baseline.drainMs - a.recorded.drainMs)).toBeLessThan(Math.max(...rec.submitToStartMs) + Math.max(...rec.startupMs));
  });

  it("latencies 'recorded': the recorded policy with the recorded latencies in order makes the recorded launches", () => {
    const r = whatif(log, [], { latencies: 'recorded' });
    expect(r.latencies).toBe('recorded');
    expect(r.baseline.jobs).toBe(r.recorded.jobs);
    expect(r.baseline.peakQueued).toBe(r.recorded.peakQueued);
    // Independent of the seed.
    expect({ ...whatif(log, [], { latencies: 'recorded', seed: 9 }).baseline }).toEqual(r.baseline);
    expect(formatWhatif(r)).toMatch(/recorded latencies, simulated in .*\n.*\n  latencies replayed in order: /);
  });

  it('bad input: an unknown pool, a bad policy field, a bad seed are named', () => {
    expect(() => whatif(log, [], { latencies: 'random' as 'sampled' })).toThrow(/latencies: must be 'sampled' or 'recorded', got 'random'/);
    expect(() => whatif(log, [], { pool: 'nosuch' })).toThrow(/pool: no pool 'nosuch' in the log; pools: whatif/);
    expect(() => whatif(log, [{ spawnCount: 0 }])).toThrow(/policy.spawnCount: must be at least 1/);
    expect(() => whatif(log, [{ idleMs: 'soon' }])).toThrow(/policy.idleMs: must be a number/);
    expect(() => whatif(log, [], { seed: 1.5 })).toThrow(/seed: must be a whole number/);
    expect(() => whatif([], [])).toThrow(/the log has no pool/);
  });

  it('the report as text: a row per figure, recorded next to simulated, and the pool size as a sparkline', () => {
    const text = formatWhatif(whatif(log, [{ name: 'count3.yaml', policy: { spawnCount: 3 } }], { seed: 1, verify: true }));
    expect(text).toMatch(/^pool whatif: \d+\.\d\d s recorded, 3 maps \(30 x \d+ ms, 12 x \d+ ms, 20 x \d+ ms\)/);
    expect(text).toMatch(/verify: \d+ decisions and 3 spawns reproduced by decide\(\)/);
    expect(text).toContain('[1] count3.yaml: spawnCount 3');
    for (const row of ['worker-s up', 'worker-s idle', 'wait mean', 'wait p95', 'time to drain', 'jobs submitted', 'peak queued']) expect(text).toMatch(new RegExp(`^${row} +\\S+ +\\S+`, 'm'));
    expect(text).toMatch(/^recorded +\|[ ▁▂▃▄▅▆▇█]{60}\|$/m);
    expect(text).toMatch(/^\[1\] +\|.*█.*\|$/m);
  });

  it('colony pool whatif runs on the exported file: text, --json, --verify, and a bad policy file named', async () => {
    const p1 = join(dir, 'count3.yaml');
    const p2 = join(dir, 'idle.json');
    const bad = join(dir, 'bad.yaml');
    await writeFile(p1, 'spawnCount: 3\nmaxQueued: 3\n');
    await writeFile(p2, '{ "idleMs": 500 }\n');
    await writeFile(bad, 'idelMs: 500\n');
    const text = await colony(['pool', 'whatif', '--file', FIXTURE, '--policy', p1, '--policy', p2, '--verify', '--seed', '3']);
    expect(text.stderr).toBe('');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/verify: \d+ decisions and 3 spawns reproduced/);
    expect(text.stdout).toContain(`[1] ${p1}: spawnCount 3, maxQueued 3`);
    expect(text.stdout).toContain(`[2] ${p2}: idleMs 500`);
    const json = await colony(['pool', 'whatif', 'whatif', '--file', FIXTURE, '--policy', p1, '--json', '--seed', '3']);
    expect(json.code).toBe(0);
    const r = JSON.parse(json.stdout) as ReturnType<typeof whatif>;
    expect(r.pool).toBe('whatif');
    expect(r.policies[0]!.policy.spawnCount).toBe(3);
    // The file's fields go over the recorded policy.
    expect(r.policies[0]!.policy.idleMs).toBe(r.policy.idleMs);
    expect({ ...r, simulatedInMs: 0 }).toEqual(JSON.parse(JSON.stringify({ ...whatif(log, [{ name: p1, policy: { spawnCount: 3, maxQueued: 3 } }], { seed: 3 }), simulatedInMs: 0 })));
    const b = await colony(['pool', 'whatif', '--file', FIXTURE, '--policy', bad]);
    expect(b.code).not.toBe(0);
    expect(b.stderr).toMatch(new RegExp(`policy.idelMs: unknown policy field 'idelMs' in ${bad}`));
    const none = await colony(['pool', 'whatif', '--file', FIXTURE]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/--policy: colony pool whatif needs a policy file/);
  }, 60_000);
});

describe('colony pool whatif on a live cluster', () => {
  let nats: TestNats;
  beforeAll(async () => {
    nats = await startNats();
  });
  afterAll(async () => {
    await nats?.stop();
  });

  it('reads the pool, its adapter and the maps from the running cluster; --verify passes', async () => {
    const name = uniqueName('whatif');
    const stateDir = await tempDir('colony-whatif-live-');
    const cluster = await Cluster.start({ nats: nats.url, name, workers: 0, stateDir, workerOutput: 'ignore' });
    const manager = new LocalManager({ output: 'ignore' });
    try {
      await cluster.everywhere(POOL_TASKS);
      const pool = await cluster.pool(manager, { min: 0, max: 2, spawnIntervalMs: 300, maxQueued: 1, idleMs: 800 }, { id: 'live' });
      const out = await cluster.pmap(nap, Array.from({ length: 10 }, (_, i) => i), { id: `m-${name}` });
      expect(out).toHaveLength(10);
      await waitFor(() => pool.status().workers === 0 && pool.status().queued === 0, { timeoutMs: 60_000, message: 'the pool to retire its workers' });
      await pool.close();
      await cluster.flush();
      const policy = join(stateDir, 'p.yaml');
      await writeFile(policy, 'spawnCount: 2\n');
      const r = await colony(['pool', 'whatif', 'live', '--policy', policy, '--verify', '--nats', nats.url, '--name', name]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^pool live: .* 1 map \(10 x \d+ ms\)/);
      expect(r.stdout).toMatch(/verify: \d+ decisions and \d+ spawns reproduced/);
      expect(r.stdout).toContain(`[1] ${policy}: spawnCount 2`);
    } finally {
      await cluster.close();
      await rm(stateDir, { recursive: true, force: true });
    }
  }, 90_000);
});
