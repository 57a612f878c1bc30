/**
 * A worker's first steps, which need only the transport: connect, register, and tell the
 * heartbeat thread where to connect. `colony worker` starts them while the rest of the worker's
 * code (the log, the process node, the capabilities) is still loading, and `runWorker` picks them
 * up (runtime/process/worker-main.ts).
 */
import { hostname } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { NatsConnection } from '@nats-io/transport-node';
import { decode, encode } from '../transport/codec.ts';
import { connectNats } from '../transport/connection.ts';
import type { NatsEndpoint } from '../transport/connection.ts';
import { checkClusterName, subjects } from '../transport/subjects.ts';

/** A worker exits after this long without a driver heartbeat, by default. */
export const DEFAULT_GRACE_MS = 30_000;

/** What the driver answers to a registration. */
export interface Registration {
  pid: number;
  modules: string[];
  hbMs: number;
  graceMs: number;
  /** The cluster's KV snapshot cadence, so every writer follows it. */
  snapshotEvery?: Partial<Record<string, number>>;
  /** The cluster's election window for appends (ClusterOptions.electionWindowMs). */
  electionWindowMs?: number;
}

/** A connection and a registration under way, and the heartbeat thread connecting. */
export interface WorkerStart {
  nc: Promise<NatsConnection>;
  registration: Promise<Registration>;
  heartbeat: Worker;
}

/** Where runtime/cli/colony.mjs leaves the heartbeat thread it started early (a global symbol). */
const HEARTBEAT_THREAD = Symbol.for('colony.heartbeatThread');

/** Asks the driver for a pid until it answers or `graceMs` is over. */
export async function registerWorker(nc: NatsConnection, name: string, token: string, graceMs: number): Promise<Registration> {
  const s = subjects(name);
  const deadline = Date.now() + graceMs;
  const body = encode({ token, host: hostname(), ospid: process.pid });
  for (;;) {
    try {
      const m = await nc.request(s.register, body, { timeout: 2000 });
      const r = decode<Registration & { err?: { message: string } }>(m.data);
      if (r.err) throw new Error(`the driver refused the registration: ${r.err.message}`);
      return r;
    } catch (e) {
      if (/refused/.test((e as Error).message) || Date.now() > deadline) throw e;
      // No driver yet (or it is restarting): try again until the grace period is over.
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Connects and registers; the promises are awaited by runWorker (their failures too). */
export function startWorker(endpoint: NatsEndpoint, name: string, token: string, graceMs: number): WorkerStart {
  const cluster = checkClusterName(name);
  // The heartbeat thread boots (imports, its own connection) while this one loads and registers:
  // `colony worker` started it before loading the runtime (runtime/cli/colony.mjs).
  const g = globalThis as { [HEARTBEAT_THREAD]?: Worker };
  const heartbeat = g[HEARTBEAT_THREAD] ?? new Worker(new URL('./heartbeat-thread.mjs', import.meta.url), { execArgv: [] });
  delete g[HEARTBEAT_THREAD];
  heartbeat.unref();
  heartbeat.postMessage({ type: 'connect', url: endpoint.url, user: endpoint.user, password: endpoint.password, name: cluster });
  const nc = connectNats(endpoint, `colony-worker-${cluster}`);
  const registration = nc.then((c) => registerWorker(c, cluster, token, graceMs));
  // Failures surface where runWorker awaits these, not as unhandled rejections meanwhile.
  nc.catch(() => undefined);
  registration.catch(() => undefined);
  return { nc, registration, heartbeat };
}
