/**
 * `colony jobs ...` as a user runs it: `serve` with its embedded NATS under .colony/, and the
 * client commands from the same directory.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, waitForExit } from './helpers/wait.ts';
import { readState } from '../runtime/transport/cluster-files.ts';

const COLONY = fileURLToPath(new URL('../runtime/cli/colony.mjs', import.meta.url));

function colony(cwd: string, ...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [COLONY, ...argv], { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('colony jobs (CLI, embedded NATS)', () => {
  let dir: string;
  let serve: ChildProcess;
  const startServe = async () => {
    serve = spawn(process.execPath, [COLONY, 'jobs', 'serve'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    serve.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    await waitFor(() => err.includes('manager of cluster'), { timeoutMs: 30_000, message: `colony jobs serve to start (stderr: ${err})` });
  };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'colony-jobs-cli-'));
    await writeFile(join(dir, 'colony.yaml'), 'jobs:\n  limits: { perClass: { local: 2 } }\n');
    await startServe();
  });
  afterAll(async () => {
    const state = await readState(join(dir, '.colony'), 'default');
    serve?.kill('SIGTERM');
    if (serve?.pid) await waitForExit(serve.pid, 20_000);
    // The restarted serve stops the server it reused, as the first would have.
    if (state?.natsPid) await waitForExit(state.natsPid, 20_000);
    await rm(dir, { recursive: true, force: true });
  });

  it('submit prints one id per line; wait exits 0; show, list and logs tell the jobs', async () => {
    await writeFile(join(dir, 'a.yaml'), 'name: a\ncommand: [sh, -c, "echo ::step one; echo hello; echo \'{\\"v\\": 1}\' > $COLONY_JOB_RESULT"]\nsteps: [one]\n');
    await writeFile(join(dir, 'b.yaml'), 'name: b\ncommand: echo to-stderr >&2\n');
    const sub = await colony(dir, 'jobs', 'submit', 'a.yaml', 'b.yaml');
    expect(sub.stderr).toBe('');
    const ids = sub.stdout.trim().split('\n');
    expect(ids).toHaveLength(2);
    expect(ids[0]).toMatch(/^a-[0-9a-f]{8}$/);
    const w = await colony(dir, 'jobs', 'wait', ...ids);
    expect(w.code, w.stderr).toBe(0);
    expect(w.stdout).toBe(`${ids[0]} succeeded\n${ids[1]} succeeded\n`);
    const show = JSON.parse((await colony(dir, 'jobs', 'show', ids[0]!, '--json')).stdout);
    expect(show).toMatchObject({ id: ids[0], state: 'succeeded', steps: ['one'], result: { v: 1 } });
    const list = JSON.parse((await colony(dir, 'jobs', 'list', '--json')).stdout) as { id: string }[];
    expect(list.map((j) => j.id)).toEqual(ids);
    const logs = await colony(dir, 'jobs', 'logs', ids[1]!);
    expect(logs.stderr).toBe('to-stderr\n');
    expect((await colony(dir, 'jobs', 'logs', ids[0]!)).stdout).toBe('::step one\nhello\n');
    const replay = await colony(dir, 'replay', `job/${ids[0]}`, '--verify');
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toMatch(/succeeded/);
  });

  it('bad files (malformed YAML, unknown class, missing command, ssh without host) are refused by file and field; nothing is queued', async () => {
    const before = JSON.parse((await colony(dir, 'jobs', 'list', '--json')).stdout).length as number;
    await writeFile(join(dir, 'ok.yaml'), 'name: ok\ncommand: [true]\n');
    await writeFile(join(dir, 'malformed.yaml'), 'name: m\ncommand: [true\n');
    await writeFile(join(dir, 'class.yaml'), 'name: c\nclass: cloud\ncommand: [true]\n');
    await writeFile(join(dir, 'nocmd.yaml'), 'name: n\n');
    await writeFile(join(dir, 'nohost.yaml'), 'name: s\nclass: ssh\ncommand: [true]\n');
    const r = await colony(dir, 'jobs', 'submit', 'ok.yaml', 'malformed.yaml', 'class.yaml', 'nocmd.yaml', 'nohost.yaml');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/nothing was queued/);
    expect(r.stderr).toMatch(/malformed\.yaml:\d+: malformed YAML/);
    expect(r.stderr).toMatch(/class\.yaml:2: class: unknown class "cloud"/);
    expect(r.stderr).toMatch(/nocmd\.yaml: command: is required/);
    expect(r.stderr).toMatch(/nohost\.yaml: host: is required for an ssh job/);
    expect(JSON.parse((await colony(dir, 'jobs', 'list', '--json')).stdout)).toHaveLength(before);
  });

  it('serve killed with SIGKILL and started again from the same directory: it reuses the embedded server, and the running job finishes', async () => {
    await writeFile(join(dir, 'hold.yaml'), `name: hold\ncommand: while [ ! -e ${dir}/go ]; do sleep 0.05; done; echo done\n`);
    const [id] = (await colony(dir, 'jobs', 'submit', 'hold.yaml')).stdout.trim().split('\n');
    await waitFor(async () => JSON.parse((await colony(dir, 'jobs', 'show', id!, '--json')).stdout).state === 'running', { timeoutMs: 30_000, message: 'hold running' });
    const before = await readState(join(dir, '.colony'), 'default');
    serve.kill('SIGKILL');
    await waitForExit(serve.pid!);
    await writeFile(join(dir, 'go'), '');
    await startServe();
    const after = await readState(join(dir, '.colony'), 'default');
    expect(after!.natsPid).toBe(before!.natsPid);
    expect(after!.driverPid).toBe(serve.pid);
    const w = await colony(dir, 'jobs', 'wait', id!);
    expect(w.stdout).toBe(`${id} succeeded\n`);
    expect((await colony(dir, 'jobs', 'logs', id!)).stdout).toBe('done\n');
  });
});
