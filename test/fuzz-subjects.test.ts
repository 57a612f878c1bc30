/**
 * Fuzz: 10,000 malformed messages to a real worker's `call`, `ref` and `chunk` subjects (random
 * bytes, truncated msgpack, wrong shapes). The PRNG is seeded (FUZZ_SEED to change it), and a
 * failure names the message index, so it reproduces. Afterwards the worker is the same process,
 * still registered and ready (an unhandled rejection would have ended it: Node 20 exits on one),
 * every message that asked for a reply got one, and calls work.
 */
import { inspect } from 'node:util';
import { Unpackr } from 'msgpackr';
import { createInbox } from '@nats-io/transport-node';
import type { Msg } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pmapBatch, pmapCancel } from '../runtime/parallel/pmap.ts';
import { reduceSlice } from '../runtime/parallel/preduce.ts';
import { darrayReduceChunk, darrayFill } from '../runtime/arrays/darray.ts';
import { sharedRelease } from '../runtime/arrays/shared-array.ts';
import { HOST_KEY } from '../runtime/transport/blob.ts';
import { encode } from '../runtime/transport/codec.ts';
import type { DArray } from '../runtime/index.ts';
import { add, echo } from './fixtures/tasks.ts';
import { startCluster } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { processAlive, waitFor } from './helpers/wait.ts';
import { prng } from '../actors/prng.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 0xc010);
const MESSAGES = 10_000;
/** Messages in flight at once: keeps the worker's backlog (and the test's memory) small. */
const WINDOW = 200;


interface Probe {
  subject: string;
  data: Uint8Array;
  /** False for messages the protocol lets go unanswered (see `expectsReply`). */
  reply: boolean;
  kind: string;
}

class Fuzzer {
  readonly rnd: () => number;
  constructor(seed: number, private readonly c: { call: string; ref: string; chunk: string; pid: number; tasks: string[] }) {
    this.rnd = prng(seed);
  }

  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  bytes(max: number): Uint8Array {
    const b = new Uint8Array(this.int(max + 1));
    for (let i = 0; i < b.length; i++) b[i] = this.int(256);
    return b;
  }

  /** A random value of any shape msgpack (with our extensions) can carry, a few levels deep. */
  value(depth = 0): unknown {
    const r = this.int(depth > 2 ? 8 : 13);
    switch (r) {
      case 0: return null;
      case 1: return this.int(2) === 1;
      case 2: return this.pick([0, -1, 1.5, 2 ** 53, -(2 ** 31), Number.NaN, Number.POSITIVE_INFINITY, 1e308]);
      case 3: return this.pick(['', 'x', 'a.b', 'a b', '*', '>', '$blob', '\u0000', 'é', '2-abc-1', '2-abc-e1', 'x'.repeat(300)]);
      case 4: return BigInt(this.int(1000)) * (2n ** 70n);
      case 5: return this.bytes(16);
      case 6: return new Float64Array(this.int(4));
      case 7: return new Date(this.int(2 ** 40));
      case 8: return Array.from({ length: this.int(4) }, () => this.value(depth + 1));
      case 9: {
        const o: Record<string, unknown> = {};
        for (let i = this.int(4); i > 0; i--) o[this.pick(['op', 'id', 'task', 'args', 'ref', 'from', 'value', 'i', '$ta', '$esc', 't', 'blocks', 'data'])] = this.value(depth + 1);
        return o;
      }
      case 10: return new Map([[this.value(depth + 1), this.value(depth + 1)]]);
      case 11: return new Set([this.value(depth + 1)]);
      default: return this.marker(depth);
    }
  }

  /** Our own placeholders with wrong insides: blob markers, lifted-array and escape records. */
  marker(depth: number): unknown {
    switch (this.int(3)) {
      case 0:
        return {
          $blob: {
            holder: this.pick([1, this.c.pid, 0, -3, 1.5, 'x', 'a b', null, 99]),
            id: this.pick(['zz', 'x.y', '', 'nb1', 7]),
            size: this.pick([0, 1, 10, -1, 1e12, 2 ** 33, Number.NaN, 'a']),
            chunk: this.pick([0, -1, 1, 4, 1e6, Number.NaN]),
            ...(this.int(3) === 0 ? { shm: this.pick(['/etc/passwd', '/dev/shm/colony-x', '../x']), host: this.pick(['x', '', HOST_KEY]) } : {}),
          },
        };
      case 1:
        return { $ta: this.pick([0, 5, -1, 1e9]), t: this.pick(['Float64Array', 'Nope', 'constructor', '__proto__']) };
      default:
        return { $esc: this.pick([null, 5, 'x', [1], { a: this.value(depth + 1) }]) };
    }
  }

