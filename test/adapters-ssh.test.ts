/**
 * SSHManager against a real OpenSSH server on 127.0.0.1 with a private config directory
 * (test/schedulers/start-sshd.sh; .ci/run starts it). Skipped with a printed reason when it is
 * down, except in CI, where that fails.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SSHManager } from '../adapters/ssh-manager.ts';
import { whereAmI } from './fixtures/adapter-tasks.ts';
import { startCluster } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { processAlive, waitFor } from './helpers/wait.ts';
import { SSHD_DIR, sshdGate } from './schedulers/gate.ts';
import { ADAPTER_TASKS, adapterEvents, processesWith, spy } from './schedulers/story.ts';

const gate = await sshdGate();
const port = (() => {
  try {
    return Number(readFileSync(join(SSHD_DIR, 'port'), 'utf8').trim());
  } catch {
    return 2222;
  }
})();
const sshflags = ['-F', join(SSHD_DIR, 'ssh_config')];

describe.runIf(gate.run)('SSHManager (real sshd on 127.0.0.1)', () => {
  let tc: TestCluster;
  beforeAll(async () => {
    tc = await startCluster({ workers: 0 });
    await tc.cluster.everywhere(ADAPTER_TASKS);
  });
  afterAll(async () => {
    await tc?.close();
  });

  it('sshd is up', () => {
    expect(gate.up, gate.reason).toBe(true);
  });

  it('addprocs - 2 workers over ssh (one connection at a time) answer calls; the password is on no command line; rmprocs ends the sessions', async () => {
    const { cluster } = tc;
    const ssh = spy(new SSHManager({ machines: [{ host: `root@127.0.0.1:${port}`, count: 2 }], sshflags, maxParallel: 1, output: 'ignore' }));
    const pids = await cluster.addprocs(ssh, { count: 2 });
    expect(pids).toHaveLength(2);
    const where = await Promise.all(pids.map((p) => cluster.remotecallFetch(whereAmI, p)));
    expect(where.map((w) => w.pid)).toEqual(pids);
    for (const w of where) expect(w.hasPassword).toBe(true);
    // The worker was started by sshd's session, not by this driver.
    for (const c of ssh.configs) {
      expect(c.host).toBe('127.0.0.1');
      expect(c.process?.spawnargs[0]).toBe('ssh');
      expect(where.map((w) => w.ospid)).toContain(c.ospid);
    }
    expect(processesWith(ssh.params!.env.COLONY_NATS_PASSWORD!)).toEqual([]);

    await cluster.rmprocs(pids);
    for (const w of where) expect(processAlive(w.ospid)).toBe(false);
    for (const c of ssh.configs) expect(c.process!.exitCode).toBe(0);
    const h = await adapterEvents(cluster, ssh.id);
    expect(h.map((e) => `${e.type}:${e.to}`)).toEqual([
      'adapter.requested:submitting', 'adapter.started:running', 'adapter.started:running', 'adapter.exited:running', 'adapter.exited:exited',
    ]);
  });

  it('kill - a worker is killed through ssh (kill -TERM of its remote pid), and the driver sees it gone', async () => {
    const { cluster } = tc;
    const ssh = spy(new SSHManager({ machines: [`root@127.0.0.1:${port}`], sshflags, output: 'ignore' }));
    const [pid] = await cluster.addprocs(ssh, { count: 1 });
    const { ospid } = await cluster.remotecallFetch(whereAmI, pid!);
    await ssh.kill(pid!, ssh.configs[0]!);
    await waitFor(() => !processAlive(ospid), { message: `remote worker ${ospid} to die` });
    await waitFor(() => !cluster.workers().includes(pid!), { message: `worker ${pid} to leave` });
    const h = await cluster.events.history(`worker.${pid}`);
    expect(h.at(-1)!.type).toBe('worker.lost');
  });

  it('addprocs - an unreachable host gives a LaunchError with ssh\'s exit code 255 and stderr', async () => {
    const { cluster } = tc;
    const ssh = new SSHManager({ machines: ['root@127.0.0.1:1'], sshflags, output: 'ignore' });
    const err = await cluster.addprocs(ssh, { count: 1 }).then(() => null, (e: Error & Record<string, unknown>) => e);
    expect(err).toMatchObject({ name: 'LaunchError', manager: 'ssh', code: 255 });
    expect(err!.stderr).toMatch(/Connection refused/);
    const h = await adapterEvents(cluster, ssh.id);
    expect(h.map((e) => `${e.type}:${e.to}`)).toEqual(['adapter.requested:submitting', 'adapter.failed:failed']);
  });
});
