import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalManager } from '../runtime/index.ts';
import type { ClusterManager, LaunchParams, ManageOp, WorkerConfig } from '../runtime/index.ts';
import { COLONY_BIN } from '../adapters/index.ts';
import { echo, gated, slow, spin, spinQuick, whoami } from './fixtures/tasks.ts';
import { externalNats, startCluster, tempDir } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { processAlive, waitFor, waitForExit } from './helpers/wait.ts';
import { rejection, within } from './helpers/settle.ts';

/** A real LocalManager that also writes down every `manage()` call it gets. */
class RecordingManager extends LocalManager {
  readonly calls: { pid: number; op: ManageOp; token: string }[] = [];
  constructor() {
    super({ output: 'ignore' });
  }
  override async manage(pid: number, config: WorkerConfig, op: ManageOp): Promise<void> {
    this.calls.push({ pid, op, token: config.launchToken });
    await super.manage(pid, config, op);
  }
  opsOf(pid: number): ManageOp[] {
    return this.calls.filter((c) => c.pid === pid).map((c) => c.op);
  }
}

describe('workers', () => {
  let tc: TestCluster;
  let markers: string;

  beforeAll(async () => {
    [tc, markers] = await Promise.all([startCluster({ workers: 2, tasks: true }), tempDir('colony-markers-')]);
  });
  afterAll(async () => {
    await tc?.close();
    if (markers) await rm(markers, { recursive: true, force: true });
  });

  const ospidOf = (pid: number) => tc.cluster.workerInfo().find((w) => w.pid === pid)?.ospid;

  it('start - workers get pids 2, 3 and each knows its own id', async () => {
    const { cluster } = tc;
    expect(cluster.workers()).toEqual([2, 3]);
    expect(cluster.procs()).toEqual([1, 2, 3]);
    expect(cluster.nprocs()).toBe(3);
    expect(cluster.nworkers()).toBe(2);
    expect(await cluster.remotecallFetch(whoami, 2)).toBe(2);
    expect(await cluster.remotecallFetch(whoami, 3)).toBe(3);
    const info = cluster.workerInfo();
    expect(info.map((w) => w.pid)).toEqual([2, 3]);
    for (const w of info) {
      expect(w.state).toBe('ready');
      expect(w.manager).toBe('local');
      expect(processAlive(w.ospid)).toBe(true);
      expect(w.ospid).not.toBe(process.pid);
    }
  });

  it('addprocs(n) - returns the new pids, which serve calls at once; rmprocs removes them', async () => {
    const { cluster } = tc;
    const added = await cluster.addprocs(2);
    expect(added).toEqual([4, 5]);
    expect(cluster.workers()).toEqual([2, 3, 4, 5]);
    expect(cluster.nprocs()).toBe(5);
    for (const pid of added) expect(await cluster.remotecallFetch(whoami, pid)).toBe(pid);
    const ospids = added.map((p) => ospidOf(p)!);

    await cluster.rmprocs(added);
    expect(cluster.workers()).toEqual([2, 3]);
    expect(cluster.nworkers()).toBe(2);
    for (const os of ospids) expect(processAlive(os)).toBe(false);
    await cluster.flush();
    for (const pid of added) {
      const h = await cluster.events.history(`worker.${pid}`);
      expect(h.map((e) => e.type)).toEqual(['worker.registered', 'worker.ready', 'worker.stopping', 'worker.exited']);
      expect(h.at(-1)).toMatchObject({ from: 'stopping', to: 'exited', data: { code: 0 } });
    }
    // pids are never reused
    expect(await cluster.addprocs(1)).toEqual([6]);
    await cluster.rmprocs(6);
    expect(cluster.workers()).toEqual([2, 3]);
  });

  it('addprocs(manager, { count }) - a manager sees register, interrupt, deregister and finalize of its workers', async () => {
    const { cluster } = tc;
    const manager = new RecordingManager();
    const pids = await cluster.addprocs(manager, { count: 2 });
    const addedAt = Date.now();
    try {
      expect(pids).toHaveLength(2);
      expect(cluster.workers()).toEqual(expect.arrayContaining(pids));
      for (const pid of pids) {
        expect(manager.opsOf(pid)).toEqual(['register']);
        expect(await cluster.remotecallFetch(whoami, pid)).toBe(pid);
      }
      // Each worker registered with a token of its own launch.
      expect(new Set(manager.calls.map((c) => c.token)).size).toBe(2);

      // (Interrupting before the first heartbeat is a test of its own, below.)
      await waitFor(() => cluster.workerInfo().find((w) => w.pid === pids[0])!.lastHeartbeat > addedAt, { message: 'a heartbeat of the new worker' });
      await cluster.interrupt(pids[0]!);
      expect(manager.opsOf(pids[0]!)).toEqual(['register', 'interrupt']);
    } finally {
      await cluster.rmprocs(pids);
    }
    for (const pid of pids) expect(manager.opsOf(pid).slice(-2)).toEqual(['deregister', 'finalize']);
    expect(cluster.workers()).toEqual([2, 3]);
  });

  it('interrupt - works on a worker as soon as addprocs has returned it', async () => {
    const { cluster } = tc;
    const [pid] = await cluster.addprocs(1);
    try {
      const marker = join(markers, 'fresh-started');
      const r = cluster.remotecall(slow, pid!, 50_000, marker);
      await waitFor(() => existsSync(marker), { message: 'slow task started' });
      await cluster.interrupt(pid!);
      expect((await rejection(r.fetch())).name).toBe('InterruptException');
    } finally {
      await cluster.rmprocs(pid!);
    }
  });

  it('addprocs(new LocalManager(), { count: 1 }) - adds one worker', async () => {
    const { cluster } = tc;
    const [pid] = await cluster.addprocs(new LocalManager({ output: 'ignore' }), { count: 1 });
    expect(pid).toBeGreaterThan(3);
    expect(await cluster.remotecallFetch(whoami, pid!)).toBe(pid);
    const os = ospidOf(pid!)!;
    await cluster.rmprocs([pid!]);
    expect(processAlive(os)).toBe(false);
  });

  it('addprocs - a bad count is refused with the field named', async () => {
    const { cluster } = tc;
    await expect(cluster.addprocs(0)).rejects.toMatchObject({ name: 'InvalidArgumentError', field: 'count' });
    await expect(cluster.addprocs(1.5)).rejects.toMatchObject({ name: 'InvalidArgumentError', field: 'count' });
    await expect(cluster.rmprocs(1)).rejects.toMatchObject({ name: 'InvalidArgumentError' });
    expect(cluster.workers()).toEqual([2, 3]);
  });

  it('interrupt - stops a long async task: its ref rejects with InterruptException and the worker keeps serving', async () => {
    const { cluster } = tc;
    const marker = join(markers, 'async-started');
    const r = cluster.remotecall(slow, 2, 50_000, marker);
    await waitFor(() => existsSync(marker), { message: 'slow task started' });
    await cluster.interrupt(2);
    const err = await rejection(r.fetch());
    expect(err.name).toBe('InterruptException');
    expect(err.pid).toBe(2);
    expect(await cluster.remotecallFetch(whoami, 2)).toBe(2);
    await cluster.flush();
    const h = await cluster.events.history('worker.2');
    expect(h.at(-1)).toMatchObject({ type: 'worker.interrupted', from: 'ready', to: 'ready' });
  });

  it('interrupt - stops a long synchronous busy loop, and the worker keeps serving', async () => {
    const { cluster } = tc;
    const marker = join(markers, 'spin-started');
    const t0 = Date.now();
    const r = cluster.remotecall(spin, 3, 50_000, marker);
    const alsoPending = cluster.remotecallFetch(echo, 3, 'queued behind the loop');
    await waitFor(() => existsSync(marker), { message: 'spin task started' });
    await cluster.interrupt([3]);
    const err = await rejection(r.fetch());
    expect(err.name).toBe('InterruptException');
    expect(err.pid).toBe(3);
    expect(Date.now() - t0).toBeLessThan(40_000);
    expect(await alsoPending).toBe('queued behind the loop');
    expect(await cluster.remotecallFetch(whoami, 3)).toBe(3);
    expect(await cluster.remotecallFetch(spin, 3, 5)).toBeGreaterThan(0);
    await cluster.flush();
    const h = await cluster.events.history('worker.3');
    expect(h.filter((e) => e.type === 'worker.interrupted')).toHaveLength(1);
  });

  it('interrupt - stops a synchronous task that was fast on its earlier calls, once a call of it ran long', async () => {
    const { cluster } = tc;
    // spinQuick: fast on its first calls (so it runs without the watchdog), then one long call.
    expect(await cluster.remotecallFetch(spinQuick, 3, 0)).toBeGreaterThanOrEqual(0);
    expect(await cluster.remotecallFetch(spinQuick, 3, 0)).toBeGreaterThanOrEqual(0);
    expect(await cluster.remotecallFetch(spinQuick, 3, 30)).toBeGreaterThan(0);
    const marker = join(markers, 'quick-then-long');
    const r = cluster.remotecall(spinQuick, 3, 50_000, marker);
    await waitFor(() => existsSync(marker), { message: 'the long call started' });
    await cluster.interrupt([3]);
    expect((await rejection(r.fetch())).name).toBe('InterruptException');
    expect(await cluster.remotecallFetch(whoami, 3)).toBe(3);
  });

  it('interrupt - with no argument interrupts the running task of every worker', async () => {
    const { cluster } = tc;
    const g = join(markers, 'all-gate');
    const refs = [cluster.remotecall(gated, 2, `${g}2`), cluster.remotecall(gated, 3, `${g}3`)];
    await waitFor(() => existsSync(`${g}2.started`) && existsSync(`${g}3.started`), { message: 'both tasks started' });
    await cluster.interrupt();
    for (const r of refs) expect((await rejection(r.fetch())).name).toBe('InterruptException');
    writeFileSync(`${g}2`, '');
    writeFileSync(`${g}3`, '');
  });
});

