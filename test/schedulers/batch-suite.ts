/**
 * The one story every batch-scheduler manager must tell against its real scheduler (Grid Engine,
 * Slurm): an array job comes up and goes, a held job outlasts the start timeout, close cancels a
 * queued job, a bad target and a worker that cannot start give LaunchErrors, and a job that runs
 * but never announces its worker is cancelled. Each test file gives the scheduler's own words.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShellScheduler, ShellSchedulerOptions } from '../../adapters/shell-scheduler.ts';
import { whereAmI } from '../fixtures/adapter-tasks.ts';
import { startCluster } from '../helpers/cluster.ts';
import type { TestCluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/wait.ts';
import type { Gate } from './gate.ts';
import { ADAPTER_TASKS, adapterEvents, processesWith, spy } from './story.ts';

type Where = ReturnType<typeof whereAmI>;

export interface BatchSchedulerSpec {
  /** The suite's title, e.g. `SGEManager (real Grid Engine)`. */
  title: string;
  /** The scheduler's name, e.g. `Grid Engine`. */
  scheduler: string;
  gate: Gate;
  /** The manager's name (`sge`), as LaunchErrors give it. */
  manager: string;
  make(opts: ShellSchedulerOptions & Record<string, unknown>): ShellScheduler;
  /** Options that place the array job somewhere real (queue or partition, wall time). */
  placed: Record<string, unknown>;
  /** Options that submit the job held. */
  held: Record<string, unknown>;
  /** A target that does not exist, what it is called, and how the submit command says so. */
  bad: { what: string; opts: Record<string, unknown>; stderr: RegExp; short: RegExp };
  /** The submit, list and cancel commands, for test names. */
  tools: { submit: string; list: string; cancel: string };
  /** Between a job id and an array task number in unit ids: `.` or `_`. */
  taskSep: string;
  /** The job id a worker sees in its environment. */
  jobOf(where: Where): string | null;
  /** Job ids the scheduler still lists. */
  queueIds(): Promise<string[]>;
  /** Releases a held job. */
  release(jobId: string): Promise<void>;
}

