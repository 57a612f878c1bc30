/**
 * `colony worker`: a worker process. It registers with the driver (getting its pid), loads the
 * modules the cluster loads everywhere, serves calls and values, and heartbeats from a thread of
 * its own. It exits when finalized, or after a grace period without a driver.
 */
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { ActorHost } from '../log/actor-host.ts';
import { decode, encode } from '../transport/codec.ts';
import type { NatsEndpoint } from '../transport/connection.ts';
import { ProcessExitedError, toErrorData } from '../transport/errors.ts';
import { Journal } from '../log/journal.ts';
import { hostCapabilities } from './capability.ts';
import { importModule } from './import-module.ts';
import { DEFAULT_GRACE_MS, startWorker } from './register-worker.ts';
import type { Registration, WorkerStart } from './register-worker.ts';
import type { Capability } from './capability.ts';
import { setMyid } from './myid.ts';
import { ProcessNode } from './process-node.ts';
import { checkClusterName, subjects } from '../transport/subjects.ts';
import type { Envelope } from '../../actors/index.ts';

export interface WorkerOptions extends NatsEndpoint {
  name: string;
  /** Matches this worker to its launch; `join` for a worker started by hand. */
  token: string;
  /** Exit after this long without a driver heartbeat. @default 30000 */
  graceMs?: number;
}

export type { Registration } from './register-worker.ts';
export { DEFAULT_GRACE_MS } from './register-worker.ts';

/** An exiting worker cut off from NATS this long does not wait for its appends (a restart takes less). */
const CUT_OFF_MS = 2_500;


/**
 * Runs a worker that hosts `capabilities` (their tasks, their per-process state). `started` is
 * the connection and registration begun while this code loaded (`startWorker`); by default they
 * begin here.
 */
