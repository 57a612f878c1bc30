/**
 * Floors for `npm run bench`: what the same work costs with Colony taken out, measured in the
 * same run as the scenario it is the floor of. This machine drifts 30-50% from hour to hour, so a
 * scenario reports its figure beside its floor and their ratio (see {@link withFloor}), and the
 * ratio is what says how much Colony adds.
 *
 * Each floor is a function, measured once per run (per set of options) and cached, so a scenario
 * asks for its floor right before it runs and a second scenario with the same floor reuses it:
 *
 * - {@link natsRequestFloor}: bare nats.js request/reply between this process and a child node
 *   process, with the byte sizes of a call; for `roundtrip` and `remotecall_fetch`.
 * - {@link jetstreamFloor}: raw JetStream publishes with acks to a file-storage stream on an
 *   embedded server, pipelined as the journal pipelines and also serial; for `journal`.
 * - {@link nodeStartFloor}: bare `node -e` process starts; for `startup` and `addprocs_*`.
 * - {@link lifeFloor}: the workers' Life kernel on the whole grid in one process; for `life`.
 * - {@link memcpyFloor}: a copy of the same bytes in memory; for `transfer` and `distribute_toarray`.
 *
 * Every floor uses plain nats.js and Node, never the runtime; only the server is the runtime's
 * own embedded NatsServer, so both sides of a ratio talk to the same kind of server.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { connect, createInbox, headers } from '@nats-io/transport-node';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, DiscardPolicy, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { cellAt, ruleWords, serialLifeStep } from '../examples/life-tasks.ts';
import { DEFAULT_MAX_AGE_MS, DEFAULT_MAX_BYTES } from '../runtime/log/journal.ts';
import { NatsServer } from '../runtime/transport/nats-server.ts';

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const progress = (msg: string) => process.stderr.write(`bench floor: ${msg}\n`);

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);

// ---------------------------------------------------------------- ratios

/**
 * The `floor` and `ratio` fields of a scenario's line. `ratio = figure / floor`, to 3
 * significant digits: for a time, how many times the floor it takes (lower is better, 1 is the floor); for a
 * throughput, the fraction of the floor's rate it reaches (higher is better, 1 is the floor).
 * `floorName` carries the unit, as every number of a line does (`floor_p50_us`).
 */
export function withFloor(figureName: string, figure: number, floorName: string, floor: number, kind: 'time' | 'rate', floorIs: string): Record<string, unknown> {
  return {
    [floorName]: floor,
    ratio: Number((figure / floor).toPrecision(3)),
    ratio_is: `${figureName} / ${floorName}, ${kind === 'time' ? 'lower is better' : 'the fraction of the floor reached, higher is better'}; floor: ${floorIs}`,
  };
}

/** One measurement per key and run; a failed one is measured again next time it is asked for. */
const cache = new Map<string, Promise<unknown>>();

