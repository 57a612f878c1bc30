/**
 * SlurmManager against a real Slurm on this machine (test/schedulers/start-slurm.sh; .ci/run
 * starts it). Skipped with a printed reason when Slurm is down, except in CI, where that fails.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlurmManager } from '../adapters/slurm-manager.ts';
import { run } from '../adapters/shell-scheduler.ts';
import { whereAmI } from './fixtures/adapter-tasks.ts';
import { startCluster } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { waitFor } from './helpers/wait.ts';
import { slurmGate } from './schedulers/gate.ts';
import { ADAPTER_TASKS, adapterEvents, processesWith, spy } from './schedulers/story.ts';

const gate = await slurmGate();

/** Job ids Slurm still lists as pending, running or completing (squeue's default states). */
async function queueIds(): Promise<string[]> {
  const { stdout } = await run(['squeue', '--noheader', '--array', '--format=%F']);
  return [...new Set(stdout.split('\n').map((l) => l.trim()).filter(Boolean))];
}

describe.runIf(gate.run)('SlurmManager (real Slurm)', () => {
  let tc: TestCluster;
  beforeAll(async () => {
    tc = await startCluster({ workers: 0 });
    await tc.cluster.everywhere(ADAPTER_TASKS);
  });
  afterAll(async () => {
    await tc?.close();
  });

  it('Slurm is up', () => {
    expect(gate.up, gate.reason).toBe(true);
  });

  it('addprocs - an array job of 2 workers comes up, answers calls, and leaves squeue on rmprocs', async () => {
    const { cluster } = tc;
    const slurm = spy(new SlurmManager({ partition: 'main', time: 600, jobDir: join(tc.stateDir, 'jobs') }));
    const pids = await cluster.addprocs(slurm, { count: 2 });
    expect(pids).toHaveLength(2);
    const jobId = slurm.configs[0]!.schedulerJobId!.split('_')[0]!;
    expect(slurm.configs.map((c) => c.schedulerJobId).sort()).toEqual([`${jobId}_1`, `${jobId}_2`]);

    const where = await Promise.all(pids.map((p) => cluster.remotecallFetch(whereAmI, p)));
    expect(where.map((w) => w.pid)).toEqual(pids);
    for (const w of where) {
      expect(w.slurmJob).toBe(jobId);
      expect(w.hasPassword).toBe(true);
    }
    // The password reached the workers' environment, but no command line.
    const password = slurm.params!.env.COLONY_NATS_PASSWORD!;
    expect(password.length).toBeGreaterThan(8);
    expect(processesWith(password)).toEqual([]);
    // Its file is gone once every task has started.
    const jobs = join(tc.stateDir, 'jobs');
    await waitFor(async () => !(await readdir(jobs)).some((d) => existsSync(join(jobs, d, 'env'))), { message: 'env file removed' });

    await cluster.rmprocs(pids);
    await waitFor(async () => !(await queueIds()).includes(jobId), { timeoutMs: 30_000, message: `job ${jobId} to leave squeue` });
    await waitFor(async () => (await adapterEvents(cluster, slurm.id)).filter((e) => e.type === 'adapter.exited').length === 2, { message: 'adapter.exited x2' });
    const h = await adapterEvents(cluster, slurm.id);
    expect(h.map((e) => e.type)).toEqual(['adapter.requested', 'adapter.queued', 'adapter.started', 'adapter.started', 'adapter.exited', 'adapter.exited']);
    expect(h[1]!.data).toMatchObject({ jobId, units: [`${jobId}_1`, `${jobId}_2`] });
    expect(h.map((e) => e.to)).toEqual(['submitting', 'queued', 'running', 'running', 'running', 'exited']);
    expect(slurm.liveUnits()).toEqual([]);
  });

  it('addprocs - a held job waits past the start timeout without failing, then comes in when released', async () => {
    await using local = await startCluster({ workers: 1, workerStartTimeoutMs: 4000 });
    const { cluster } = local;
    await cluster.everywhere(ADAPTER_TASKS);
    const slurm = spy(new SlurmManager({ sbatchFlags: ['--hold'], jobDir: join(local.stateDir, 'jobs') }));
    const pending = cluster.addprocs(slurm, { count: 1 });
    let settled = false;
    void pending.then(() => (settled = true), () => (settled = true));
    const jobId = await waitFor(async () => (await adapterEvents(cluster, slurm.id)).find((e) => e.type === 'adapter.queued')?.data.jobId as string, { message: 'job queued' });
    const queuedAt = Date.now();
    // The driver is not blocked: the local worker answers while the job waits.
    expect((await cluster.remotecallFetch(whereAmI, 2)).pid).toBe(2);
    // Twice the start timeout passes with the job held in the queue, and nothing fails.
    await waitFor(() => Date.now() - queuedAt > 8000, { timeoutMs: 15_000, message: 'two start timeouts to pass' });
    expect(settled).toBe(false);
    expect(await queueIds()).toContain(jobId);
    await run(['scontrol', 'release', jobId]);
    const [pid] = await pending;
    expect((await cluster.remotecallFetch(whereAmI, pid!)).slurmJob).toBe(jobId);
    await cluster.rmprocs([pid!]);
    await waitFor(async () => !(await queueIds()).includes(jobId), { timeoutMs: 30_000, message: `job ${jobId} to leave squeue` });
  });

  it('close - a job still waiting in the queue is cancelled (scancel)', async () => {
    const local = await startCluster({ workers: 0 });
    const slurm = new SlurmManager({ sbatchFlags: ['--hold'], jobDir: join(local.stateDir, 'jobs') });
    const pending = local.cluster.addprocs(slurm, { count: 2 });
    pending.catch(() => undefined);
    const jobId = await waitFor(async () => (await adapterEvents(local.cluster, slurm.id)).find((e) => e.type === 'adapter.queued')?.data.jobId as string, { message: 'job queued' });
    expect(await queueIds()).toContain(jobId);
    await local.close();
    await waitFor(async () => !(await queueIds()).includes(jobId), { timeoutMs: 30_000, message: `job ${jobId} to be cancelled` });
    await expect(pending).rejects.toMatchObject({ name: 'LaunchError' });
  });

  it('addprocs - an unknown partition gives a LaunchError with sbatch\'s exit code and stderr, recorded as adapter.failed', async () => {
    const { cluster } = tc;
    const slurm = new SlurmManager({ partition: 'nosuch', jobDir: join(tc.stateDir, 'jobs') });
    const err = await cluster.addprocs(slurm, { count: 2 }).then(() => null, (e: Error & Record<string, unknown>) => e);
    expect(err).toMatchObject({ name: 'LaunchError', manager: 'slurm', code: 1 });
    expect(err!.stderr).toMatch(/invalid partition specified: nosuch/);
    const h = await adapterEvents(cluster, slurm.id);
    expect(h.map((e) => `${e.type}:${e.to}`)).toEqual(['adapter.requested:submitting', 'adapter.failed:failed']);
    expect(h[1]!.data).toMatchObject({ code: 1, stderr: expect.stringMatching(/invalid partition/) });
  });

  it('addprocs - a job whose worker cannot start fails the launch with the job\'s stderr', async () => {
    const { cluster } = tc;
    const slurm = new SlurmManager({ exename: '/nonexistent/node', jobDir: join(tc.stateDir, 'jobs') });
    const err = await cluster.addprocs(slurm, { count: 1 }).then(() => null, (e: Error & Record<string, unknown>) => e);
    expect(err).toMatchObject({ name: 'LaunchError', manager: 'slurm' });
    expect(err!.stderr).toMatch(/\/nonexistent\/node: No such file or directory/);
    expect(err!.message).toMatch(/ended before its worker registered/);
  });
});
