/**
 * The embedded nats-server is supervised: killed, it comes back on the same port and store and
 * every process carries on; when it cannot come back, everything pending fails with
 * NatsUnreachableError and the driver ends normally. The driver runs as a child process
 * (test/fixtures/supervised-driver.ts), so its exit code and output can be checked.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LocalManager } from '../runtime/index.ts';
import type { WorkerConfig } from '../runtime/index.ts';
import { externalNats, tempDir } from './helpers/cluster.ts';
import { processAlive, waitFor, waitForExit } from './helpers/wait.ts';

const DRIVER = fileURLToPath(new URL('./fixtures/supervised-driver.ts', import.meta.url));

interface Up {
  natsPid: number;
  port: number;
  clusterDir: string;
  storeDir: string;
  workers: number[];
}

interface ErrorSeen {
  name: string;
  message: string;
  at: number;
}

/** The fixture driver as a child process: its JSON report lines, its other output, its exit. */
class Driver {
  readonly child: ChildProcess;
  readonly reports: Record<string, unknown>[] = [];
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(stateDir: string, napMs = 1500) {
    this.child = spawn(process.execPath, ['--import', 'tsx', DRIVER, stateDir, String(napMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      if (line.startsWith('{')) this.reports.push(JSON.parse(line) as Record<string, unknown>);
      else this.stdout.push(line);
    });
    createInterface({ input: this.child.stderr! }).on('line', (line) => this.stderr.push(line));
    this.exit = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** The report with key `key`, once the driver has printed it. */
  async report<T>(key: string, timeoutMs = 30_000): Promise<T> {
    const found = await waitFor(() => this.reports.find((r) => key in r) ?? (this.child.exitCode !== null ? { [`exited before '${key}'`]: true } : undefined), {
      timeoutMs, message: `the driver's '${key}' report (stderr: ${this.stderr.slice(-8).join(' | ')})`,
    });
    if (!(key in found)) throw new Error(`the driver exited (code ${this.child.exitCode}) before reporting '${key}':\n${this.stderr.join('\n')}`);
    return found[key] as T;
  }

  /** What it printed about unhandled rejections or uncaught exceptions (nothing, we hope). */
  crashes(): string[] {
    return this.stderr.filter((l) => /unhandled|uncaught|triggerUncaughtException/i.test(l));
  }
}

function killAll(pids: number[]): void {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** The server id of the nats-server answering on `port`, or null (none answers). */
async function serverId(port: number, clusterDir: string): Promise<string | null> {
  const { user, password } = JSON.parse(readFileSync(join(clusterDir, 'credentials.json'), 'utf8')) as { user: string; password: string };
  try {
    const nc = await connect({ servers: `nats://127.0.0.1:${port}`, user, pass: password, reconnect: false, timeout: 1000 });
    const id = nc.info?.server_id ?? null;
    await nc.close();
    return id;
  } catch {
    return null;
  }
}

/**
 * Another process that takes `port` as soon as it is free: it tries to listen in a tight loop,
 * printing `trying` after its first failure and `bound` once it holds the port. A restart
 * racing it loses by far (it has to start a process first).
 */
async function takePortWhenFree(port: number): Promise<{ child: ChildProcess; bound: Promise<void> }> {
  const script = `
    const net = require('node:net');
    const s = net.createServer();
    let tries = 0;
    const attempt = () => s.listen({ port: ${port}, host: '127.0.0.1', exclusive: true });
    s.on('error', () => { if (tries++ === 0) console.log('trying'); setImmediate(attempt); });
    s.on('listening', () => console.log('bound'));
    attempt();`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`the port taker exited (code ${code})`))));
  exited.catch(() => undefined);
  await Promise.race([waitFor(() => lines.includes('trying'), { message: 'the port taker trying' }), exited]);
  return { child, bound: Promise.race([waitFor(() => lines.includes('bound'), { message: 'the port taken' }).then(() => undefined), exited]) };
}

/** Every `From worker N:` prefix names a pid; none is `?`. */
function expectWorkerPrefixes(lines: string[]): void {
  const tagged = lines.filter((l) => l.includes('From worker'));
  expect(tagged.length, 'worker output lines seen').toBeGreaterThan(0);
  for (const l of tagged) expect(l, 'a worker output line').toMatch(/From worker \d+:/);
}