function once<T>(key: string, measure: () => Promise<T>): Promise<T> {
  let p = cache.get(key) as Promise<T> | undefined;
  if (!p) {
    p = measure();
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

async function withServer<T>(fn: (server: NatsServer) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'colony-bench-floor-'));
  let server: NatsServer | null = null;
  try {
    server = await NatsServer.start({ storeDir: dir });
    return await fn(server);
  } finally {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- nats request/reply

/** What every floor says it is, for the `ratio_is` of a line. */
interface Described {
  is: string;
}

export interface NatsRequestFloor extends Described {
  calls: number;
  request_bytes: number;
  reply_bytes: number;
  p50_us: number;
  p99_us: number;
  mean_us: number;
}

/**
 * The replier: a plain node process (no TypeScript loader, no runtime) that answers every request
 * on its subject with `replyBytes` bytes, and exits when its stdin closes. It runs in the
 * repository's root, where `--eval` resolves the nats.js import.
 */
const REPLIER = `
const { connect } = await import('@nats-io/transport-node');
const nc = await connect({ servers: process.env.FLOOR_URL });
const reply = new Uint8Array(Number(process.env.FLOOR_REPLY_BYTES));
nc.subscribe(process.env.FLOOR_SUBJECT, { callback: (_e, m) => m.respond(reply) });
await nc.flush();
process.stdin.on('end', () => process.exit(0)).resume();
process.stdout.write('ready\\n');
`;

/**
 * Serial request/reply latency of bare nats.js between two processes: `nc.request()` here, a
 * `subscribe` + `respond` in a child node process, on an embedded NatsServer; `warmup` calls,
 * then `calls` timed ones. Use the byte sizes of the scenario's messages.
 */
export function natsRequestFloor(opts: { requestBytes: number; replyBytes: number; calls: number; warmup: number }): Promise<NatsRequestFloor> {
  return once(`nats-request ${JSON.stringify(opts)}`, () => withServer(async (server) => {
    const subject = 'colony.floor.call.2';
    const child = spawn(process.execPath, ['--input-type=module', '-e', REPLIER], {
      stdio: ['pipe', 'pipe', 'inherit'],
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      env: { ...process.env, FLOOR_URL: server.url, FLOOR_SUBJECT: subject, FLOOR_REPLY_BYTES: String(opts.replyBytes) },
    });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    let nc: NatsConnection | null = null;
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`the replier exited with code ${code} before it was ready`)));
        createInterface({ input: child.stdout! }).once('line', () => resolve());
      });
      nc = await connect({ servers: server.url });
      const data = new Uint8Array(opts.requestBytes);
      const call = async () => {
        const m = await nc!.request(subject, data, { timeout: 10_000 });
        if (m.data.length !== opts.replyBytes) throw new Error(`the replier answered ${m.data.length} bytes, expected ${opts.replyBytes}`);
      };
      for (let i = 0; i < opts.warmup; i++) await call();
      const ms: number[] = [];
      for (let i = 0; i < opts.calls; i++) {
        const t0 = performance.now();
        await call();
        ms.push(performance.now() - t0);
      }
      ms.sort((a, b) => a - b);
      const f = {
        is: `bare nats.js request/reply between two processes, ${opts.requestBytes} B / ${opts.replyBytes} B as the scenario's, p50 of ${opts.calls}`,
        calls: opts.calls,
        request_bytes: opts.requestBytes,
        reply_bytes: opts.replyBytes,
        p50_us: round(percentile(ms, 50) * 1000, 0),
        p99_us: round(percentile(ms, 99) * 1000, 0),
        mean_us: round((ms.reduce((a, b) => a + b, 0) / ms.length) * 1000, 0),
      };
      progress(`bare nats.js request/reply (${opts.requestBytes} B / ${opts.replyBytes} B, two processes): p50 ${f.p50_us} us, p99 ${f.p99_us} us`);
      return f;
    } finally {
      await nc?.close().catch(() => undefined);
      child.stdin!.end();
      await exited;
    }
  }));
}

// ---------------------------------------------------------------- jetstream publishes

export interface JetstreamFloor extends Described {
  events: number;
  payload_bytes: number[];
  /**
   * As the journal's actor host appends (runtime/log/actor-host.ts, runtime/log/journal.ts): a
   * plain publish with a reply subject on one muxed ack inbox, with the journal's `Nats-Msg-Id`
   * and `Nats-Expected-Last-Subject-Sequence` headers; every subject's first event goes out at
   * once, its second when the first's ack (and stream sequence) is back; each ack is parsed.
   */
  pipelined_ms: number;
  pipelined_per_s: number;
  /** The same publishes with no headers and no chain: all in flight at once. */
  unchained_no_headers_per_s: number;
  serial_events: number;
  /** One publish at a time (with the headers), each waiting for its ack. */
  serial_per_s: number;
  serial_p50_us: number;
}

type Ack = { seq?: number; error?: { description: string } };

/**
 * Raw JetStream publishes with acks, with plain nats.js: a file-storage stream configured as the
 * journal's, on an embedded NatsServer, one subject per two events (an actor's created + ready),
 * payloads cycling through `payloadBytes` (the encoded envelopes of the scenario). See
 * {@link JetstreamFloor} for the three ways it publishes; `pipelined_per_s` is the journal's way.
 */
