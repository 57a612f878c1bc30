/**
 * ssh jobs over the real sshd on 127.0.0.1 (test/schedulers/start-sshd.sh). Its ssh_config names
 * the server `colony-sshd`, `localhost` and `127.0.0.1`: two of those names serve as two hosts
 * for the per-host limit.
 */
import { readFileSync, existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startJobs } from './helpers/jobs.ts';
import type { JobsContext } from './helpers/jobs.ts';
import { processAlive, waitFor } from './helpers/wait.ts';
import { SSHD_DIR, sshdGate } from './schedulers/gate.ts';
import { processesWith } from './schedulers/story.ts';

const gate = await sshdGate();
const ssh = { sshflags: ['-F', join(SSHD_DIR, 'ssh_config')], exename: process.execPath };

let ctx: JobsContext | null = null;
afterEach(async () => {
  await ctx?.close();
  ctx = null;
});

describe.runIf(gate.run)('jobs - ssh (real sshd)', () => {
  it('an ssh job runs over sshd and returns its result; its output and steps come back; the password is on no command line', async () => {
    ctx = await startJobs({ ssh }, true, true);
    const { jobs, dir } = ctx;
    const id = await jobs.submit({
      name: 'remote', class: 'ssh', host: 'colony-sshd',
      command: ['sh', '-c', `echo $$ > ${dir}/remote.pid; echo "::step there"; hostname; echo '{"where": "ssh"}' > "$COLONY_JOB_RESULT"; sleep 0.5`],
    });
    const running = await waitFor(async () => ((await jobs.get(id))?.state === 'running' ? jobs.get(id) : null), { timeoutMs: 60_000, message: 'ssh job running' });
    expect(processesWith(ctx.nats.password!)).toEqual([]);
    const j = await jobs.wait(id, { timeoutMs: 60_000 });
    expect(j).toMatchObject({ state: 'succeeded', host: 'colony-sshd', steps: ['there'], result: { where: 'ssh' } });
    expect(running.ospid).toBe(Number(readFileSync(join(dir, 'remote.pid'), 'utf8')));
    let out = '';
    for await (const c of jobs.logs(id)) out += Buffer.from(c.data).toString();
    expect(out).toMatch(/^::step there\n.+\n$/);
  });

  it('cancel of a running ssh job: cancelled, and its remote process is gone', async () => {
    ctx = await startJobs({ ssh });
    const { jobs, dir } = ctx;
    const id = await jobs.submit({ name: 'long', class: 'ssh', host: 'colony-sshd', command: `echo $$ > ${dir}/long.pid; exec sleep 60` });
    await waitFor(async () => (await jobs.get(id))?.state === 'running', { timeoutMs: 60_000, message: 'ssh job running' });
    const pid = await waitFor(() => (existsSync(join(dir, 'long.pid')) ? Number(readFileSync(join(dir, 'long.pid'), 'utf8')) : null), { message: 'pid file' });
    expect(processAlive(pid)).toBe(true);
    const j = await jobs.cancel(id, { by: 'bob' });
    expect(j).toMatchObject({ state: 'cancelled', cancelledBy: 'bob' });
    await waitFor(() => !processAlive(pid), { message: 'the remote job process to be gone' });
  });

  it('perHost: jobs for a full host wait while a job for another host starts', async () => {
    ctx = await startJobs({ ssh, limits: { perHost: { 'colony-sshd': 1 } } });
    const { jobs, dir } = ctx;
    const hold = (n: string) => `echo start >> ${dir}/${n}.runs; while [ ! -e ${dir}/release ]; do sleep 0.05; done`;
    const a = await jobs.submit({ name: 'a', class: 'ssh', host: 'colony-sshd', command: hold('a') });
    const b = await jobs.submit({ name: 'b', class: 'ssh', host: 'colony-sshd', command: hold('b') });
    const c = await jobs.submit({ name: 'c', class: 'ssh', host: 'localhost', command: hold('c') });
    await waitFor(async () => (await jobs.get(a))?.state === 'running' && (await jobs.get(c))?.state === 'running', { timeoutMs: 60_000, message: 'a and c running' });
    expect((await jobs.get(b))!.state).toBe('queued');
    expect(existsSync(join(dir, 'b.runs'))).toBe(false);
    await writeFile(join(dir, 'release'), '');
    const done = await Promise.all([a, b, c].map((id) => jobs.wait(id, { timeoutMs: 60_000 })));
    expect(done.map((j) => j.state)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    // b started only once a had ended.
    expect(done[1]!.startedAt!).toBeGreaterThanOrEqual(done[0]!.endedAt!);
  });
});