describe('workers - started by hand', () => {
  it.skipIf(externalNats)('colony worker with --creds joins a running cluster, gets the next pid and leaves on rmprocs', async () => {
    await using tc = await startCluster({ workers: 1, tasks: true });
    const { cluster } = tc;
    const child = spawn(process.execPath, [
      COLONY_BIN, 'worker', '--nats', cluster.url, '--name', cluster.name,
      '--creds', join(tc.clusterDir, 'credentials.json'), '--grace', '5000',
    ], { stdio: 'ignore', env: { ...process.env, COLONY_NATS_USER: '', COLONY_NATS_PASSWORD: '' } });
    try {
      await waitFor(() => cluster.workers().includes(3), { timeoutMs: 20_000, message: 'the hand-started worker joined' });
      expect(cluster.workers()).toEqual([2, 3]);
      const info = cluster.workerInfo().find((w) => w.pid === 3)!;
      expect(info.ospid).toBe(child.pid);
      // Modules loaded everywhere earlier are loaded on workers that join later.
      expect(await cluster.remotecallFetch(whoami, 3)).toBe(3);
      await cluster.rmprocs(3);
      await waitForExit(child.pid!);
      expect(cluster.workers()).toEqual([2]);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

/** A LocalManager whose workers get a NATS URL where nothing listens, so they exit at once. */
class UnreachableManager extends LocalManager {
  constructor() {
    super({ output: 'ignore' });
  }
  override launch(params: LaunchParams, launched: (c: WorkerConfig) => void, signal: AbortSignal): Promise<void> {
    const argv = (token: string) => params.workerArgv(token).map((a) => (a === params.nats ? 'nats://127.0.0.1:1' : a));
    return super.launch({ ...params, workerArgv: argv }, launched, signal);
  }
}

describe('workers - launch failures', () => {
  let tc: TestCluster;
  beforeAll(async () => {
    tc = await startCluster({ workers: 1, tasks: true });
  });
  afterAll(async () => {
    await tc?.close();
  });

  it('addprocs - a scheduler command that fails gives LaunchError with its exit code and stderr', async () => {
    const qsub: ClusterManager = {
      name: 'sge',
      launch: async () => {
        throw Object.assign(new Error('qsub exited with code 2'), { code: 2, stderr: 'qsub: Unknown queue "nope"' });
      },
      manage: async () => undefined,
    };
    const err = await rejection(tc.cluster.addprocs(qsub, { count: 2 }));
    expect(err.name).toBe('LaunchError');
    expect(err.code).toBe(2);
    expect(err.stderr).toContain('Unknown queue');
    expect(err.message).toContain('Unknown queue');
    expect(tc.cluster.workers()).toEqual([2]);
  });

  it('addprocs - a worker process that dies before it registers gives LaunchError with its exit code', async () => {
    const err = await rejection(tc.cluster.addprocs(new UnreachableManager(), { count: 1 }));
    expect(err.name).toBe('LaunchError');
    expect(err.code).toBe(1);
    expect(err.message).toMatch(/exited before it registered/);
    expect(tc.cluster.workers()).toEqual([2]);
    expect(await tc.cluster.remotecallFetch(whoami, 2)).toBe(2);
  });

  it('addprocs - a manager that hands back fewer workers than asked settles instead of waiting forever', async () => {
    const none: ClusterManager = { name: 'empty', launch: async () => undefined, manage: async () => undefined };
    const outcome = await within(
      tc.cluster.addprocs(none, { count: 1 }).then((pids) => ({ pids }), (err: Error) => ({ err })),
      8000,
      'addprocs after launch() returned without launching anything',
    );
    if ('err' in outcome) expect(outcome.err.name).toBe('LaunchError');
    else expect(outcome.pids).toEqual([]);
  });
});