export function jetstreamFloor(opts: { payloadBytes: number[]; events: number; serialEvents: number; warmup: number }): Promise<JetstreamFloor> {
  return once(`jetstream ${JSON.stringify(opts)}`, () => withServer(async (server) => {
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      const NS_PER_MS = 1_000_000;
      await jsm.streams.add({
        name: 'FLOOR', subjects: ['floor.evt.>'], storage: StorageType.File, retention: RetentionPolicy.Limits, discard: DiscardPolicy.Old,
        num_replicas: 1, max_age: DEFAULT_MAX_AGE_MS * NS_PER_MS, max_bytes: DEFAULT_MAX_BYTES, allow_direct: true, duplicate_window: 2 * 60_000 * NS_PER_MS,
      });
      const [first, second] = [0, 1].map((k) => new Uint8Array(opts.payloadBytes[k % opts.payloadBytes.length]!).fill(0x61)) as [Uint8Array, Uint8Array];
      const hdrs = (id: string, expectLast: number) => {
        const h = headers();
        h.set('Nats-Msg-Id', id);
        h.set('Nats-Expected-Last-Subject-Sequence', String(expectLast));
        return h;
      };

      // One muxed ack inbox; a callback per publish, no promise and no timer.
      const inbox = createInbox();
      const waiting = new Map<number, (seq: number) => void>();
      let nextId = 0;
      let failed = '';
      const sub = nc.subscribe(`${inbox}.*`, {
        callback: (_e, m) => {
          const id = Number(m.subject.slice(inbox.length + 1));
          const ack = m.json<Ack>();
          if (ack.error || !ack.seq) failed ||= ack.error?.description ?? 'an ack without a stream sequence';
          const cb = waiting.get(id);
          waiting.delete(id);
          cb?.(ack.seq ?? 0);
        },
      });
      const publish = (subject: string, data: Uint8Array, h: ReturnType<typeof headers> | undefined, cb: (seq: number) => void) => {
        const id = nextId++;
        waiting.set(id, cb);
        nc.publish(subject, data, { reply: `${inbox}.${id}`, headers: h });
      };
      const burst = (prefix: string, n: number, chained: boolean) => new Promise<number>((resolve, reject) => {
        let left = n;
        const t0 = performance.now();
        const acked = () => {
          if (--left > 0) return;
          if (failed) reject(new Error(`a JetStream publish failed: ${failed}`));
          else resolve(performance.now() - t0);
        };
        for (let k = 0; k < n >> 1; k++) {
          const subject = `floor.evt.ref.${prefix}-${k}`;
          if (!chained) {
            publish(subject, first, undefined, acked);
            publish(subject, second, undefined, acked);
          } else {
            publish(subject, first, hdrs(`${prefix}.${k}.1`, 0), (seq) => {
              acked();
              publish(subject, second, hdrs(`${prefix}.${k}.2`, seq), acked);
            });
          }
        }
      });

      await burst('warm', opts.warmup, true);
      const ms = await burst('pipe', opts.events, true);
      progress(`raw JetStream publishes, pipelined as the journal does: ${opts.events} in ${round(ms)} ms, ${round(opts.events / (ms / 1000), 0)}/s`);
      const bareMs = await burst('bare', opts.events, false);
      progress(`raw JetStream publishes, no headers, all in flight: ${round(opts.events / (bareMs / 1000), 0)}/s`);
      sub.unsubscribe();

      const serial: number[] = [];
      let last = 0;
      for (let i = 0; i < opts.serialEvents; i++) {
        const t0 = performance.now();
        const m = await nc.request(`floor.evt.ref.serial-${i >> 1}`, i & 1 ? second : first, { timeout: 10_000, headers: hdrs(`serial.${i}`, i & 1 ? last : 0) });
        serial.push(performance.now() - t0);
        const ack = m.json<Ack>();
        if (ack.error || !ack.seq) throw new Error(`a serial JetStream publish failed: ${ack.error?.description ?? 'no stream sequence'}`);
        last = ack.seq;
      }
      const serialPerS = opts.serialEvents / (serial.reduce((a, b) => a + b, 0) / 1000);
      progress(`raw JetStream publishes, serial: ${round(serialPerS, 0)}/s, p50 ${round(median(serial) * 1000, 0)} us`);

      const stored = (await jsm.streams.info('FLOOR')).state.messages;
      const expected = opts.warmup + 2 * opts.events + opts.serialEvents;
      if (stored !== expected) throw new Error(`the floor stream holds ${stored} messages, expected ${expected}`);
      return {
        is: `raw nats.js JetStream publishes with acks to a file stream, ${opts.payloadBytes.join(' and ')} B as the scenario's, with the journal's headers, pipelined as the actor host appends (a subject's second event after its first's ack)`,
        events: opts.events,
        payload_bytes: opts.payloadBytes,
        pipelined_ms: round(ms),
        pipelined_per_s: round(opts.events / (ms / 1000), 0),
        unchained_no_headers_per_s: round(opts.events / (bareMs / 1000), 0),
        serial_events: opts.serialEvents,
        serial_per_s: round(serialPerS, 0),
        serial_p50_us: round(median(serial) * 1000, 0),
      };
    } finally {
      await nc.close().catch(() => undefined);
    }
  }));
}