export function describeBatchScheduler(s: BatchSchedulerSpec): void {
  const units = (jobId: string) => [`${jobId}${s.taskSep}1`, `${jobId}${s.taskSep}2`];
  const gone = (jobId: string, what = `to leave ${s.tools.list}`) =>
    waitFor(async () => !(await s.queueIds()).includes(jobId), { timeoutMs: 30_000, message: `job ${jobId} ${what}` });
  const failure = (p: Promise<unknown>) => p.then(() => null, (e: Error & Record<string, unknown>) => e);

  describe.runIf(s.gate.run)(s.title, () => {
    let tc: TestCluster;
    beforeAll(async () => {
      tc = await startCluster({ workers: 0 });
      await tc.cluster.everywhere(ADAPTER_TASKS);
    });
    afterAll(async () => {
      await tc?.close();
    });
    const jobDir = (stateDir = tc.stateDir) => join(stateDir, 'jobs');

    it(`${s.scheduler} is up`, () => {
      expect(s.gate.up, s.gate.reason).toBe(true);
    });

    it(`addprocs - an array job of 2 workers comes up, answers calls, and leaves ${s.tools.list} on rmprocs`, async () => {
      const { cluster } = tc;
      const m = spy(s.make({ ...s.placed, jobDir: jobDir() }));
      const pids = await cluster.addprocs(m, { count: 2 });
      expect(pids).toHaveLength(2);
      const jobId = m.configs[0]!.schedulerJobId!.split(s.taskSep)[0]!;
      expect(m.configs.map((c) => c.schedulerJobId).sort()).toEqual(units(jobId));

      const where = await Promise.all(pids.map((p) => cluster.remotecallFetch(whereAmI, p)));
      expect(where.map((w) => w.pid)).toEqual(pids);
      for (const w of where) {
        expect(s.jobOf(w)).toBe(jobId);
        expect(w.hasPassword).toBe(true);
      }
      // The password reached the workers' environment, but no command line.
      const password = m.params!.env.COLONY_NATS_PASSWORD!;
      expect(password.length).toBeGreaterThan(8);
      expect(processesWith(password)).toEqual([]);
      // Its file is gone once every task has started.
      const jobs = jobDir();
      await waitFor(async () => !(await readdir(jobs)).some((d) => existsSync(join(jobs, d, 'env'))), { message: 'env file removed' });

      await cluster.rmprocs(pids);
      await gone(jobId);
      await waitFor(async () => (await adapterEvents(cluster, m.id)).filter((e) => e.type === 'adapter.exited').length === 2, { message: 'adapter.exited x2' });
      const h = await adapterEvents(cluster, m.id);
      expect(h.map((e) => e.type)).toEqual(['adapter.requested', 'adapter.queued', 'adapter.started', 'adapter.started', 'adapter.exited', 'adapter.exited']);
      expect(h[1]!.data).toMatchObject({ jobId, units: units(jobId) });
      expect(h.map((e) => e.to)).toEqual(['submitting', 'queued', 'running', 'running', 'running', 'exited']);
      expect(m.liveUnits()).toEqual([]);
    });

    it('addprocs - a held job waits past the start timeout without failing, then comes in when released', async () => {
      await using local = await startCluster({ workers: 1, workerStartTimeoutMs: 4000 });
      const { cluster } = local;
      await cluster.everywhere(ADAPTER_TASKS);
      const m = spy(s.make({ ...s.held, jobDir: jobDir(local.stateDir) }));
      const pending = cluster.addprocs(m, { count: 1 });
      let settled = false;
      void pending.then(() => (settled = true), () => (settled = true));
      const jobId = await waitFor(async () => (await adapterEvents(cluster, m.id)).find((e) => e.type === 'adapter.queued')?.data.jobId as string, { message: 'job queued' });
      const queuedAt = Date.now();
      // The driver is not blocked: the local worker answers while the job waits.
      expect((await cluster.remotecallFetch(whereAmI, 2)).pid).toBe(2);
      // Twice the start timeout passes with the job held in the queue, and nothing fails.
      await waitFor(() => Date.now() - queuedAt > 8000, { timeoutMs: 15_000, message: 'two start timeouts to pass' });
      expect(settled).toBe(false);
      expect(await s.queueIds()).toContain(jobId);
      await s.release(jobId);
      const [pid] = await pending;
      expect(s.jobOf(await cluster.remotecallFetch(whereAmI, pid!))).toBe(jobId);
      await cluster.rmprocs([pid!]);
      await gone(jobId);
    });

    it(`close - a job still waiting in the queue is cancelled (${s.tools.cancel})`, async () => {
      const local = await startCluster({ workers: 0 });
      const m = s.make({ ...s.held, jobDir: jobDir(local.stateDir) });
      const pending = local.cluster.addprocs(m, { count: 2 });
      pending.catch(() => undefined);
      const jobId = await waitFor(async () => (await adapterEvents(local.cluster, m.id)).find((e) => e.type === 'adapter.queued')?.data.jobId as string, { message: 'job queued' });
      expect(await s.queueIds()).toContain(jobId);
      await local.close();
      await gone(jobId, 'to be cancelled');
      await expect(pending).rejects.toMatchObject({ name: 'LaunchError' });
    });

    it(`addprocs - an unknown ${s.bad.what} gives a LaunchError with ${s.tools.submit}'s exit code and stderr, recorded as adapter.failed`, async () => {
      const { cluster } = tc;
      const m = s.make({ ...s.bad.opts, jobDir: jobDir() });
      const err = await failure(cluster.addprocs(m, { count: 2 }));
      expect(err).toMatchObject({ name: 'LaunchError', manager: s.manager, code: 1 });
      expect(err!.stderr).toMatch(s.bad.stderr);
      const h = await adapterEvents(cluster, m.id);
      expect(h.map((e) => `${e.type}:${e.to}`)).toEqual(['adapter.requested:submitting', 'adapter.failed:failed']);
      expect(h[1]!.data).toMatchObject({ code: 1, stderr: expect.stringMatching(s.bad.short) });
    });

    it(`addprocs - a job that runs but never starts its worker is cancelled (${s.tools.cancel}) after announceTimeoutMs`, async () => {
      const { cluster } = tc;
      const m = s.make({ prologue: ['echo stuck in the prologue >&2', 'exec sleep 600'], announceTimeoutMs: 2000, jobDir: jobDir() });
      const err = await failure(cluster.addprocs(m, { count: 1 }));
      expect(err).toMatchObject({ name: 'LaunchError', manager: s.manager });
      expect(err!.message).toMatch(/without its worker starting/);
      expect(err!.stderr).toMatch(/stuck in the prologue/);
      const jobId = String((await adapterEvents(cluster, m.id)).find((e) => e.type === 'adapter.queued')!.data.jobId);
      await gone(jobId);
    });

    it('addprocs - a job whose worker cannot start fails the launch with the job\'s stderr', async () => {
      const { cluster } = tc;
      const m = s.make({ exename: '/nonexistent/node', jobDir: jobDir() });
      const err = await failure(cluster.addprocs(m, { count: 1 }));
      expect(err).toMatchObject({ name: 'LaunchError', manager: s.manager });
      expect(err!.stderr).toMatch(/\/nonexistent\/node: No such file or directory/);
      expect(err!.message).toMatch(/ended before its worker registered/);
    });
  });
}
