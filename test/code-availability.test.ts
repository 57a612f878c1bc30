import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteRef } from '../runtime/index.ts';
import { echo, whoami } from './fixtures/tasks.ts';
import { lateTask } from './fixtures/late-tasks.ts';
import { Shape, area, isRefLike } from './fixtures/ts-tasks.ts';
import { TASKS_URL, startCluster } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { waitFor } from './helpers/wait.ts';
import { rejection } from './helpers/settle.ts';

describe('code availability', () => {
  let tc: TestCluster;

  beforeAll(async () => {
    // No `tasks: true`: the tests load modules themselves.
    tc = await startCluster({ workers: 1 });
  });
  afterAll(async () => {
    await tc?.close();
  });

  it('task() - names a function by its module URL and function name', () => {
    expect(echo.module).toBe(TASKS_URL.href);
    expect(echo.taskName).toBe('echo');
    expect(echo.key).toBe(`${TASKS_URL.href}#echo`);
    // Called directly, a task is the plain function.
    expect(echo(5)).toBe(5);
  });

  it('TaskNotFoundError - a task whose module was not loaded names the module and export and hints at everywhere', async () => {
    const err = await rejection(tc.cluster.remotecallFetch(lateTask, 2, 1));
    expect(err.name).toBe('TaskNotFoundError');
    expect(err.pid).toBe(2);
    expect(err.module).toBe(lateTask.module);
    expect(err.exportName).toBe('lateTask');
    expect(err.message).toContain(lateTask.module);
    expect(err.message).toContain('lateTask');
    expect(err.message).toContain('everywhere');
    // Through a ref, the same error.
    const viaRef = await rejection(tc.cluster.remotecall(lateTask, 2, 1).fetch());
    expect(viaRef.name).toBe('TaskNotFoundError');
    expect(viaRef.message).toContain('everywhere');
  });

  it('everywhere - makes the tasks of a module callable on current workers and on workers added later', async () => {
    const { cluster } = tc;
    expect((await rejection(cluster.remotecallFetch(whoami, 2))).name).toBe('TaskNotFoundError');
    await cluster.everywhere(TASKS_URL);
    expect(await cluster.remotecallFetch(whoami, 2)).toBe(2);
    const [later] = await cluster.addprocs(1);
    try {
      expect(await cluster.remotecallFetch(whoami, later!)).toBe(later);
      expect(await cluster.remotecallFetch(echo, later!, 'loaded at start')).toBe('loaded at start');
    } finally {
      await cluster.rmprocs(later!);
    }
    // Loading a module twice is harmless.
    await cluster.everywhere(TASKS_URL);
    expect(await cluster.remotecallFetch(whoami, 2)).toBe(2);
  });

  it('everywhere - loads a TypeScript module given as a path, with enums, classes and imports from "colony"', async () => {
    const { cluster } = tc;
    await cluster.everywhere('test/fixtures/ts-tasks.ts');
    expect(await cluster.remotecallFetch(area, 2, Shape.Square, 3)).toEqual({ pid: 2, area: 9 });
    const circle = await cluster.remotecallFetch(area, 2, Shape.Circle, 1);
    expect(circle.area).toBeCloseTo(Math.PI);
    const r = cluster.remotecall(echo, 2, 1);
    expect(await cluster.remotecallFetch(isRefLike, 2, r)).toBe(true);
    expect(r).toBeInstanceOf(RemoteRef);
  });

  it('everywhere - a module that fails on a worker gives an error naming the worker and the module', async () => {
    const url = new URL('./fixtures/broken-on-workers.ts', import.meta.url);
    const err = await rejection(tc.cluster.everywhere(url));
    expect(err.message).toContain('worker 2');
    expect(err.message).toContain('broken-on-workers');
    // The worker is unharmed.
    expect(await tc.cluster.remotecallFetch(whoami, 2)).toBe(2);
  });

  it('everywhere - a module that cannot be imported at all is refused, and the cluster keeps working', async () => {
    const url = new URL('./fixtures/broken-everywhere.ts', import.meta.url);
    const err = await rejection(tc.cluster.everywhere(url));
    expect(err.message).toContain('broken-everywhere');
    expect(await tc.cluster.remotecallFetch(whoami, 2)).toBe(2);
    const [later] = await tc.cluster.addprocs(1);
    try {
      expect(await tc.cluster.remotecallFetch(whoami, later!)).toBe(later);
    } finally {
      await tc.cluster.rmprocs(later!);
    }
  });

  it('everywhere - a module loaded while a worker is still starting up is loaded on that worker too', async () => {
    const { cluster } = tc;
    const adding = cluster.addprocs(1);
    // Catch the worker between its registration and its readiness.
    await waitFor(() => cluster.workerInfo().some((w) => w.state === 'registered'), { intervalMs: 2, message: 'a worker registered, not ready yet' });
    await cluster.everywhere(new URL('./fixtures/ts-tasks.ts', import.meta.url));
    await cluster.everywhere(new URL('./fixtures/late-tasks.ts', import.meta.url));
    const [pid] = await adding;
    try {
      expect(await cluster.remotecallFetch(lateTask, pid!, 7)).toEqual({ pid, x: 7 });
    } finally {
      await cluster.rmprocs(pid!);
    }
  });
});