// ---------------------------------------------------------------- node start

export interface NodeStartFloor extends Described {
  /** One `node -e` until it has written to its stdout; median. */
  one_ms: number;
  /** `processes` of them started at once until each has written; median. */
  parallel_ms: number;
  processes: number;
  runs: number;
}

/** Spawns `node -e` and resolves once it has written its first byte (and then exits). */
function nodeAnswers(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', 'process.stdout.write("1")'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let answered = false;
    child.stdout!.once('data', () => (answered = true));
    child.once('error', reject);
    child.once('exit', (code) => (answered && code === 0 ? resolve() : reject(new Error(`node -e exited with code ${code} without answering`))));
  });
}

/**
 * A bare `node -e` process start: from spawn until the process has answered on its stdout and
 * exited, one alone and `processes` at once (a scenario starts 2 workers at once); median of
 * `runs` after one warm-up.
 */
export function nodeStartFloor(opts: { processes: number; runs: number } = { processes: 2, runs: 5 }): Promise<NodeStartFloor> {
  return once(`node-start ${JSON.stringify(opts)}`, async () => {
    await nodeAnswers();
    const one: number[] = [];
    const par: number[] = [];
    for (let r = 0; r < opts.runs; r++) {
      let t0 = performance.now();
      await nodeAnswers();
      one.push(performance.now() - t0);
      t0 = performance.now();
      await Promise.all(Array.from({ length: opts.processes }, nodeAnswers));
      par.push(performance.now() - t0);
    }
    const f = {
      is: `${opts.processes} bare \`node -e\` started at once until each has answered and exited (median of ${opts.runs})`,
      one_ms: round(median(one)), parallel_ms: round(median(par)), processes: opts.processes, runs: opts.runs };
    progress(`bare node -e start: ${f.one_ms} ms alone, ${f.parallel_ms} ms for ${opts.processes} at once`);
    return f;
  });
}

// ---------------------------------------------------------------- life

export interface LifeFloor extends Described {
  size: string;
  /** The workers' word kernel (`ruleWords`, four cells a word) on the whole torus; median of runs. */
  generations_per_s: number;
  /** `serialLifeStep` (the byte kernel `lifeRule`, the example's reference) on the whole torus. */
  serial_step_generations_per_s: number;
}

/**
 * One generation of Life on an n x n torus (n a multiple of 4) with `ruleWords`, the kernel that
 * `lifeChunk` runs on each worker, applied to the whole board in one process: the three rows
 * around each row are the board's own rows (wrapping), the ring columns the wrapped cells.
 */
export function wordLifeStep(board: Uint8Array, rows: number, cols: number, out: Uint8Array = new Uint8Array(rows * cols)): Uint8Array {
  if (cols % 4 || board.byteOffset % 4 || out.byteOffset % 4) throw new Error(`wordLifeStep: cols must be a multiple of 4 and the boards start on a word, got cols ${cols}`);
  const Q = cols >> 2;
  const words = new Int32Array(board.buffer, board.byteOffset, rows * Q);
  const o32 = new Int32Array(out.buffer, out.byteOffset, rows * Q);
  for (let i = 0; i < rows; i++) {
    const up = ((i - 1 + rows) % rows) * cols;
    const cur = i * cols;
    const dn = ((i + 1) % rows) * cols;
    const left = board[up + cols - 1]! + board[cur + cols - 1]! + board[dn + cols - 1]!;
    const right = board[up]! + board[cur]! + board[dn]!;
    ruleWords(words, up >> 2, words, cur >> 2, words, dn >> 2, o32, cur >> 2, 0, Q, Q, left, right);
  }
  return out;
}

/**
 * The Life kernel in one process on the whole grid: the board of the scenario (`cellAt`, the
 * same density and seed), `generations` per run, median of `runs` after a warm-up. Checks first
 * that the word kernel gives `serialLifeStep`'s board.
 */
