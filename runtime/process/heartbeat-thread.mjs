// The worker's heartbeat thread. It has its own NATS connection, so heartbeats go out and
// interrupts come in while the main thread is busy in a long synchronous task.
// Plain JavaScript on purpose: a thread starts faster without the TypeScript loader.
import { parentPort } from 'node:worker_threads';
import { connect } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';

// Started as early as possible (by runtime/colony.mjs, before the main thread loads the runtime),
// so its own start-up overlaps the main thread's. It learns where to connect from the `connect`
// message, and its pid and heartbeat settings from the `start` message (messages posted before
// a listener is attached wait in the port).
const nextMessage = (type) => new Promise((resolve) => {
  const on = (m) => {
    if (m?.type !== type) return;
    parentPort.off('message', on);
    resolve(m);
  };
  parentPort.on('message', on);
});
const { url, user, password, name } = await nextMessage('connect');
// The same settings as runtime/codec.ts: records for objects, msgpack maps for Maps.
const packr = new Packr({ moreTypes: true, useRecords: true, mapsAsObjects: false });
const pack = (v) => packr.pack(v);
const unpack = (b) => packr.unpack(b);
// TLS as in runtime/connection.ts (tlsOptions): the thread shares the process environment.
const env = process.env;
const tls = env.COLONY_NATS_CA || env.COLONY_NATS_CERT
  ? { ...(env.COLONY_NATS_CA ? { caFile: env.COLONY_NATS_CA } : {}), ...(env.COLONY_NATS_CERT ? { certFile: env.COLONY_NATS_CERT, keyFile: env.COLONY_NATS_KEY } : {}) }
  : undefined;
const nc = await connect({ tls, servers: url.split(','), user, pass: password, name: `colony-hb-${name}`, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
const { pid, hbMs, graceMs, stats } = await nextMessage('start');
const counters = new Int32Array(stats);
let lastDriver = Date.now();
let gone = false;
let status = { task: null, refs: {} };
// While the connection is down (a server restarting), the driver's silence says nothing about
// the driver: it is counted only while connected, from a fresh start at each reconnect. Being
// cut off from NATS for the whole grace period ends the worker too (the server is not coming
// back), so a worker never outlives a cluster that is gone.
let disconnectedAt = 0;
void (async () => {
  for await (const s of nc.status()) {
    if (s.type === 'disconnect') disconnectedAt ||= Date.now();
    else if (s.type === 'reconnect') {
      disconnectedAt = 0;
      lastDriver = Date.now();
    }
  }
})().catch(() => {});

nc.subscribe(`colony.${name}.hb.1`, { callback: () => { lastDriver = Date.now(); } });
nc.subscribe(`colony.${name}.ctl.${pid}`, {
  callback: (_err, msg) => {
    let req;
    try { req = unpack(msg.data); } catch { return; }
    if (req?.op === 'interrupt') {
      // SIGINT stops a guarded synchronous task (vm breakOnSigint) or, through the main thread's
      // handler, rejects the async ones.
      // A SIGINT that lands while a vm watchdog is being torn down can be dropped: send it again
      // until the main thread counts it, a few times at most.
      // Never once a task has ended since: the signal would hit the next task instead.
      const seen = Atomics.load(counters, 2);
      const done = Atomics.load(counters, 1);
      let tries = 0;
      const send = () => {
        if (Atomics.load(counters, 2) !== seen || Atomics.load(counters, 1) !== done || tries++ >= 5) return;
        process.kill(process.pid, 'SIGINT');
        setTimeout(send, 100);
      };
      send();
      if (msg.reply) msg.respond(pack({ done: true }));
    }
  },
});

const beat = () => {
  const running = Atomics.load(counters, 0);
  const hb = { pid, running, completed: Atomics.load(counters, 1), task: running ? status.task : null, refs: status.refs, rss: process.memoryUsage.rss(), at: Date.now() };
  nc.publish(`colony.${name}.hb.${pid}`, pack(hb));
  const now = Date.now();
  const silentMs = disconnectedAt ? now - disconnectedAt : now - lastDriver;
  if (!gone && graceMs > 0 && silentMs > graceMs) {
    gone = true;
    parentPort.postMessage({ type: 'driver-gone', silentMs, nats: disconnectedAt !== 0 });
    // If the main thread is stuck in a task, do not leave an orphan behind.
    setTimeout(() => process.kill(process.pid, 'SIGKILL'), 10_000).unref();
  }
};
beat();
setInterval(beat, hbMs);
// The worker reports ready only once interrupts can reach this thread.
await nc.flush();
parentPort.postMessage({ type: 'up' });
parentPort.on('message', async (m) => {
  if (m?.type === 'status') status = { task: m.task, refs: m.refs };
  if (m?.type === 'stop') {
    await nc.drain().catch(() => {});
    process.exit(0);
  }
});