  /** A ref id: well formed or not, of this worker or not. */
  refId(): unknown {
    return this.pick([`${this.c.pid}-zz${this.int(9)}-e${this.int(9)}`, `${this.c.pid}-zz-${this.int(9)}`, '1-abc-2', 'x.y', 'a b', '*', '>', '', 5, null, '2-.-3', `${this.c.pid}-a-b-c`]);
  }

  callShape(): { msg: unknown; reply: boolean } {
    const msg: Record<string, unknown> = {
      op: this.pick(['call', 'call', 'fetch', 5, null]),
      task: this.pick([...this.c.tasks, 'nope', 'file:///x.ts#y', 'colony:pmap#nope', 42, null, '']),
      args: this.pick([[], [1], [1, 2], 'str', null, 7, { 0: 1 }, [this.value(), this.value(), this.value(), this.value()]]),
      from: this.pick([1, 0, -1, 'x', null, 1.5]),
    };
    if (this.int(2)) msg.ref = this.refId();
    if (this.int(4) === 0) delete msg[this.pick(['task', 'args', 'op'])];
    return { msg, reply: true };
  }

  refShape(): { msg: unknown; reply: boolean } {
    const op = this.pick(['fetch', 'wait', 'isready', 'put', 'free', 'blob', 'blob-done', 'nope', 5, null]);
    const id = this.refId();
    const msg = { op, id, value: this.value(), from: this.pick([1, 'x', null, -2]), i: this.pick([0, -1, 1e9, 'x', 1.5]), call: this.pick([true, false, 'x']) };
    // A fetch or wait of a well-formed ref id of this worker waits for its value (a call may be on
    // its way) and a blob-done has no answer: that is the protocol, not a hang.
    const waits = (op === 'fetch' || op === 'wait') && typeof id === 'string' && id.startsWith(`${this.c.pid}-`) && /^\d+-[A-Za-z0-9]+-e?\d+$/.test(id);
    return { msg, reply: !waits && op !== 'blob-done' };
  }

  chunkShape(): { msg: unknown; reply: boolean } {
    // 'free' is left out: it is a valid request, and it would end the chunk being fuzzed.
    const msg = {
      op: this.pick(['read', 'write', 'nope', 5, null]),
      blocks: this.pick([[[[0, 2]]], [[[0, 99]]], [[[-1, 1]]], [[[2, 1]]], 'x', null, [[0, 2]], [this.value()]]),
      block: this.pick([[[0, 2]], [[0, 99]], 'x', null, [[[0, 1]]]]),
      data: this.pick([new Float64Array(2), new Float64Array(5), [1, 2], 'xy', null, this.value()]),
      into: this.pick([undefined, 'x', { path: '/dev/shm/nope' }, null]),
      host: this.pick([undefined, 'x', null]),
      from: this.pick([1, 'x']),
    };
    return { msg, reply: true };
  }

  probe(): Probe {
    const target = this.pick(['call', 'ref', 'chunk'] as const);
    const subject = this.c[target];
    const shape = target === 'call' ? this.callShape() : target === 'ref' ? this.refShape() : this.chunkShape();
    const how = this.int(10);
    if (how < 3) return { subject, data: this.bytes(64), reply: true, kind: `${target}/random-bytes` };
    const full = this.encodeLoose(shape.msg);
    if (how < 6) return { subject, data: full.subarray(0, this.int(Math.max(1, full.length))), reply: true, kind: `${target}/truncated` };
    if (how === 6) return { subject, data: this.refExt(), reply: true, kind: `${target}/ref-extension` };
    return { subject, data: full, reply: shape.reply, kind: `${target}/wrong-shape` };
  }

  /** Encodes without the codec's checks (shapes with functions never occur; this is belt and braces). */
  encodeLoose(v: unknown): Uint8Array {
    try {
      return encode(v);
    } catch {
      return this.bytes(8);
    }
  }

  /** A RemoteRef extension record (0xd4 0x52 0x00, then the id) around a garbage id. */
  refExt(): Uint8Array {
    const head = Uint8Array.of(0x91, 0xd4, 0x52, 0x00);
    return Buffer.concat([head, encode(this.pick(['x', '', 5, null, '2-abc', 'a.b-c-1', `${this.c.pid}-zz-1`, [1]]))]);
  }
}

/** A message as a failure shows it: decoded if it decodes, else its bytes. */
function show(data: Uint8Array | undefined): string {
  if (!data) return '?';
  try {
    return inspect(new Unpackr({ mapsAsObjects: false, moreTypes: true } as never).unpack(data), { depth: 4, breakLength: Infinity });
  } catch {
    return Buffer.from(data).toString('hex');
  }
}

