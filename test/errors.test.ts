import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boom, boomAsync, echo, exitProcess, fetchRef, slow, throwString, whoami } from './fixtures/tasks.ts';
import { startCluster, tempDir } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { processAlive, waitFor } from './helpers/wait.ts';
import { rejection } from './helpers/settle.ts';

describe('errors - a task that throws', () => {
  let tc: TestCluster;

  beforeAll(async () => {
    tc = await startCluster({ workers: 2, tasks: true });
  });
  afterAll(async () => {
    await tc?.close();
  });

  it('remotecallFetch - a task that throws gives RemoteException with the worker pid, name, message and the remote stack', async () => {
    const err = await rejection(tc.cluster.remotecallFetch(boom, 3, 'out of range!'));
    expect(err.name).toBe('RemoteException');
    expect(err.pid).toBe(3);
    expect(err.remoteName).toBe('RangeError');
    expect(err.message).toContain('out of range!');
    expect(err.message).toContain('RangeError');
    expect(String(err.remoteStack)).toContain('fixtures/tasks.ts');
    expect(String(err.remoteStack)).toContain('boom');
    // The stack a user prints shows where the task failed.
    expect(err.stack).toContain('fixtures/tasks.ts');
  });

  it('remotecall - fetch and wait of a ref whose task threw reject with the same RemoteException, every time', async () => {
    const r = tc.cluster.remotecall(boomAsync, 2, 'async failure');
    const viaWait = await rejection(r.wait());
    const viaFetch = await rejection(r.fetch());
    const again = await rejection(r.fetch());
    for (const err of [viaWait, viaFetch, again]) {
      expect(err.name).toBe('RemoteException');
      expect(err.pid).toBe(2);
      expect(err.remoteName).toBe('TypeError');
      expect(err.message).toContain('async failure');
    }
    expect(await r.isReady()).toBe(true);
  });

  it('remotecall - the failure is stored: the ref ends in ref.failed with the error as data', async () => {
    const r = tc.cluster.remotecall(boom, 2, 'stored failure');
    await rejection(r.wait());
    const history = await tc.cluster.events.history(`ref.${r.id}`);
    expect(history.map((e) => e.type)).toEqual(['ref.created', 'ref.failed']);
    expect(history[1]!.to).toBe('failed');
    expect(history[1]!.data.error).toMatchObject({ name: 'RangeError', message: 'stored failure', pid: 2 });
  });

  it('remotecallFetch - a task that throws a string gives a RemoteException carrying it', async () => {
    const err = await rejection(tc.cluster.remotecallFetch(throwString, 2, 'just a string'));
    expect(err.name).toBe('RemoteException');
    expect(err.pid).toBe(2);
    expect(err.message).toContain('just a string');
  });

  it('refs as arguments - a task that fetches a failed ref gets the RemoteException of the worker that failed', async () => {
    const failed = tc.cluster.remotecall(boom, 2, 'upstream failure');
    const err = await rejection(tc.cluster.remotecallFetch(fetchRef, 3, failed));
    expect(err.name).toBe('RemoteException');
    expect(err.message).toContain('upstream failure');
  });

  it('remotecallFetch - the worker keeps serving after a task threw', async () => {
    await rejection(tc.cluster.remotecallFetch(boom, 2, 'x'));
    expect(await tc.cluster.remotecallFetch(whoami, 2)).toBe(2);
    expect(await tc.cluster.remotecallFetch(echo, 2, 'still here')).toBe('still here');
  });
});

describe('errors - a worker that dies mid-call', () => {
  let markers: string;
  beforeAll(async () => {
    markers = await tempDir('colony-markers-');
  });
  afterAll(async () => {
    if (markers) await rm(markers, { recursive: true, force: true });
  });

  it('SIGKILL of a worker mid-call rejects its pending refs with ProcessExitedError and the cluster carries on', async () => {
    await using tc = await startCluster({ workers: 2, tasks: true });
    const { cluster } = tc;
    const victim = cluster.workerInfo().find((w) => w.pid === 2)!;
    const marker = join(markers, 'kill-started');
    const pending = cluster.remotecall(slow, 2, 60_000, marker);
    const pendingFetch = cluster.remotecallFetch(slow, 2, 60_000);
    const stored = cluster.remotecall(echo, 2, 'owned by the victim');
    await stored.wait();
    await waitFor(() => existsSync(marker), { message: 'the slow task started on worker 2' });
    // The ref exists in the log before the kill, so its loss can be recorded.
    await waitFor(async () => (await cluster.events.history(`ref.${pending.id}`)).length > 0, { message: 'ref.created stored' });

    process.kill(victim.ospid, 'SIGKILL');

    const err = await rejection(pending.fetch());
    expect(err.name).toBe('ProcessExitedError');
    expect(err.pid).toBe(2);
    const err2 = await rejection(pendingFetch);
    expect(err2.name).toBe('ProcessExitedError');
    expect(err2.pid).toBe(2);
    // A value that lived on the dead worker is gone too.
    const err3 = await rejection(stored.fetch());
    expect(err3.name).toBe('ProcessExitedError');
    await waitFor(() => !processAlive(victim.ospid), { message: 'worker 2 is gone' });

    // The log tells what happened: the worker was lost, and so were the refs it owned.
    const workerEvents = await waitFor(async () => {
      const h = await cluster.events.history('worker.2');
      return h.some((e) => e.type === 'worker.lost') ? h : null;
    }, { message: 'worker.lost stored' });
    expect(workerEvents.at(-1)).toMatchObject({ type: 'worker.lost', from: 'ready', to: 'lost' });
    expect(String(workerEvents.at(-1)!.data.reason)).toMatch(/SIGKILL|exited/);
    for (const ref of [pending, stored]) {
      const refEvents = await waitFor(async () => {
        const h = await cluster.events.history(`ref.${ref.id}`);
        return h.some((e) => e.type === 'ref.lost') ? h : null;
      }, { message: `ref.lost stored for ${ref.id}` });
      expect(refEvents.at(-1)).toMatchObject({ type: 'ref.lost', to: 'lost' });
      expect(refEvents.at(-1)!.data).toMatchObject({ pid: 2 });
    }

    // The cluster carries on without it.
    expect(cluster.workers()).toEqual([3]);
    expect(cluster.nworkers()).toBe(1);
    expect(await cluster.remotecallFetch(whoami, 3)).toBe(3);
    expect(() => cluster.remotecall(whoami, 2)).toThrow(expect.objectContaining({ name: 'InvalidArgumentError' }));
    const added = await cluster.addprocs(1);
    expect(added).toEqual([4]);
    expect(cluster.workers()).toEqual([3, 4]);
    expect(await cluster.remotecallFetch(whoami, 4)).toBe(4);
    expect(await cluster.spawn(echo, 'after the loss').fetch()).toBe('after the loss');
  });

  it('a worker process that exits in the middle of a task gives ProcessExitedError', async () => {
    await using tc = await startCluster({ workers: 1, tasks: true });
    const { cluster } = tc;
    const err = await rejection(cluster.remotecallFetch(exitProcess, 2, 3));
    expect(err.name).toBe('ProcessExitedError');
    expect(err.pid).toBe(2);
    const h = await waitFor(async () => {
      const events = await cluster.events.history('worker.2');
      return events.some((e) => e.type === 'worker.lost') ? events : null;
    }, { message: 'worker.lost stored' });
    expect(String(h.at(-1)!.data.reason)).toMatch(/code 3/);
    expect(cluster.workers()).toEqual([1]);
  });
});
