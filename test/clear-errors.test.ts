/**
 * Clear errors, never silence: a value holding a function, rmprocs of a pid that is not a worker,
 * and a bad events filter are each an InvalidArgumentError that says what is wrong and where.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { add, echo } from './fixtures/tasks.ts';
import { returnsFunction } from './fixtures/clear-error-tasks.ts';
import { startCluster } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { rejection } from './helpers/settle.ts';

const run = promisify(execFile);
const COLONY = new URL('../runtime/cli/colony.mjs', import.meta.url).pathname;

let tc: TestCluster;

beforeAll(async () => {
  tc = await startCluster({ workers: 2, tasks: true });
  await tc.cluster.everywhere(new URL('./fixtures/clear-error-tasks.ts', import.meta.url));
});
afterAll(async () => {
  await tc?.close();
});

/** Calls `f`, which must throw synchronously, and returns what it threw. */
function thrown(f: () => unknown): Error & Record<string, unknown> {
  try {
    f();
  } catch (e) {
    return e as Error & Record<string, unknown>;
  }
  throw new Error('expected a throw, but it returned');
}

describe('clear errors - a value holding a function is refused, naming where the function is', () => {
  it('remotecall - throws at the call, before anything is sent, with the path args[0].opts.cb', async () => {
    const before = tc.cluster.node.refsOwnedBy(2).length;
    const err = thrown(() => tc.cluster.remotecall(echo, 2, { opts: { depth: 1, cb: () => 1 } }));
    expect(err.name).toBe('InvalidArgumentError');
    expect(err.field).toBe('args[0].opts.cb');
    expect(err.message).toMatch(/^args\[0\]\.opts\.cb: is a function.*cannot be sent/);
    // No ref was made for the call that was never sent.
    expect(tc.cluster.node.refsOwnedBy(2).length).toBe(before);
    expect(await tc.cluster.remotecallFetch(echo, 2, { ok: 1 })).toEqual({ ok: 1 });
  });

  it('remotecallFetch - a function in an array, in a Map and at the top level are named by index, key and position', async () => {
    const inArray = await rejection(tc.cluster.remotecallFetch(echo, 2, [1, 2, function f() {}]));
    expect(inArray).toMatchObject({ name: 'InvalidArgumentError', field: 'args[0][2]' });
    const inMap = await rejection(tc.cluster.remotecallFetch(echo, 3, new Map<string, unknown>([['a', 1], ['handler', () => 2]])));
    expect(inMap).toMatchObject({ name: 'InvalidArgumentError', field: 'args[0].handler' });
    const top = await rejection((tc.cluster.remotecallFetch as (...a: unknown[]) => Promise<unknown>)(echo, 2, 'x', () => 3));
    expect(top).toMatchObject({ name: 'InvalidArgumentError', field: 'args[1]' });
  });

  it('put - a value with a function is refused with value.<path>; the ref stays empty and takes a good value after', async () => {
    const r = tc.cluster.remoteRef<unknown>(2);
    const err = await rejection(r.put({ a: { list: [0, { run: () => 0 }] } }));
    expect(err).toMatchObject({ name: 'InvalidArgumentError', field: 'value.a.list[1].run' });
    expect(await r.isReady()).toBe(false);
    await r.put({ a: 1 });
    expect(await r.fetch()).toEqual({ a: 1 });
    await r.free();
  });

  it('pmap - an item with a function fails the map with items[<index>].<path>', async () => {
    const items: unknown[] = Array.from({ length: 50 }, (_, i) => ({ i }));
    items[37] = { i: 37, cb: () => 37 };
    const err = await rejection(tc.cluster.pmap(echo, items, { batchSize: 10 }));
    expect(err).toMatchObject({ name: 'InvalidArgumentError', field: 'items[37].cb' });
  });

  it('pmap - a shared value with a function fails the map with shared.<path>', async () => {
    const err = await rejection(tc.cluster.pmap(echo, [1, 2, 3], { shared: { table: [1], lookup: () => 1 } }));
    expect(err).toMatchObject({ name: 'InvalidArgumentError', field: 'shared.lookup' });
  });

  it('preduce and pfor - an item or the shared value with a function is named from the loop: range[<index>], shared.<path>', async () => {
    const items: unknown[] = [1, 2, 3, 4, 5, { n: 6, next: () => 7 }];
    const inRange = await rejection(tc.cluster.preduce('+', echo, items));
    expect(inRange).toMatchObject({ name: 'InvalidArgumentError', field: 'range[5].next' });
    const inShared = await rejection(tc.cluster.preduce('+', add, 10, { shared: { scale: () => 2 } }));
    expect(inShared).toMatchObject({ name: 'InvalidArgumentError', field: 'shared.scale' });
    const pfor = thrown(() => tc.cluster.pfor(add, 10, { shared: [0, () => 1] }));
    expect(pfor).toMatchObject({ name: 'InvalidArgumentError', field: 'shared[1]' });
  });

  it('a task whose result holds a function fails the call with an error naming result.cb, not an empty object', async () => {
    const err = await rejection(tc.cluster.remotecallFetch(returnsFunction, 2));
    expect(err.name).toBe('RemoteException');
    expect(err.remoteName).toBe('InvalidArgumentError');
    expect(err.message).toContain('result.cb: is a function');
    // The worker is fine afterwards.
    expect(await tc.cluster.remotecallFetch(echo, 2, 5)).toBe(5);
  });
});

