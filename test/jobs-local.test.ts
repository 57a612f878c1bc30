/**
 * The job manager with local jobs: a real nats-server, real runner processes, real commands.
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { JobSpecError } from '../runtime/jobs/job-spec.ts';
import { replayActor } from '../runtime/log/replay.ts';
import { maxOverlap, stamps, startJobs } from './helpers/jobs.ts';
import type { JobsContext } from './helpers/jobs.ts';
import { processAlive, waitFor } from './helpers/wait.ts';

let ctx: JobsContext | null = null;
afterEach(async () => {
  await ctx?.close();
  ctx = null;
});

/** A job that stamps its start and end, reports two steps, prints and returns a result. */
const stampJob = (dir: string, n: string, sleep = 0.3) => ({
  name: n,
  command: `date +%s%N > ${dir}/${n}.start; echo run >> ${dir}/${n}.runs; echo "::step fetch"; sleep ${sleep}; echo "::step crunch"; echo "out of ${n}"; ` +
    `echo '{"job": "${n}", "ok": true}' > "$COLONY_JOB_RESULT"; date +%s%N > ${dir}/${n}.end`,
  steps: ['fetch', 'crunch'],
});

describe('jobs - local', () => {
  it('6 jobs under perClass.local 2: never more than 2 at once, all succeed with their steps in order, result and output', async () => {
    ctx = await startJobs({ limits: { perClass: { local: 2 } } });
    const { jobs, dir } = ctx;
    const ids = await Promise.all(Array.from({ length: 6 }, (_, i) => jobs.submit(stampJob(dir, `j${i}`))));
    const done = await Promise.all(ids.map((id) => jobs.wait(id, { timeoutMs: 60_000 })));
    for (const [i, j] of done.entries()) {
      expect(j.state, j.reason ?? '').toBe('succeeded');
      expect(j.steps).toEqual(['fetch', 'crunch']);
      expect(j.result).toEqual({ job: `j${i}`, ok: true });
      expect(j.code).toBe(0);
      let out = '';
      for await (const c of jobs.logs(j.id)) out += Buffer.from(c.data).toString();
      expect(out).toBe(`::step fetch\n::step crunch\nout of j${i}\n`);
    }
    const start = await stamps(dir, '.start');
    const end = await stamps(dir, '.end');
    expect(Object.keys(start)).toHaveLength(6);
    expect(maxOverlap(Object.keys(start).map((k) => [Number(start[k]), Number(end[k])]))).toBe(2);
    // The log tells the whole story, and replays to the same states.
    const h = await ctx.manager!.journal.read(`job.${ids[0]}`);
    expect(h.map((e) => e.type)).toEqual(['job.queued', 'job.granted', 'job.started', 'job.step.completed', 'job.step.completed', 'job.succeeded']);
    expect(replayActor(h, { verify: true }).state).toBe('succeeded');
    expect((await jobs.list()).map((j) => j.state)).toEqual(Array(6).fill('succeeded'));
  });

  it('a failing command is failed with its exit code and stderr tail; retries: 1 runs twice, then fails', async () => {
    ctx = await startJobs();
    const { jobs, dir } = ctx;
    const bad = await jobs.submit({ name: 'bad', command: 'echo "something broke" >&2; exit 3' });
    const twice = await jobs.submit({ name: 'twice', command: `echo x >> ${dir}/twice.runs; echo "nope $COLONY_JOB_RUN" >&2; exit 4`, retries: 1 });
    const b = await jobs.wait(bad, { timeoutMs: 30_000 });
    expect(b).toMatchObject({ state: 'failed', code: 3, reason: 'exit code 3', stderrTail: 'something broke\n' });
    const t = await jobs.wait(twice, { timeoutMs: 30_000 });
    expect(t).toMatchObject({ state: 'failed', code: 4, run: 2, stderrTail: 'nope 2\n' });
    expect(readFileSync(join(dir, 'twice.runs'), 'utf8')).toBe('x\nx\n');
    const h = await ctx.manager!.journal.read(`job.${twice}`);
    expect(h.map((e) => e.to)).toEqual(['queued', 'granted', 'running', 'queued', 'granted', 'running', 'failed']);
  });

  it('a job over its timeout is killed and failed with the reason', async () => {
    ctx = await startJobs();
    const { jobs, dir } = ctx;
    const id = await jobs.submit({ name: 'slow', command: `echo $$ > ${dir}/slow.pid; exec sleep 30`, timeout: 1 });
    const j = await jobs.wait(id, { timeoutMs: 30_000 });
    expect(j.state).toBe('failed');
    expect(j.reason).toBe('timeout: killed after 1 s');
    expect(processAlive(Number(readFileSync(join(dir, 'slow.pid'), 'utf8')))).toBe(false);
  });

  it('cancel of a running local job: cancelled, and its process is gone', async () => {
    ctx = await startJobs();
    const { jobs, dir } = ctx;
    const id = await jobs.submit({ name: 'forever', command: `echo $$ > ${dir}/forever.pid; exec sleep 60` });
    const running = await waitFor(async () => ((await jobs.get(id))?.state === 'running' ? jobs.get(id) : null), { timeoutMs: 30_000, message: 'job running' });
    const pid = await waitFor(() => Number(readFileSync(join(dir, 'forever.pid'), 'utf8')) || null, { message: 'pid file' });
    expect(running.ospid).toBe(pid);
    expect(processAlive(pid)).toBe(true);
    const j = await jobs.cancel(id, { by: 'alice' });
    expect(j).toMatchObject({ state: 'cancelled', cancelledBy: 'alice' });
    await waitFor(() => !processAlive(pid), { message: 'the job process to be gone' });
  });

  it('logs --follow streams output as it comes and ends with the job', async () => {
    ctx = await startJobs();
    const { jobs, dir } = ctx;
    const id = await jobs.submit({ name: 'chatty', command: `for i in 1 2 3; do echo line $i; while [ ! -e ${dir}/go$i ]; do sleep 0.02; done; done; echo oops >&2` });
    const seen: string[] = [];
    const follow = (async () => {
      for await (const c of jobs.logs(id, { follow: true })) seen.push(`${c.stream}:${Buffer.from(c.data).toString()}`);
    })();
    for (const i of [1, 2, 3]) {
      await waitFor(() => seen.join('').includes(`line ${i}`), { timeoutMs: 30_000, message: `line ${i} to stream` });
      await writeFile(join(dir, `go${i}`), '');
    }
    await follow;
    expect(seen.join('')).toBe('out:line 1\nout:line 2\nout:line 3\nerr:oops\n');
    expect((await jobs.get(id))!.state).toBe('succeeded');
  });

  it('a bad job is refused with its file and field, and nothing is queued', async () => {
    ctx = await startJobs();
    const { jobs } = ctx;
    await expect(jobs.submit('name: x\nclass: ssh\ncommand: [true]\n', 'x.yaml')).rejects.toThrow(JobSpecError);
    await expect(jobs.submit('name: x\nclass: ssh\ncommand: [true]\n', 'x.yaml')).rejects.toThrow(/^x\.yaml: host: is required/);
    expect(await jobs.list()).toEqual([]);
  });
});