describe('fuzz - malformed messages to a worker', () => {
  let tc: TestCluster;
  let d: DArray;

  beforeAll(async () => {
    tc = await startCluster({ workers: 1, tasks: true, ...(process.env.FUZZ_DEBUG ? { workerOutput: 'inherit' as const } : {}) });
    d = await tc.cluster.darray.zeros(Float64Array, [4], { procs: [2] });
  }, 120_000);
  afterAll(async () => {
    await tc?.close();
  });

  it(`10,000 random, truncated and wrongly shaped messages to call, ref and chunk (seed ${SEED}): the worker stays up and registered, answers each, and calls still work`, async () => {
    const { cluster } = tc;
    const node = cluster.node;
    const before = cluster.workerInfo().find((w) => w.pid === 2)!;
    expect(before.state).toBe('ready');
    const fuzz = new Fuzzer(SEED, {
      call: node.s.call(2), ref: node.s.ref(2), chunk: node.s.chunk(d.id, 0), pid: 2,
      tasks: [echo.key, add.key, pmapBatch.key, pmapCancel.key, reduceSlice.key, darrayReduceChunk.key, darrayFill.key, sharedRelease.key],
    });

    const inbox = createInbox();
    const answered = new Set<number>();
    const sub = node.nc.subscribe(`${inbox}.*`, {
      callback: (_e, m: Msg) => {
        answered.add(Number(m.subject.slice(inbox.length + 1)));
      },
    });
    const expected = new Map<number, string>();
    const sent = new Map<number, Uint8Array>();
    const describe = (k: number, kind: string) => `#${k} ${kind} ${show(sent.get(k))}`;
    const kinds: Record<string, number> = {};
    try {
      for (let i = 0; i < MESSAGES; i++) {
        const p = fuzz.probe();
        kinds[p.kind] = (kinds[p.kind] ?? 0) + 1;
        // A fifth go without a reply subject: the worker must not trip over having no one to answer.
        const wantReply = fuzz.int(5) !== 0;
        node.nc.publish(p.subject, p.data, wantReply ? { reply: `${inbox}.${i}` } : {});
        if (wantReply && p.reply) {
          expected.set(i, p.kind);
          sent.set(i, p.data);
        }
        if (i % WINDOW === WINDOW - 1) {
          // Let the worker catch up before the next window: every answer due so far has come.
          await waitFor(() => [...expected.keys()].every((k) => k > i - WINDOW || answered.has(k)), {
            timeoutMs: 30_000, message: `answers to the messages before #${i} (seed ${SEED})`,
          }).catch((e) => {
            const missing = [...expected].filter(([k]) => k <= i - WINDOW && !answered.has(k)).slice(0, 5);
            throw new Error(`${(e as Error).message}; unanswered: ${missing.map(([k, kind]) => describe(k, kind)).join(', ')}`);
          });
        }
      }
      await waitFor(() => [...expected.keys()].every((k) => answered.has(k)), { timeoutMs: 30_000, message: 'answers to every message' }).catch((e) => {
        const missing = [...expected].filter(([k]) => !answered.has(k)).slice(0, 5);
        throw new Error(`${(e as Error).message}; unanswered (seed ${SEED}): ${missing.map(([k, kind]) => describe(k, kind)).join(', ')}`);
      });
    } finally {
      sub.unsubscribe();
    }
    // Each kind of malformation was tried many times.
    for (const k of ['call', 'ref', 'chunk']) for (const how of ['random-bytes', 'truncated', 'wrong-shape']) expect(kinds[`${k}/${how}`] ?? 0, `${k}/${how}`).toBeGreaterThan(300);

    // The same worker process, still registered and ready.
    expect(processAlive(before.ospid)).toBe(true);
    const after = cluster.workerInfo().find((w) => w.pid === 2)!;
    expect(after).toMatchObject({ ospid: before.ospid, state: 'ready' });
    expect(cluster.workers()).toEqual([2]);
    // Calls, refs and the chunk still work.
    expect(await cluster.remotecallFetch(add, 2, 2, 3)).toBe(5);
    const r = cluster.remotecall(echo, 2, { after: 'fuzz' });
    expect(await r.fetch()).toEqual({ after: 'fuzz' });
    await r.free();
    const empty = cluster.remoteRef<number[]>(2);
    await empty.put([1, 2]);
    expect(await empty.fetch()).toEqual([1, 2]);
    // (Well-formed writes among the fuzz may have changed the chunk: that is allowed.)
    await d.set([[0, 4]], [5, 6, 7, 8]);
    expect(Array.from(await d.toArray() as Float64Array)).toEqual([5, 6, 7, 8]);
    expect(await cluster.pmap(add, [1, 2, 3], { shared: 10 })).toHaveLength(3);
    await cluster.flush();
  }, 120_000);
});