export async function runWorker(opts: WorkerOptions, capabilities: readonly Capability[] = [], started?: WorkerStart): Promise<void> {
  const name = checkClusterName(opts.name);
  const s = subjects(name);
  const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  const start = started ?? startWorker(opts, name, opts.token, graceMs);
  const hb = start.heartbeat;
  const hbUp = new Promise<void>((resolve, reject) => {
    hb.on('message', (m: { type: string }) => { if (m.type === 'up') resolve(); });
    hb.once('error', reject);
  });
  hbUp.catch(() => undefined); // awaited below, once registered
  let nc: NatsConnection;
  let reg: Registration;
  try {
    nc = await start.nc;
    reg = await start.registration;
  } catch (e) {
    // A connection made for a registration that failed is not used.
    void start.nc.then((c) => c.close(), () => undefined);
    await hb.terminate();
    throw e;
  }
  const pid = reg.pid;
  setMyid(pid);
  const nonce = randomBytes(4).toString('hex');
  const journal = await Journal.attach(nc, name, { electionWindowMs: reg.electionWindowMs });
  const host = new ActorHost(journal, `w${pid}${nonce}`, { snapshotEvery: reg.snapshotEvery });
  const node = new ProcessNode({ nc, name, pid, host, nonce, guardSync: true });
  node.serve();
  await hostCapabilities(capabilities, node);

  const loadErrors: { url: string; error: string }[] = [];
  for (const url of reg.modules) {
    try {
      await importModule(url);
    } catch (e) {
      loadErrors.push({ url, error: (e as Error).message });
    }
  }

  let exiting = false;
  // [running, completed, interrupts seen]: read by the heartbeat thread while this one may be busy.
  const stats = new SharedArrayBuffer(12);
  const counters = new Int32Array(stats);
  hb.postMessage({ type: 'start', pid, hbMs: reg.hbMs, graceMs: reg.graceMs, stats });

  // Since when NATS has been unreachable (0: it is not). Cut off for longer than a server restart
  // takes, an exit cannot wait for its appends: only a server can take them.
  let downSince = 0;
  const cutOffLong = () => downSince !== 0 && Date.now() - downSince > CUT_OFF_MS;
  void (async () => {
    for await (const st of nc.status()) {
      if (st.type === 'disconnect') downSince ||= Date.now();
      else if (st.type === 'reconnect') downSince = 0;
    }
  })().catch(() => undefined);

  const exit = async (code: number, why: string) => {
    if (exiting) return;
    exiting = true;
    try {
      await node.stop();
      const flushed = journal.flush().then(() => true, (e) => {
        console.error(`colony worker ${pid}: ${(e as Error).message}`);
        return true;
      });
      const cutOff = new Promise<boolean>((r) => {
        const t = setInterval(() => cutOffLong() && r(false), 100);
        t.unref();
        void flushed.then(() => clearInterval(t));
      });
      if (!(await Promise.race([flushed, cutOff]))) {
        console.error(`colony worker ${pid}: NATS is unreachable; exiting without storing ${journal.pending} event(s)`);
      }
      hb.postMessage({ type: 'stop' });
      await (downSince ? nc.close() : nc.drain()).catch(() => undefined);
    } finally {
      if (why) console.error(`colony worker ${pid}: ${why}`);
      process.exit(code);
    }
  };

  hb.on('message', (m: { type: string; silentMs?: number; nats?: boolean }) => {
    const s = Math.round((m.silentMs ?? 0) / 1000);
    if (m.type === 'driver-gone') void exit(0, m.nats ? `NATS unreachable for ${s} s; exiting` : `no driver for ${s} s; exiting`);
  });
  hb.on('error', (e) => console.error(`colony worker ${pid}: heartbeat thread failed: ${e.message}`));

  // What the heartbeat thread reports while this thread may be busy.
  let lastTask: string | null = null;
  node.onLongTask = (key) => {
    lastTask = key;
    hb.postMessage({ type: 'status', task: key, refs: node.refCounts() });
  };
  const tick = setInterval(() => {
    Atomics.store(counters, 0, node.running);
    if (node.currentTask !== lastTask || node.running === 0) {
      lastTask = node.currentTask;
      hb.postMessage({ type: 'status', task: lastTask, refs: node.refCounts() });
    }
  }, Math.max(50, reg.hbMs / 2));
  tick.unref();

  node.onInterrupted = () => Atomics.add(counters, 2, 1);
  node.onTaskEnd = () => Atomics.add(counters, 1, 1);
  process.on('SIGINT', () => {
    Atomics.add(counters, 2, 1);
    node.interruptRunning();
  });
  process.on('SIGTERM', () => void exit(0, ''));
  // A vanished driver closes our stdout pipe; keep running through the grace period.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);

  nc.subscribe(s.ctl(pid), {
    callback: (_e, msg) => {
      void (async () => {
        let req: { op: string; url?: string };
        try {
          req = decode(msg.data);
        } catch {
          return;
        }
        if (req.op === 'exit') {
          if (msg.reply) msg.respond(encode({ done: true }));
          await exit(0, '');
        } else if (req.op === 'load') {
          try {
            await importModule(req.url!);
            if (msg.reply) msg.respond(encode({ done: true }));
          } catch (e) {
            if (msg.reply) msg.respond(encode({ err: toErrorData(e, pid) }));
          }
        }
      })();
    },
  });

  // Requests pending on a peer that exits or is lost fail at once.
  nc.subscribe(`${s.evtPrefix}.worker.*`, {
    callback: (_e, msg) => {
      try {
        const env = decode<Envelope>(msg.data);
        if (env.type === 'worker.lost' || env.type === 'worker.exited') {
          const peer = Number(env.id);
          node.requester.failPid(peer, new ProcessExitedError(peer, String(env.data.reason ?? 'exited')));
        }
      } catch {
        /* not an envelope */
      }
    },
  });

  await hbUp;
  await nc.request(s.ready, encode({ pid, loadErrors, loaded: reg.modules }), { timeout: 60_000 });
  void nc.closed().then(() => {
    if (!exiting) void exit(1, 'connection to NATS closed');
  });
}