export function lifeFloor(opts: { n: number; density: number; seed: number; generations: number; runs: number }): Promise<LifeFloor> {
  return once(`life ${JSON.stringify(opts)}`, async () => {
    const { n } = opts;
    let board: Uint8Array = new Uint8Array(n * n);
    for (let i = 0; i < board.length; i++) board[i] = cellAt(i, opts.seed) < opts.density ? 1 : 0;
    const reference = serialLifeStep(board, n, n);
    const mine = wordLifeStep(board, n, n);
    for (let i = 0; i < mine.length; i++) if (mine[i] !== reference[i]) throw new Error(`lifeFloor: the word kernel differs from serialLifeStep at cell ${i}`);
    const rate = (step: (b: Uint8Array) => Uint8Array): number => {
      const rates: number[] = [];
      for (let r = 0; r < opts.runs; r++) {
        const t0 = performance.now();
        for (let g = 0; g < opts.generations; g++) board = step(board);
        rates.push(opts.generations / ((performance.now() - t0) / 1000));
      }
      return median(rates);
    };
    let spare: Uint8Array = new Uint8Array(n * n);
    const word = (b: Uint8Array) => {
      const out = wordLifeStep(b, n, n, spare);
      spare = b;
      return out;
    };
    for (let g = 0; g < 2; g++) board = word(board);
    const f = {
      is: `the workers' Life kernel (ruleWords) on the whole ${n}x${n} torus in one process (median of ${opts.runs} runs of ${opts.generations} generations)`,
      size: `${n}x${n}`,
      generations_per_s: round(rate(word)),
      serial_step_generations_per_s: round(rate((b) => serialLifeStep(b, n, n))),
    };
    progress(`Life ${f.size} in one process: ${f.generations_per_s} generations/s (word kernel), ${f.serial_step_generations_per_s} (serialLifeStep)`);
    return f;
  });
}

// ---------------------------------------------------------------- memcpy

export interface MemcpyFloor extends Described {
  bytes: number;
  /** The better of the two ways, best of `reps`. */
  mb_per_s: number;
  buffer_copy_mb_per_s: number;
  typed_array_set_mb_per_s: number;
  /**
   * `Buffer.copy` into a buffer allocated for it (`Buffer.allocUnsafeSlow`), the allocation and the
   * kernel's first touch of its pages included, as a receiver of new bytes pays; best of `reps`.
   */
  fresh_memory_mb_per_s: number;
  reps: number;
}

/**
 * A copy of `bytes` bytes between two buffers already in memory: `Buffer.prototype.copy` and
 * `Uint8Array.prototype.set`, best of `reps` each after a warm-up (MB = 1e6 bytes); and the same
 * copy into freshly allocated memory.
 */
export function memcpyFloor(options: { bytes: number; reps?: number }): Promise<MemcpyFloor> {
  const opts = { reps: 5, ...options };
  return once(`memcpy ${JSON.stringify(opts)}`, async () => {
    const src = Buffer.alloc(opts.bytes);
    for (let i = 0; i < src.length; i += 4096) src[i] = i & 0xff;
    const dst = Buffer.alloc(opts.bytes);
    const best = (copy: () => void): number => {
      copy();
      let ms = Infinity;
      for (let r = 0; r < opts.reps; r++) {
        const t0 = performance.now();
        copy();
        ms = Math.min(ms, performance.now() - t0);
      }
      return opts.bytes / 1e6 / (ms / 1000);
    };
    const bufferCopy = best(() => void src.copy(dst));
    const view = new Uint8Array(dst.buffer, dst.byteOffset, dst.length);
    const typedSet = best(() => view.set(src));
    let fresh: Buffer | null = null;
    const freshCopy = best(() => {
      fresh = Buffer.allocUnsafeSlow(opts.bytes);
      src.copy(fresh);
    });
    if (dst[opts.bytes - 4096] !== src[opts.bytes - 4096] || fresh![opts.bytes - 4096] !== src[opts.bytes - 4096]) throw new Error('memcpyFloor: the copy did not arrive');
    const f = {
      is: `a memcpy of the same ${opts.bytes} bytes in one process (Buffer.copy or TypedArray.set, best of ${opts.reps})`,
      bytes: opts.bytes,
      mb_per_s: round(Math.max(bufferCopy, typedSet), 0),
      buffer_copy_mb_per_s: round(bufferCopy, 0),
      typed_array_set_mb_per_s: round(typedSet, 0),
      fresh_memory_mb_per_s: round(freshCopy, 0),
      reps: opts.reps,
    };
    progress(`memcpy of ${opts.bytes} bytes: ${f.mb_per_s} MB/s (Buffer.copy ${f.buffer_copy_mb_per_s}, TypedArray.set ${f.typed_array_set_mb_per_s}); into fresh memory ${f.fresh_memory_mb_per_s} MB/s`);
    return f;
  });
}
