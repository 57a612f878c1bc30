// A driver that dies and a new one that resumes from the log (issue 4, point 5).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../runtime/index.ts';
import { pidOf, hold } from './fixtures/resume-tasks.ts';
import { startNats, uniqueName } from './helpers/nats.ts';
import type { TestNats } from './helpers/nats.ts';
import { processAlive, waitFor } from './helpers/wait.ts';

const TASKS = new URL('./fixtures/resume-tasks.ts', import.meta.url);
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

interface DriverReport {
  done: string;
  running: string;
  workers: { pid: number; ospid: number }[];
}

/** Starts the fixture driver on `nats` and returns what it reported once its calls were made. */
async function startDriver(nats: TestNats, name: string): Promise<{ child: ReturnType<typeof spawn>; report: DriverReport }> {
  const child = spawn(process.execPath, ['--conditions=colony-source', '--import', 'tsx', new URL('./fixtures/resume-driver.ts', import.meta.url).pathname, nats.url, name], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  cleanups.push(async () => { child.kill('SIGKILL'); });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`driver exited early with code ${code}`)));
  });
  const report = JSON.parse(line) as DriverReport;
  for (const w of report.workers) cleanups.push(async () => { if (processAlive(w.ospid)) process.kill(w.ospid, 'SIGKILL'); });
  return { child, report };
}

describe('a driver killed with SIGKILL is resumed by Cluster.connect', () => {
  it('rebuilds the workers from the log and heartbeats, keeps their values, reports what was in flight, and takes new calls', async () => {
    const nats = await startNats();
    cleanups.push(() => nats.stop());
    const name = uniqueName('resume');
    const { child, report } = await startDriver(nats, name);
    child.kill('SIGKILL');
    await waitFor(() => child.exitCode !== null || child.signalCode !== null, { message: 'driver did not die' });
    // The workers keep running through their grace period.
    for (const w of report.workers) expect(processAlive(w.ospid)).toBe(true);

    const cluster = await Cluster.connect({ nats: nats.url, name, heartbeatMs: 200, heartbeatTimeoutMs: 2000 });
    cleanups.push(() => cluster.close());
    expect(cluster.workers()).toEqual([2, 3]);
    const r = cluster.resumed!;
    expect(r.workers).toEqual([2, 3]);
    expect(r.finished.map((x) => x.id)).toContain(report.done);
    expect(r.running.map((x) => x.id)).toContain(report.running);
    expect(r.lost).toEqual([]);

    // Values owned by the workers are still there, including the call that was still running.
    expect(await cluster.ref(report.done).fetch()).toBe('kept on 2');
    expect(await cluster.ref(report.running).fetch()).toBe('finishes later');

    // New calls work, on every adopted worker.
    await cluster.everywhere(TASKS);
    expect(await cluster.remotecallFetch(pidOf, 2)).toBe(2);
    expect(await cluster.remotecallFetch(pidOf, 3)).toBe(3);
    expect(await cluster.remotecall(hold, 3, [1, 2]).fetch()).toEqual([1, 2]);

    // A worker that joins later gets the next pid after the log's highest.
    const [p] = await cluster.addprocs(1);
    expect(p).toBe(4);
    await cluster.rmprocs([2, 3, 4]);
    for (const w of report.workers) await waitFor(() => !processAlive(w.ospid), { message: `worker ospid ${w.ospid} still alive` });
  });

  it('reports the calls of a worker that died with the driver as lost', async () => {
    const nats = await startNats();
    cleanups.push(() => nats.stop());
    const name = uniqueName('resume');
    const { child, report } = await startDriver(nats, name);
    child.kill('SIGKILL');
    const w3 = report.workers.find((w) => w.pid === 3)!;
    process.kill(w3.ospid, 'SIGKILL');
    await waitFor(() => !processAlive(w3.ospid));

    const cluster = await Cluster.connect({ nats: nats.url, name, heartbeatMs: 200, heartbeatTimeoutMs: 1000 });
    cleanups.push(() => cluster.close());
    expect(cluster.workers()).toEqual([2]);
    expect(cluster.resumed!.silentWorkers).toEqual([3]);
    expect(cluster.resumed!.lost.map((x) => x.id)).toContain(report.running);
    // Once the silent worker is declared lost, its refs are recorded as lost.
    await waitFor(async () => (await cluster.events.history(`ref.${report.running}`)).some((e) => e.type === 'ref.lost'), {
      message: 'ref.lost was not recorded', timeoutMs: 10_000,
    });
    const w = await cluster.events.history('worker.3');
    expect(w.at(-1)!.type).toBe('worker.lost');
    await expect(cluster.ref(report.running).fetch()).rejects.toMatchObject({ name: 'ProcessExitedError', pid: 3 });
    await cluster.rmprocs(2);
  });
});
