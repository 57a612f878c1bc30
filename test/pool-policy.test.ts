/**
 * The pool's pure parts: decide() (the SWAMP rule and its guards), the policy checks, and the
 * pool machine refusing a decision that its own inputs do not give.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, checkPolicy, decide, drained, foldStep, initialSnapshot, poolEvents, poolMachine, walltimeDue } from '../actors/index.ts';
import type { PoolContext, PoolInputs, PoolPolicy } from '../actors/index.ts';
import { parseSiteConfig } from '../adapters/site-config.ts';

const policy: PoolPolicy = { ...DEFAULT_POLICY, min: 0, max: 3, spawnIntervalMs: 1000, spawnCount: 1, maxQueued: 1, idleMs: 2000 };
const inputs = (o: Partial<PoolInputs> = {}): PoolInputs => ({
  at: 10_000, paused: null, ready: 0, idle: 0, queued: 0, running: 0, draining: 0, lastSpawnAt: null, failures: 0, idlePool: [], ...o,
});

describe('decide() - the SWAMP rule', () => {
  it('spawns when ready work outnumbers idle workers and it has not spawned recently', () => {
    expect(decide(inputs({ ready: 9 }), policy)).toEqual({ action: 'spawn', count: 1, reason: '9 items ready, 0 idle, 0 queued, 0 running; ready > idle + queued: spawn 1' });
    expect(decide(inputs({ ready: 9, lastSpawnAt: 9500 }), policy)).toEqual({
      action: 'hold', reason: '9 items ready, 0 idle, 0 queued, 0 running; spawned less than spawnIntervalMs 1000 ago: hold',
    });
    expect(decide(inputs({ ready: 9, lastSpawnAt: 9000 }), policy).action).toBe('spawn');
  });

  it('holds when idle and queued workers cover the ready work', () => {
    expect(decide(inputs({ ready: 2, idle: 2, running: 2 }), policy).reason).toMatch(/idle and queued workers cover the ready work: hold$/);
    expect(decide(inputs({ ready: 0, running: 1 }), policy)).toEqual({ action: 'hold', reason: '0 items ready, 0 idle, 0 queued, 1 running; no ready work: hold' });
  });

  it('never more than maxQueued jobs waiting, nor more than max workers', () => {
    expect(decide(inputs({ ready: 9, queued: 1 }), policy)).toEqual({ action: 'hold', reason: '9 items ready, 0 idle, 1 queued, 0 running; 1 queued = maxQueued 1: hold' });
    expect(decide(inputs({ ready: 9, running: 3 }), policy).reason).toMatch(/3 workers = max 3: hold$/);
    expect(decide(inputs({ ready: 9, running: 2, queued: 1 }), { ...policy, maxQueued: 5 }).reason).toMatch(/3 workers = max 3: hold$/);
    // spawnCount is capped by max and maxQueued.
    expect(decide(inputs({ ready: 50, running: 1 }), { ...policy, spawnCount: 5, maxQueued: 5 })).toMatchObject({ action: 'spawn', count: 2 });
    expect(decide(inputs({ ready: 50 }), { ...policy, max: 10, spawnCount: 5, maxQueued: 3 })).toMatchObject({ action: 'spawn', count: 3 });
    // ...and by the work not covered yet.
    expect(decide(inputs({ ready: 2 }), { ...policy, max: 10, spawnCount: 5, maxQueued: 5 })).toMatchObject({ action: 'spawn', count: 2 });
  });

  it('fills up to min, with the same guards', () => {
    expect(decide(inputs(), { ...policy, min: 2 })).toMatchObject({ action: 'spawn', count: 1, reason: expect.stringMatching(/0 workers < min 2: spawn 1$/) });
    expect(decide(inputs({ queued: 1 }), { ...policy, min: 2 }).reason).toMatch(/below min 2 but 1 queued = maxQueued 1: hold$/);
    expect(decide(inputs({ lastSpawnAt: 9900 }), { ...policy, min: 2 }).action).toBe('hold');
  });

  it('retires workers idle for idleMs beyond the ready work, down to min', () => {
    const idlePool = [{ pid: 2, idleMs: 2500 }, { pid: 3, idleMs: 1000 }, { pid: 4, idleMs: 3000 }];
    expect(decide(inputs({ idle: 3, running: 3, idlePool }), policy)).toEqual({
      action: 'retire', pids: [2, 4], reason: '0 items ready, 3 idle, 0 queued, 3 running; 2 workers (2, 4) idle >= idleMs 2000: retire',
    });
    expect(decide(inputs({ idle: 3, running: 3, idlePool }), { ...policy, min: 2 })).toMatchObject({ action: 'retire', pids: [4] });
    expect(decide(inputs({ idle: 3, running: 3, idlePool }), { ...policy, min: 3 }).action).toBe('hold');
    // Ready work keeps as many idle workers as it needs.
    expect(decide(inputs({ ready: 2, idle: 3, running: 3, idlePool }), policy)).toMatchObject({ action: 'retire', pids: [4] });
  });

  it('cancels queued workers when no work waits for them, down to min', () => {
    expect(decide(inputs({ queued: 2, running: 1 }), policy)).toEqual({
      action: 'retire', count: 2, reason: '0 items ready, 0 idle, 2 queued, 1 running; no ready work for 2 queued workers: cancel 2',
    });
    expect(decide(inputs({ queued: 2, running: 1 }), { ...policy, min: 2 })).toMatchObject({ action: 'retire', count: 1 });
    expect(decide(inputs({ queued: 1 }), { ...policy, min: 1 }).action).toBe('hold');
    expect(decide(inputs({ ready: 1, queued: 1 }), policy).action).toBe('hold');
  });

  it('a paused pool does not spawn, and says so', () => {
    expect(decide(inputs({ ready: 5, paused: 'maintenance' }), policy).reason).toMatch(/paused \(maintenance\): hold$/);
  });
});

describe('checkPolicy', () => {
  it('refuses max < min, unknown keys, negative intervals, naming the field', () => {
    expect(() => checkPolicy({ min: 4, max: 2 })).toThrow(/policy\.max: max \(2\) must not be below min \(4\)/);
    expect(() => checkPolicy({ maxQueue: 2 })).toThrow(/policy\.maxQueue: unknown policy field 'maxQueue'/);
    expect(() => checkPolicy({ spawnIntervalMs: -5 })).toThrow(/policy\.spawnIntervalMs: must not be negative, got -5/);
    expect(() => checkPolicy({ min: 1.5 })).toThrow(/policy\.min: must be a whole number/);
    expect(() => checkPolicy({ idleMs: '5s' })).toThrow(/policy\.idleMs: must be a number/);
    expect(() => checkPolicy({ walltimeMs: 1000, drainMarginMs: 2000 })).toThrow(/policy\.drainMarginMs/);
    expect(checkPolicy({ max: 8 })).toEqual({ ...DEFAULT_POLICY, max: 8 });
  });

  it('a site file pool with a bad policy is refused with the field and the file line', () => {
    const yaml = 'managers:\n  sge: { queue: all.q }\npools:\n  sge:\n    manager: sge\n    min: 4\n    max: 2\n';
    expect(() => parseSiteConfig(yaml, 'site.yaml')).toThrow(/site\.yaml: pools\.sge\.max: max \(2\) must not be below min \(4\) \(site\.yaml line 7\)/);
    expect(() => parseSiteConfig('pools:\n  p:\n    manager: slurm\n    idleMS: 5\n', 's.yaml')).toThrow(/pools\.p\.idleMS: unknown policy field 'idleMS' \(s\.yaml line 4\)/);
    expect(() => parseSiteConfig('pools:\n  p:\n    manager: slurm\n    spawnIntervalMs: -1\n', 's.yaml')).toThrow(/pools\.p\.spawnIntervalMs: must not be negative, got -1 \(s\.yaml line 4\)/);
    expect(() => parseSiteConfig('pools:\n  p: { manager: nosuch }\n', 's.yaml')).toThrow(/pools\.p\.manager: unknown manager 'nosuch'/);
    const ok = parseSiteConfig('pools:\n  p: { manager: slurm, max: 4, options: { partition: main } }\n', 's.yaml');
    expect(ok.pools.p).toEqual({ manager: 'slurm', options: { partition: 'main' }, policy: { max: 4 } });
  });
});

describe('the pool machine', () => {
  const step = (snap: ReturnType<typeof initialSnapshot>, ev: { type: string; at: number; data: object }) => foldStep(poolMachine, snap, ev as never);
  it('accepts a decision only when decide() over its recorded inputs gives it; drains near walltime', () => {
    let s = initialSnapshot(poolMachine);
    s = step(s, poolEvents.started(1000, { manager: 'sge', adapter: null, policy: { ...policy, walltimeMs: 10_000, drainMarginMs: 3000 } })).snapshot;
    s = step(s, poolEvents.demand(1100, { ready: 9, workers: [], busy: [] })).snapshot;
    const good = { action: 'spawn' as const, count: 1, reason: '9 items ready, 0 idle, 0 queued, 0 running; ready > idle + queued: spawn 1', ready: 9, idle: 0, queued: 0, running: 0 };
    expect(step(s, poolEvents.decided(1200, { ...good, reason: 'made up' })).accepted).toBe(false);
    const r = step(s, poolEvents.decided(1200, good));
    expect(r.accepted).toBe(true);
    s = step(r.snapshot, poolEvents.spawned(1200, { launch: 'p/1', count: 1 })).snapshot;
    s = step(s, poolEvents.workerJoined(2000, { pid: 2, launch: 'p/1' })).snapshot;
    const c = s.context as PoolContext;
    expect(c.pending).toEqual({});
    expect(walltimeDue(c, 8999)).toEqual([]);
    expect(walltimeDue(c, 9000)).toEqual([2]);
    s = step(s, poolEvents.workerDraining(9000, { pid: 2, reason: 'walltime' })).snapshot;
    expect(drained(s.context as PoolContext, 9500)).toEqual([]);
    expect(drained(s.context as PoolContext, 10_000)).toEqual([{ pid: 2, reason: 'walltime' }]);
    s = step(s, poolEvents.paused(10_100, { reason: 'by hand' })).snapshot;
    expect(s.value).toBe('paused');
    expect(step(s, poolEvents.spawned(10_200, { launch: 'p/2', count: 1 })).accepted).toBe(false);
  });
});