describe('clear errors - rmprocs', () => {
  it('rmprocs of a pid that is not a worker is an InvalidArgumentError naming the workers; none is removed', async () => {
    const err = await rejection(tc.cluster.rmprocs(99));
    expect(err).toMatchObject({ name: 'InvalidArgumentError', field: 'pids' });
    expect(err.message).toContain('99 is not a worker');
    expect(err.message).toContain('2, 3');
    const mixed = await rejection(tc.cluster.rmprocs([2, 1.5]));
    expect(mixed).toMatchObject({ name: 'InvalidArgumentError', field: 'pids' });
    expect(tc.cluster.workers()).toEqual([2, 3]);
  });
});

describe('clear errors - a bad events filter', () => {
  const bad = ['worker.', '', 'ref..x', 'a.>.b', 'wor*ker', 'ref.a b', `colony.x.evt.worker.*`];

  it('history - each bad filter is an InvalidArgumentError that shows the valid forms', async () => {
    for (const f of bad) {
      const err = await rejection(tc.cluster.events.history(f));
      expect(err, f).toMatchObject({ name: 'InvalidArgumentError', field: 'filter' });
      for (const form of ["'worker.*'", "'ref.>'", "'worker.2'", "'>'"]) expect(err.message).toContain(form);
    }
    // Good filters still read.
    const workers = await tc.cluster.events.history('worker.*');
    expect(new Set(workers.map((e) => e.id))).toEqual(new Set(['2', '3']));
    expect((await tc.cluster.events.history('worker.2')).every((e) => e.id === '2')).toBe(true);
  });

  it('subscribe - a bad filter throws an InvalidArgumentError at once', () => {
    for (const f of bad) {
      const err = thrown(() => tc.cluster.events.subscribe(f));
      expect(err, f).toMatchObject({ name: 'InvalidArgumentError', field: 'filter' });
      expect(err.message).toContain("'ref.>'");
    }
  });

  it('colony events - a bad filter exits non-zero, printing the valid forms', async () => {
    const err = await rejection(run(process.execPath, [COLONY, 'events', 'ref.>.x', '--state-dir', tc.stateDir, '--name', tc.cluster.name], { timeout: 60_000 }));
    expect(err.code).toBe(1);
    expect(String(err.stderr)).toContain('is not an events filter');
    expect(String(err.stderr)).toContain("'worker.*'");
    expect(String(err.stderr)).not.toContain('JetStreamApiError');
  });
});
