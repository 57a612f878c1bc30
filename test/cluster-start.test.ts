import { statSync, existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { Cluster } from '../runtime/index.ts';
import { echo, whoami } from './fixtures/tasks.ts';
import { TASKS_URL, externalNats, startCluster, tempDir } from './helpers/cluster.ts';
import { startNats, uniqueName } from './helpers/nats.ts';
import { processAlive } from './helpers/wait.ts';
import { rejection, within } from './helpers/settle.ts';

interface StateFile {
  name: string;
  url: string;
  driverPid: number;
  natsPid: number;
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('Cluster.start - embedded NATS', () => {
  it.skipIf(externalNats)('start() spawns nats-server on loopback, writes its state file and a 0600 credential; close() stops it all', async () => {
    const tc = await startCluster({ workers: 1, tasks: true });
    const { cluster } = tc;
    let pids: number[] = [];
    try {
      const file = join(tc.stateDir, 'default', 'cluster.json');
      const state = JSON.parse(await readFile(file, 'utf8')) as StateFile;
      expect(state.name).toBe('default');
      expect(state.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
      expect(state.url).toBe(cluster.url);
      expect(state.driverPid).toBe(process.pid);
      expect(processAlive(state.natsPid)).toBe(true);

      const credFile = join(tc.stateDir, 'default', 'credentials.json');
      expect(statSync(credFile).mode & 0o777).toBe(0o600);
      const creds = JSON.parse(await readFile(credFile, 'utf8')) as { user: string; password: string };
      expect(creds.user).toBeTruthy();
      expect(creds.password.length).toBeGreaterThanOrEqual(16);
      // The server wants the credential: a client without it is refused, one with it gets in.
      await expect(connect({ servers: state.url, reconnect: false, maxReconnectAttempts: 0 })).rejects.toThrow(/authoriz/i);
      const nc = await connect({ servers: state.url, user: creds.user, pass: creds.password });
      await nc.close();
      expect(existsSync(join(tc.stateDir, 'default', 'nats'))).toBe(true);

      expect(await cluster.remotecallFetch(whoami, 2)).toBe(2);
      pids = [state.natsPid, ...cluster.workerInfo().map((w) => w.ospid)];
      await cluster.close();
      for (const p of pids) expect(processAlive(p), `process ${p}`).toBe(false);
      expect(existsSync(file)).toBe(false);
    } finally {
      for (const p of pids) if (processAlive(p)) process.kill(p, 'SIGKILL');
      await tc.close();
    }
  });

  it.skipIf(externalNats)('start() without stateDir keeps its files under .colony/ in the working directory', async () => {
    const dir = await tempDir('colony-cwd-');
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const cluster = await Cluster.start({ workerOutput: 'ignore', name: 'here' });
      try {
        const state = JSON.parse(await readFile(join(dir, '.colony', 'here', 'cluster.json'), 'utf8')) as StateFile;
        expect(state.url).toBe(cluster.url);
        expect(statSync(join(dir, '.colony', 'here', 'credentials.json')).mode & 0o777).toBe(0o600);
      } finally {
        await cluster.close();
      }
    } finally {
      process.chdir(cwd);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('start() with no workers - the driver is the only process, as in Julia', async () => {
    await using tc = await startCluster({ workers: 0 });
    const { cluster } = tc;
    expect(cluster.workers()).toEqual([1]);
    expect(cluster.procs()).toEqual([1]);
    expect(cluster.nprocs()).toBe(1);
    expect(cluster.nworkers()).toBe(1);
    await cluster.everywhere(TASKS_URL);
    // With no workers, spawn runs on the driver itself.
    const r = cluster.spawn(whoami);
    expect(r.where).toBe(1);
    expect(await r.fetch()).toBe(1);
  });

  it("start({ workers: 'auto' }) - starts one worker per core", async () => {
    const { availableParallelism } = await import('node:os');
    await using tc = await startCluster({ workers: 'auto' });
    expect(tc.cluster.nworkers()).toBe(availableParallelism());
  });

  it('start() - a bad cluster name or worker count is refused with the field named', async () => {
    await expect(Cluster.start({ name: 'has.dot', workerOutput: 'ignore' })).rejects.toMatchObject({ name: 'InvalidArgumentError', field: 'name' });
    await expect(startCluster({ workers: -1 })).rejects.toMatchObject({ name: 'InvalidArgumentError', field: 'workers' });
  });
});

describe('Cluster.start - external NATS', () => {
  it('start({ nats, name }) - runs a cluster on a server it did not start, and leaves that server running', async () => {
    await using nats = await startNats();
    const name = uniqueName('ext');
    const tc = await startCluster({ nats: nats.url, name, workers: 2, tasks: true });
    try {
      expect(tc.cluster.name).toBe(name);
      expect(tc.cluster.url).toBe(nats.url);
      expect(tc.cluster.workers()).toEqual([2, 3]);
      expect(await tc.cluster.remotecallFetch(echo, 3, 'hi')).toBe('hi');
      // No state file: that is for embedded clusters.
      expect(existsSync(join(tc.stateDir, name))).toBe(false);
    } finally {
      await tc.close();
    }
    if (nats.server) expect(processAlive(nats.server.pid)).toBe(true);
    const nc = await connect({ servers: nats.url });
    await nc.close();
  });

  it.skipIf(externalNats)('start({ nats, user, password }) - works with credentials, and wrong ones give NatsUnreachableError', async () => {
    await using nats = await startNats({ user: 'colony', password: 'right-password-1234' });
    await using tc = await startCluster({ nats: nats.url, name: uniqueName('auth'), user: 'colony', password: 'right-password-1234', workers: 1, tasks: true });
    expect(await tc.cluster.remotecallFetch(whoami, 2)).toBe(2);
    const err = await rejection(Cluster.start({ nats: nats.url, name: uniqueName('auth'), user: 'colony', password: 'wrong', workerOutput: 'ignore' }));
    expect(err.name).toBe('NatsUnreachableError');
    expect(err.message).toContain(nats.url);
  });

  it('start({ nats }) - an unreachable server gives NatsUnreachableError naming the URL, quickly', async () => {
    const url = `nats://127.0.0.1:${await closedPort()}`;
    const t0 = Date.now();
    const err = await rejection(Cluster.start({ nats: url, name: uniqueName('gone'), workers: 1, workerOutput: 'ignore' }));
    expect(err.name).toBe('NatsUnreachableError');
    expect(err.message).toContain(url);
    expect(Date.now() - t0).toBeLessThan(10_000);
    const err2 = await rejection(Cluster.connect({ nats: url, name: 'x' }));
    expect(err2.name).toBe('NatsUnreachableError');
  });

  it('Cluster.connect - attaches to a running cluster, sees its workers and calls them; its close() leaves them running', async () => {
    await using nats = await startNats();
    const name = uniqueName('conn');
    await using tc = await startCluster({ nats: nats.url, name, workers: 2, tasks: true });
    // Each step is bounded, so a hang names the step that hung.
    const other = await within(Cluster.connect({ nats: nats.url, name }), 20_000, 'Cluster.connect');
    try {
      expect(other.workers()).toEqual([2, 3]);
      expect(await within(other.remotecallFetch(whoami, 3), 10_000, 'a call from the connected driver')).toBe(3);
      const r = other.remotecall(echo, 2, 'from the second driver');
      expect(await within(tc.cluster.ref(r.id).fetch(), 10_000, 'fetch by the first driver of a ref the second made')).toBe('from the second driver');
    } finally {
      await within(other.close(), 20_000, 'close() of the connected driver');
    }
    const ospids = tc.cluster.workerInfo().map((w) => w.ospid);
    for (const p of ospids) expect(processAlive(p)).toBe(true);
    expect(await within(tc.cluster.remotecallFetch(whoami, 2), 10_000, 'a call from the first driver afterwards')).toBe(2);
  });
});