describe.skipIf(externalNats)('embedded nats-server supervision', () => {
  it('SIGKILL of the server during a pmap - it is back on the same port within 2 s, the map completes, calls work afterwards', async () => {
    const dir = await tempDir('colony-supervision-');
    const driver = new Driver(dir);
    let pids: number[] = [];
    try {
      const up = await driver.report<Up>('up', 60_000);
      pids = [up.natsPid, ...up.workers];
      const before = await serverId(up.port, up.clusterDir);
      expect(before).toBeTruthy();
      await driver.report('progress');
      const killedAt = Date.now();
      process.kill(up.natsPid, 'SIGKILL');
      // Another server answers on the port (seen from this test's side of the wire).
      await waitFor(async () => {
        const id = await serverId(up.port, up.clusterDir);
        return id !== null && id !== before;
      }, { timeoutMs: 10_000, intervalMs: 10, message: `a new server on port ${up.port}` });
      const seenBackMs = Date.now() - killedAt;

      const result = await driver.report<{
        okResults: boolean; ref: { value?: number }; seqs: number[]; types: string[]; calls: number[]; again: number[]; workers: number[];
      }>('result', 90_000);
      await driver.report('closed');
      const { code, signal } = await driver.exit;

      // What the driver said about the restart, with its own measure of the time it took.
      const back = driver.stderr.map((l) => /nats-server is back on port (\d+) \(pid (\d+)\) after (\d+) ms/.exec(l)).find(Boolean);
      expect(back, `a "back on port" line in:\n${driver.stderr.join('\n')}`).toBeTruthy();
      const [, port, newPid, restartMs] = back!.map(Number);
      console.log(`embedded nats-server restart: ${restartMs} ms (driver's measure), a new server answered ${seenBackMs} ms after the kill (test's measure)`);
      expect(port).toBe(up.port);
      expect(newPid).not.toBe(up.natsPid);
      expect(restartMs).toBeLessThan(2_000);
      expect(driver.stderr.some((l) => /nats-server \(pid \d+, port \d+\) killed by SIGKILL; restarting/.test(l))).toBe(true);

      expect(result.okResults).toBe(true);
      expect(result.ref.value).toBe(2); // the ref in flight across the restart
      expect(result.types).toContain('map.finished');
      expect(result.seqs).toEqual(result.seqs.map((_, i) => i + 1));
      expect(result.calls).toEqual([2, 3]);
      expect(result.again).toEqual([2, 4, 6]);
      expect(result.workers).toEqual(up.workers); // nobody was declared lost

      expect(driver.crashes()).toEqual([]);
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expectWorkerPrefixes(driver.stdout);
      for (const p of [newPid, ...up.workers]) await waitForExit(p, 15_000);
      pids.push(newPid);
    } finally {
      driver.child.kill('SIGKILL');
      killAll(pids);
      await rm(dir, { recursive: true, force: true });
    }
  });

  /**
   * Runs the driver, breaks its server with `breakServer` (which resolves with when it killed
   * the server) once the map is under way, and checks the failure.
   */
  async function cannotComeBack(breakServer: (up: Up) => Promise<number>, why: RegExp): Promise<void> {
    const dir = await tempDir('colony-supervision-');
    // The ref's task outlasts the test: it is surely pending when the server breaks.
    const driver = new Driver(dir, 60_000);
    let pids: number[] = [];
    try {
      const up = await driver.report<Up>('up', 60_000);
      pids = [up.natsPid, ...up.workers];
      await driver.report('progress');
      const killedAt = await breakServer(up);

      const failed = await driver.report<{ map: ErrorSeen; ref: ErrorSeen; flush: ErrorSeen; later: ErrorSeen; failedAt: number }>('failed', 30_000);
      console.log(`embedded nats-server gone for good: the map failed ${failed.map.at - killedAt} ms after the kill`);
      expect(failed.map.name).toBe('NatsUnreachableError');
      expect(failed.map.message).toMatch(why);
      expect(failed.map.at - killedAt).toBeLessThan(5_000);
      for (const e of [failed.ref, failed.flush, failed.later]) expect(e.name).toBe('NatsUnreachableError');
      expect(failed.ref.at - killedAt).toBeLessThan(5_000);
      expect(driver.stderr.some((l) => /giving up: pending calls, refs and maps fail with NatsUnreachableError/.test(l))).toBe(true);

      await driver.report('closed', 30_000);
      const { code, signal } = await driver.exit;
      expect(driver.crashes()).toEqual([]);
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expectWorkerPrefixes(driver.stdout);
      // No process is left behind: the workers and every nats-server the cluster ran.
      for (const l of driver.stderr) {
        const m = /nats-server is back on port \d+ \(pid (\d+)\)/.exec(l);
        if (m) pids.push(Number(m[1]));
      }
      for (const p of pids) await waitForExit(p, 15_000);
    } finally {
      driver.child.kill('SIGKILL');
      killAll(pids);
      await rm(dir, { recursive: true, force: true });
    }
  }

  it('the server killed with its store removed - the map, a ref and flush() fail with NatsUnreachableError within 5 s, the driver exits normally, nothing is left behind', async () => {
    await cannotComeBack(async (up) => {
      await rm(up.storeDir, { recursive: true, force: true });
      process.kill(up.natsPid, 'SIGKILL');
      return Date.now();
    }, /store .* is gone/);
  });

  it('the server killed with its port taken - NatsUnreachableError within 5 s, the driver exits normally, nothing is left behind', async () => {
    let taker: ChildProcess | null = null;
    try {
      await cannotComeBack(async (up) => {
        const t = await takePortWhenFree(up.port);
        taker = t.child;
        process.kill(up.natsPid, 'SIGKILL');
        const killedAt = Date.now();
        await t.bound;
        return killedAt;
      }, /could not be restarted/);
    } finally {
      (taker as ChildProcess | null)?.kill('SIGKILL');
    }
  });
});

describe('worker output', () => {
  it('lines a worker writes after it was finalized still carry its pid', async () => {
    const manager = new LocalManager();
    const written: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      written.push(String(chunk));
      return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write;
    let config: WorkerConfig | undefined;
    try {
      // A stand-in worker process that speaks once it has been told to go: as "no driver; exiting" does.
      await manager.launch({
        cluster: 'out', nats: 'nats://unused', env: {}, count: 1, exename: process.execPath, exeflags: [], graceMs: 0,
        newToken: () => 'tok-out',
        workerArgv: () => [process.execPath, '-e', `console.log('early line'); setTimeout(() => console.log('last words'), 300)`],
      }, (c) => (config = c), new AbortController().signal);
      await manager.manage(7, config!, 'register');
      await waitFor(() => written.some((l) => l.includes('early line')), { message: 'the early line' });
      await manager.manage(7, config!, 'finalize');
      await waitFor(() => written.some((l) => l.includes('last words')), { message: 'the last line' });
    } finally {
      process.stdout.write = write;
      config?.process?.kill('SIGKILL');
    }
    const lines = written.join('').split('\n').filter((l) => /early line|last words/.test(l));
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(l).toMatch(/From worker 7:\t/);
  });
});
