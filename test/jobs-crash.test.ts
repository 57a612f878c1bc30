/**
 * Crash safety: the manager (`colony jobs serve`, a real process) is killed with SIGKILL and
 * restarted; no job is lost and none runs twice.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { validateJobSpec } from '../runtime/jobs/job-spec.ts';
import { startLocalRunner } from '../runtime/jobs/job-runner.ts';
import { stamps, startJobs } from './helpers/jobs.ts';
import type { JobsContext } from './helpers/jobs.ts';
import { waitFor, waitForExit } from './helpers/wait.ts';

const COLONY = fileURLToPath(new URL('../runtime/cli/colony.mjs', import.meta.url));

let ctx: JobsContext | null = null;
const procs: ChildProcess[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await ctx?.close();
  ctx = null;
});

async function serve(c: JobsContext, config: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, [COLONY, 'jobs', 'serve', '--nats', c.nats.url, '--name', c.name, '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(p);
  let err = '';
  p.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  await waitFor(() => err.includes('manager of cluster'), { timeoutMs: 30_000, message: `the manager to start (stderr: ${err})` });
  return p;
}

describe('jobs - crash safety', () => {
  it('SIGKILL of the manager while 2 jobs run and 4 wait, then a restart: all 6 succeed, each ran exactly once', async () => {
    ctx = await startJobs({}, false);
    const { jobs, dir } = ctx;
    const config = join(dir, 'colony.yaml');
    await writeFile(config, 'jobs:\n  limits: { perClass: { local: 2 } }\n');
    const first = await serve(ctx, config);
    const ids = await Promise.all(Array.from({ length: 6 }, (_, i) => jobs.submit({
      name: `c${i}`,
      // Long enough to be running across the kill; the release file lets the test end them.
      command: `echo run >> ${dir}/c${i}.runs; echo "::step begun"; while [ ! -e ${dir}/release ]; do sleep 0.05; done; echo '{"n": ${i}}' > "$COLONY_JOB_RESULT"`,
    })));
    await waitFor(async () => (await jobs.list()).filter((j) => j.state === 'running').length === 2, { timeoutMs: 30_000, message: '2 jobs running' });
    expect((await jobs.list()).filter((j) => j.state === 'queued')).toHaveLength(4);
    first.kill('SIGKILL');
    await waitForExit(first.pid!);
    // The running jobs finish while no manager runs: their reports wait in the work queue.
    await writeFile(join(dir, 'release'), '');
    await waitFor(async () => Object.keys(await stamps(dir, '.runs')).length === 2, { message: 'the 2 running jobs to have run' });
    await serve(ctx, config);
    const done = await Promise.all(ids.map((id) => jobs.wait(id, { timeoutMs: 60_000 })));
    expect(done.map((j) => j.state)).toEqual(Array(6).fill('succeeded'));
    expect(done.map((j) => j.result)).toEqual(ids.map((_, i) => ({ n: i })));
    for (const j of done) expect(j.run).toBe(1);
    const runs = await stamps(dir, '.runs');
    expect(Object.keys(runs).sort()).toEqual(ids.map((_, i) => `c${i}`).sort());
    for (const r of Object.values(runs)) expect(r).toBe('run');
  });

  it('SIGKILL of the manager just after its first grants, then a restart: every job runs exactly once', async () => {
    ctx = await startJobs({}, false);
    const { jobs, dir } = ctx;
    const config = join(dir, 'colony.yaml');
    await writeFile(config, 'jobs:\n  limits: { perClass: { local: 3 } }\n');
    const first = await serve(ctx, config);
    const ids = await Promise.all(Array.from({ length: 6 }, (_, i) => jobs.submit({ name: `g${i}`, command: `echo run >> ${dir}/g${i}.runs; sleep 0.2` })));
    // Wherever the manager is between a grant and its runner's start: kill it there.
    await waitFor(async () => (await jobs.list()).some((j) => j.state !== 'queued'), { timeoutMs: 30_000, intervalMs: 5, message: 'a first grant' });
    first.kill('SIGKILL');
    await waitForExit(first.pid!);
    await serve(ctx, config);
    const done = await Promise.all(ids.map((id) => jobs.wait(id, { timeoutMs: 60_000 })));
    expect(done.map((j) => j.state)).toEqual(Array(6).fill('succeeded'));
    const runs = await stamps(dir, '.runs');
    for (const i of ids.keys()) expect(runs[`g${i}`]).toBe('run');
  });

  it('a running job whose runner died with the manager is failed as lost on restart, not left running', async () => {
    ctx = await startJobs({}, false);
    const { jobs, dir } = ctx;
    const config = join(dir, 'colony.yaml');
    await writeFile(config, 'jobs: {}\n');
    const first = await serve(ctx, config);
    const id = await jobs.submit({ name: 'orphan', command: `echo $$ > ${dir}/orphan.pid; exec sleep 60` });
    await waitFor(async () => (await jobs.get(id))?.state === 'running', { timeoutMs: 30_000, message: 'job running' });
    const pong = JSON.parse(Buffer.from((await jobs.nc.request(`colony.${ctx.name}.jobs.runner.${id}`, '{"op":"ping"}')).data).toString()) as { runner: number };
    // The whole host goes: manager, runner and job.
    first.kill('SIGKILL');
    process.kill(pong.runner, 'SIGKILL');
    process.kill(Number(readFileSync(join(dir, 'orphan.pid'), 'utf8')), 'SIGKILL');
    await waitForExit(pong.runner);
    await serve(ctx, config);
    const j = await jobs.wait(id, { timeoutMs: 30_000 });
    expect(j.state).toBe('failed');
    expect(j.reason).toMatch(/^runner lost/);
  });

  it('a run is claimed once: a second runner of the same run (a restarted manager re-launching a granted job) exits without running it', async () => {
    ctx = await startJobs();
    const { jobs, dir, nats, name } = ctx;
    // A granted job whose runner this test starts twice, the second time as a restarted manager would.
    const id = await jobs.submit({ name: 'once', command: `sleep 0.5; echo run >> ${dir}/once.runs` });
    const j = await jobs.wait(id, { timeoutMs: 30_000 });
    expect(j.state).toBe('succeeded');
    const spec = validateJobSpec({ name: 'once', command: `echo again >> ${dir}/once.runs` });
    const runner = await startLocalRunner({ url: nats.url, cluster: name, id, run: 1, spec, host: 'here', logLimit: 1024 });
    await waitForExit(runner, 20_000);
    expect(readFileSync(join(dir, 'once.runs'), 'utf8')).toBe('run\n');
  });
});
