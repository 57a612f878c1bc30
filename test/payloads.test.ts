import { existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsServer } from '../runtime/transport/nats-server.ts';
import { echo, makeArray, sum, sumRef, typesOf } from './fixtures/tasks.ts';
import { externalNats, startCluster, tempDir } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { uniqueName } from './helpers/nats.ts';
import { within } from './helpers/settle.ts';
import { waitFor } from './helpers/wait.ts';

/** NATS's default max_payload, which production servers keep: every big value goes in chunks. */
const ONE_MB = 1024 * 1024;
const BIG = 8 * 1024 * 1024; // 8M float64 = 64 MB

function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function bigArray(n: number): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = i * 0.5;
  return a;
}

/** The sum of i * 0.5 for i < n, computed the same way the task does. */
function localSum(a: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s;
}

describe('payloads', () => {
  let server: NatsServer | null = null;
  let dir: string | undefined;
  let tc: TestCluster;
  let big: Float64Array;

  beforeAll(async () => {
    big = bigArray(BIG);
    if (externalNats) {
      tc = await startCluster({ workers: 2, tasks: true });
      return;
    }
    dir = await tempDir('colony-nats-1mb-');
    server = await NatsServer.start({ storeDir: dir, maxPayload: ONE_MB });
    tc = await startCluster({ nats: server.url, name: uniqueName('pay'), workers: 2, tasks: true });
  });
  afterAll(async () => {
    await tc?.close();
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(externalNats)('runs on a server with the 1 MB payload limit', () => {
    expect(tc.cluster.nc.info?.max_payload).toBe(ONE_MB);
  });

  it('remotecallFetch - a 64 MB Float64Array goes to a worker and comes back intact', async () => {
    const back = await tc.cluster.remotecallFetch(echo, 2, big);
    expect(back).toBeInstanceOf(Float64Array);
    expect(back.length).toBe(BIG);
    expect(sameBytes(back, big)).toBe(true);
  });

  it('remotecallFetch - a worker sums a 64 MB Float64Array sent to it', async () => {
    expect(await tc.cluster.remotecallFetch(sum, 3, big)).toBe(localSum(big));
  });

  it('remotecall - a 64 MB array made on a worker is fetched intact', async () => {
    const r = tc.cluster.remotecall(makeArray, 2, BIG);
    const a = await r.fetch();
    expect(a).toBeInstanceOf(Float64Array);
    expect(a.length).toBe(BIG);
    expect(sameBytes(a, big)).toBe(true);
  });

  it('put/fetch - a 64 MB array put on a worker is fetched by the driver and by a task on another worker', async () => {
    const rr = tc.cluster.remoteRef<Float64Array>(3);
    await rr.put(big);
    const a = await rr.fetch();
    expect(a.length).toBe(BIG);
    expect(sameBytes(a, big)).toBe(true);
    expect(await tc.cluster.remotecallFetch(sumRef, 2, rr)).toEqual({ me: 2, sum: localSum(big) });
  });

  it('put/fetch - a 64 MB array in a ref owned by the driver is summed by a worker', async () => {
    const rr = tc.cluster.remoteRef<Float64Array>();
    await rr.put(big);
    expect(await tc.cluster.remotecallFetch(sumRef, 3, rr)).toEqual({ me: 3, sum: localSum(big) });
  });

  it('remotecall - a call with a big argument can be fetched and waited on at once', async () => {
    const r = tc.cluster.remotecall(sum, 2, big);
    expect(await within(r.fetch(), 10_000, 'fetch() right after remotecall(sum, 2, <64 MB>)')).toBe(localSum(big));
    const r2 = tc.cluster.remotecall(echo, 3, new Float64Array(1_000_000).fill(2));
    await within(r2.wait(), 10_000, 'wait() right after remotecall(echo, 3, <8 MB>)');
    expect((await r2.fetch()).length).toBe(1_000_000);
  });

  it('chunking - values just below, at and above the payload limit all arrive intact', async () => {
    const limit = tc.cluster.nc.info?.max_payload ?? ONE_MB;
    for (const size of [limit - 64 * 1024, limit - 17 * 1024, limit - 1, limit, limit + 1, 2 * limit, 3 * limit + 7]) {
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 0xff;
      const back = await tc.cluster.remotecallFetch(echo, 2, bytes);
      expect(back.length, `size ${size}`).toBe(size);
      expect(sameBytes(back, bytes), `size ${size}`).toBe(true);
    }
  });

  it('many big values in flight at once do not get mixed up', async () => {
    const arrays = Array.from({ length: 6 }, (_, k) => {
      const a = new Float64Array(300_000);
      a.fill(k + 0.25);
      return a;
    });
    const back = await Promise.all(arrays.map((a, k) => tc.cluster.remotecallFetch(echo, 2 + (k % 2), a)));
    back.forEach((b, k) => {
      expect(b.length).toBe(300_000);
      expect(b[0]).toBe(k + 0.25);
      expect(b[299_999]).toBe(k + 0.25);
    });
  });

  it('typed arrays keep their type both on the worker and on the way back', async () => {
    const values = {
      i8: new Int8Array([-1, 2]),
      u8: new Uint8Array([1, 2, 255]),
      u8c: new Uint8ClampedArray([0, 255]),
      i16: new Int16Array([-5, 300]),
      u16: new Uint16Array([65535]),
      i32: new Int32Array([1, -2, 2 ** 31 - 1]),
      u32: new Uint32Array([2 ** 32 - 1]),
      f32: new Float32Array([1.5, -2.25]),
      f64: new Float64Array([Math.PI, -0.5]),
      i64: new BigInt64Array([1n, -2n, 2n ** 62n]),
      u64: new BigUint64Array([2n ** 63n]),
    };
    const seen = await tc.cluster.remotecallFetch(typesOf, 2, values);
    for (const [k, v] of Object.entries(values)) expect(seen[k], k).toBe(v.constructor.name);
    const back = await tc.cluster.remotecallFetch(echo, 3, values);
    for (const [k, v] of Object.entries(values)) {
      expect(back[k as keyof typeof values], k).toBeInstanceOf(v.constructor);
      expect(back[k as keyof typeof values], k).toEqual(v);
    }
  });

  it('typed arrays above 256 KB of every element type keep their type and content', async () => {
    const n = 80_000;
    const fill = <T extends { length: number; [i: number]: number | bigint }>(a: T, f: (i: number) => number | bigint): T => {
      for (let i = 0; i < a.length; i++) a[i] = f(i);
      return a;
    };
    const values = {
      i8: fill(new Int8Array(n * 4), (i) => (i % 256) - 128),
      u8: fill(new Uint8Array(n * 4), (i) => i % 256),
      u8c: fill(new Uint8ClampedArray(n * 4), (i) => i % 256),
      i16: fill(new Int16Array(n * 2), (i) => (i % 65536) - 32768),
      u16: fill(new Uint16Array(n * 2), (i) => i % 65536),
      i32: fill(new Int32Array(n), (i) => -i),
      u32: fill(new Uint32Array(n), (i) => i * 3),
      f32: fill(new Float32Array(n), (i) => i / 4),
      f64: fill(new Float64Array(n), (i) => i / 3),
      i64: fill(new BigInt64Array(n), (i) => BigInt(-i)),
      u64: fill(new BigUint64Array(n), (i) => BigInt(i) * 7n),
      // A view at an odd offset of a bigger buffer, and arrays nested in arrays and objects.
      view: new Int16Array(new Int32Array(n * 2).fill(-1).buffer, 2, n * 2),
      nested: [{ deep: [new Float64Array(n).fill(0.5)] }],
    };
    const seen = await tc.cluster.remotecallFetch(typesOf, 2, values);
    const back = await tc.cluster.remotecallFetch(echo, 3, values);
    for (const [k, v] of Object.entries(values)) {
      if (k === 'nested') continue;
      const view = v as ArrayBufferView;
      expect(seen[k], k).toBe(view.constructor.name);
      expect(back[k], k).toBeInstanceOf(view.constructor);
      expect(sameBytes(back[k], view), k).toBe(true);
    }
    expect(back.nested[0].deep[0]).toBeInstanceOf(Float64Array);
    expect(sameBytes(back.nested[0].deep[0], values.nested[0]!.deep[0]!)).toBe(true);
  });

  it('user data that looks like internal framing arrives exactly as sent', async () => {
    const value = { big: new Float64Array(100_000).fill(1), user: { $ta: 0, t: 'Float64Array' }, blob: { $blob: { holder: 1 } } };
    const back = await tc.cluster.remotecallFetch(echo, 2, value);
    // (Checked by constructor first, so a failure does not print 100k elements.)
    expect(back.user.constructor.name).toBe('Object');
    expect(back.user).toEqual({ $ta: 0, t: 'Float64Array' });
    expect(back.blob).toEqual({ $blob: { holder: 1 } });
    expect(await tc.cluster.remotecallFetch(echo, 2, { $blob: { holder: 1, id: 'x', size: 1, chunk: 1 } })).toEqual({ $blob: { holder: 1, id: 'x', size: 1, chunk: 1 } });
    // Small messages too, where nothing is lifted: at the top, nested, and in arrays.
    const small = { $esc: { a: 1 }, list: [{ $ta: 1, t: 'Int8Array' }], deep: { x: { $esc: { $ta: 2 } } } };
    expect(await tc.cluster.remotecallFetch(echo, 2, small)).toEqual(small);
    expect(await tc.cluster.remotecallFetch(echo, 2, [{ $ta: 0, t: 'Uint8Array' }])).toEqual([{ $ta: 0, t: 'Uint8Array' }]);
  });

  it('typed arrays - a view into a bigger buffer travels as just its own elements', async () => {
    const whole = new Float64Array([1, 2, 3, 4, 5, 6]);
    const view = whole.subarray(2, 4);
    const back = await tc.cluster.remotecallFetch(echo, 2, view);
    expect(back).toBeInstanceOf(Float64Array);
    expect(Array.from(back)).toEqual([3, 4]);
    const odd = new Int32Array(new Uint8Array(64).buffer, 12, 3);
    odd.set([7, 8, 9]);
    expect(Array.from(await tc.cluster.remotecallFetch(echo, 3, odd))).toEqual([7, 8, 9]);
  });

  it('Set, Date, bigint and nested objects round-trip as themselves', async () => {
    const value = {
      set: new Set(['x', 'y']),
      date: new Date('2020-01-02T03:04:05.678Z'),
      big: 12345678901234567890n,
      nested: { list: [1, 'two', null, { deep: [true, false] }], text: 'héllo ✓ 🐝' },
      special: [NaN, Infinity, -Infinity],
      empty: new Float64Array(0),
    };
    const seen = await tc.cluster.remotecallFetch(typesOf, 2, value);
    expect(seen).toMatchObject({ set: 'Set', date: 'Date', big: 'bigint', nested: 'Object', special: 'Array', empty: 'Float64Array' });
    const back = await tc.cluster.remotecallFetch(echo, 2, value);
    expect(back.set).toBeInstanceOf(Set);
    expect(back.date).toBeInstanceOf(Date);
    expect(back).toEqual(value);
  });

  it('Map round-trips as a Map, keys keeping their types', async () => {
    const map = new Map<unknown, unknown>([['a', 1], [2, 'two'], ['nested', new Map([['k', new Int32Array([1, 2])]])]]);
    expect((await tc.cluster.remotecallFetch(typesOf, 2, { map })).map).toBe('Map');
    const back = await tc.cluster.remotecallFetch(echo, 2, map);
    expect(back).toBeInstanceOf(Map);
    expect(back).toEqual(map);
    expect(back.get(2)).toBe('two');
  });

  it('a big value of mixed types (typed arrays above the limit, a Date) keeps its types', async () => {
    const value = { parts: [new Int32Array(400_000).fill(-3), new Float32Array(400_000).fill(0.5)], when: new Date(0) };
    const back = await tc.cluster.remotecallFetch(echo, 3, value);
    expect(back.parts[0]).toBeInstanceOf(Int32Array);
    expect(back.parts[1]).toBeInstanceOf(Float32Array);
    expect(back.parts[0]!.length).toBe(400_000);
    expect(back.parts[0]![399_999]).toBe(-3);
    expect(back.parts[1]![123]).toBe(0.5);
    expect(back.when).toEqual(new Date(0));
  });

  it('values that were taken leave no shared-memory files behind', async () => {
    const r = tc.cluster.remotecall(makeArray, 2, 1_000_000);
    expect((await r.fetch()).length).toBe(1_000_000);
    const owners = [process.pid, ...tc.cluster.workerInfo().map((w) => w.ospid)];
    const left = () => (existsSync('/dev/shm') ? readdirSync('/dev/shm') : []).filter((f) => owners.some((p) => f.startsWith(`colony-${p}-`)));
    await waitFor(() => left().length === 0, { message: `no colony blob files in /dev/shm (left: ${left().join(', ')})` });
  });
});

