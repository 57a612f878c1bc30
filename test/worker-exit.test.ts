import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Cluster } from '../runtime/index.ts';
import { slow, whoami } from './fixtures/tasks.ts';
import { externalNats, startCluster, tempDir } from './helpers/cluster.ts';
import { startNats, uniqueName } from './helpers/nats.ts';
import { processAlive, waitFor, waitForExit } from './helpers/wait.ts';

const DRIVER = fileURLToPath(new URL('./fixtures/driver.ts', import.meta.url));

interface DriverReport {
  driver: number;
  workers: number[];
  natsPid: number | null;
}

/** Starts test/fixtures/driver.ts and resolves with what it prints once its cluster is up. */
async function startDriver(args: string[]): Promise<{ child: ChildProcess; report: DriverReport }> {
  const child = spawn(process.execPath, ['--conditions=colony-source', '--import', 'tsx', DRIVER, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the driver exited (code ${code}) before printing its workers`)));
  });
  return { child, report: JSON.parse(line) as DriverReport };
}

/** Kills whatever is still alive, so a failed test leaves no process behind. */
function killAll(pids: number[]): void {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone already */
    }
  }
}

describe('worker exit', () => {
  it.skipIf(externalNats)('close() - leaves no worker and no nats-server process behind', async () => {
    const tc = await startCluster({ workers: 2, tasks: true });
    const state = JSON.parse(await readFile(join(tc.clusterDir, 'cluster.json'), 'utf8')) as { natsPid: number };
    const ospids = tc.cluster.workerInfo().map((w) => w.ospid);
    try {
      expect(ospids).toHaveLength(2);
      for (const p of [state.natsPid, ...ospids]) expect(processAlive(p)).toBe(true);
      // Close while a task still runs on a worker.
      void tc.cluster.remotecall(slow, 2, 30_000).wait().catch(() => undefined);
      await tc.close();
      for (const p of [state.natsPid, ...ospids]) expect(processAlive(p), `process ${p}`).toBe(false);
    } finally {
      killAll([state.natsPid, ...ospids]);
    }
  });

  it('close() - of a cluster on an external NATS stops its workers and leaves the server running', async () => {
    await using nats = await startNats();
    const tc = await startCluster({ nats: nats.url, name: uniqueName('ext'), workers: 2, tasks: true });
    const ospids = tc.cluster.workerInfo().map((w) => w.ospid);
    try {
      expect(await tc.cluster.remotecallFetch(whoami, 3)).toBe(3);
      await tc.close();
      for (const p of ospids) expect(processAlive(p), `worker ${p}`).toBe(false);
      if (nats.server) expect(processAlive(nats.server.pid)).toBe(true);
    } finally {
      killAll(ospids);
    }
  });

  it('SIGKILL of the driver - its workers wait out the grace period, then exit', async () => {
    await using nats = await startNats();
    const { child, report } = await startDriver([nats.url, uniqueName('orphan'), '1500']);
    const workers = report.workers;
    try {
      expect(workers).toHaveLength(2);
      for (const p of workers) expect(processAlive(p)).toBe(true);

      const killedAt = Date.now();
      child.kill('SIGKILL');
      await waitForExit(child.pid!);
      // Right after the kill the workers are still there: a resuming driver could still take them over.
      for (const p of workers) expect(processAlive(p), `worker ${p} just after the kill`).toBe(true);

      for (const p of workers) await waitForExit(p, 15_000);
      const took = Date.now() - killedAt;
      expect(took).toBeGreaterThanOrEqual(1000);
      expect(took).toBeLessThan(15_000);
    } finally {
      child.kill('SIGKILL');
      killAll(workers);
    }
  });

  it.skipIf(externalNats).each(['SIGINT', 'SIGTERM'] as const)('%s to a driver with an embedded NATS - its nats-server and workers go away too', async (signal) => {
    const dir = await tempDir('colony-driver-');
    const { child, report } = await startDriver(['--embedded', dir, '1500']);
    const all = [report.natsPid!, ...report.workers];
    try {
      expect(processAlive(report.natsPid!)).toBe(true);
      child.kill(signal); // Ctrl-C, or a service manager stopping the driver
      await waitForExit(child.pid!);
      await waitForExit(report.natsPid!, 5000);
      for (const p of report.workers) await waitForExit(p, 15_000);
    } finally {
      child.kill('SIGKILL');
      killAll(all);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(externalNats)('Cluster.start in the directory of a SIGKILLed driver leaves no stale nats-server behind', async () => {
    const dir = await tempDir('colony-driver-');
    const { child, report } = await startDriver(['--embedded', dir, '1500']);
    const all = [report.natsPid!, ...report.workers];
    try {
      child.kill('SIGKILL');
      await waitForExit(child.pid!);
      const again = await Cluster.start({ stateDir: dir, workerOutput: 'ignore' });
      await again.close();
      // Whether the new start reused the old server or replaced it, none of it may outlive close().
      await waitForExit(report.natsPid!, 5000);
    } finally {
      child.kill('SIGKILL');
      killAll(all);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a worker that stops answering is lost after the heartbeat timeout; pending calls fail with ProcessExitedError', async () => {
    await using tc = await startCluster({ workers: 2, tasks: true, heartbeatMs: 100, heartbeatTimeoutMs: 1000 });
    const { cluster } = tc;
    const ospid = cluster.workerInfo().find((w) => w.pid === 2)!.ospid;
    try {
      // SIGSTOP: the process is alive but silent, like a hung or partitioned host.
      process.kill(ospid, 'SIGSTOP');
      const pending = cluster.remotecallFetch(whoami, 2);
      const err = await pending.then(() => null, (e: Error & { pid?: number }) => e);
      expect(err?.name).toBe('ProcessExitedError');
      expect(err?.pid).toBe(2);
      const lost = await waitFor(async () => (await cluster.events.history('worker.2')).find((e) => e.type === 'worker.lost'), { message: 'worker.lost stored' });
      expect(String(lost.data.reason)).toMatch(/heartbeat/);
      expect(cluster.workers()).toEqual([3]);
      expect(await cluster.remotecallFetch(whoami, 3)).toBe(3);
    } finally {
      killAll([ospid]);
    }
  });

  it('close() - also stops a worker that was lost and then came back', async () => {
    const tc = await startCluster({ workers: 1, tasks: true, heartbeatMs: 100, heartbeatTimeoutMs: 1000 });
    const ospid = tc.cluster.workerInfo()[0]!.ospid;
    try {
      process.kill(ospid, 'SIGSTOP');
      await waitFor(() => tc.cluster.workerInfo()[0]!.state === 'lost', { message: 'worker 2 lost' });
      // Lost means silent for a second, so any heartbeat stamped from now on is a new one. The
      // revived worker is told to exit on its first heartbeat, and that one may be handled in the
      // same millisecond as SIGCONT: compare with >=, and take the time before the signal.
      const since = Date.now();
      process.kill(ospid, 'SIGCONT');
      // It is back and heartbeating, but no longer one of the cluster's workers.
      await waitFor(() => tc.cluster.workerInfo()[0]!.lastHeartbeat >= since, { message: 'a heartbeat of the revived worker' });
      expect(tc.cluster.workers()).toEqual([1]);
      await tc.close();
      // Not after the grace period (10 s here): close() itself must leave no worker behind.
      await waitForExit(ospid, 2000);
    } finally {
      killAll([ospid]);
      await tc.close();
    }
  });

  it('a driver busy for longer than the heartbeat timeout keeps its workers', async () => {
    await using tc = await startCluster({ workers: 2, tasks: true, heartbeatMs: 100, heartbeatTimeoutMs: 1000 });
    const { cluster } = tc;
    const ospids = cluster.workerInfo().map((w) => w.ospid);
    try {
      // The user's own synchronous work in the driver: the event loop is blocked for 2 s.
      const t0 = Date.now();
      while (Date.now() - t0 < 2000) {
        /* busy */
      }
      const after = Date.now();
      expect(await cluster.remotecallFetch(whoami, 2)).toBe(2);
      await waitFor(() => cluster.workerInfo().every((w) => w.lastHeartbeat > after), { message: 'heartbeats from both workers after the busy spell' });
      expect(cluster.workers()).toEqual([2, 3]);
      await cluster.flush();
      const lost = (await cluster.events.history('worker.*')).filter((e) => e.type === 'worker.lost');
      expect(lost).toEqual([]);
    } finally {
      await tc.close();
      // Workers wrongly declared lost are not stopped by close(); do not leave them behind.
      killAll(ospids);
    }
  });
});
