import { existsSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echo, fetchAndMutate, sum, sumRef } from './fixtures/tasks.ts';
import { startCluster } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { canUnshare, joinFromOtherHost } from './helpers/other-host.ts';
import { waitFor } from './helpers/wait.ts';

const BIG = 4 * 1024 * 1024; // 4M float64 = 32 MB

function halves(n: number): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = i * 0.5;
  return a;
}

function sumOf(a: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s;
}

function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Every lifted element type, each at an offset into a bigger buffer, nested in objects and arrays. */
function mixedValue() {
  const n = 300_000;
  const bytes = new Uint8Array(8 * n + 64);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 0xff;
  const at = (C: { new (b: ArrayBuffer, o: number, l: number): ArrayBufferView; BYTES_PER_ELEMENT: number }) =>
    new C(bytes.slice().buffer, 8 * C.BYTES_PER_ELEMENT, (bytes.length - 16 * C.BYTES_PER_ELEMENT) / C.BYTES_PER_ELEMENT);
  return {
    odd: bytes.subarray(3, 3 + 300_001), // odd offset and odd length
    deep: { list: [at(Int8Array), at(Int16Array), { x: at(Uint16Array) }], more: [at(Int32Array), at(Uint32Array)] },
    floats: [at(Float32Array), at(Float64Array)],
    ints: { big: at(BigInt64Array), ubig: at(BigUint64Array), clamped: at(Uint8ClampedArray) },
    label: 'mixed',
  };
}

function expectSameValue(back: ReturnType<typeof mixedValue>, value: ReturnType<typeof mixedValue>): void {
  const pairs: [ArrayBufferView, ArrayBufferView][] = [
    [back.odd, value.odd],
    [back.deep.list[0] as ArrayBufferView, value.deep.list[0] as ArrayBufferView],
    [back.deep.list[1] as ArrayBufferView, value.deep.list[1] as ArrayBufferView],
    [(back.deep.list[2] as { x: ArrayBufferView }).x, (value.deep.list[2] as { x: ArrayBufferView }).x],
    [back.deep.more[0]!, value.deep.more[0]!],
    [back.deep.more[1]!, value.deep.more[1]!],
    [back.floats[0]!, value.floats[0]!],
    [back.floats[1]!, value.floats[1]!],
    [back.ints.big, value.ints.big],
    [back.ints.ubig, value.ints.ubig],
    [back.ints.clamped, value.ints.clamped],
  ];
  for (const [b, v] of pairs) {
    expect(b.constructor.name).toBe(v.constructor.name);
    expect(b.byteLength).toBe(v.byteLength);
    expect(sameBytes(b, v)).toBe(true);
  }
  expect(back.label).toBe('mixed');
}

/** Blob files in /dev/shm made by any of `pids`. */
function blobFiles(pids: number[]): string[] {
  if (!existsSync('/dev/shm')) return [];
  return readdirSync('/dev/shm').filter((f) => pids.some((p) => f.startsWith(`colony-${p}-`)));
}

describe('big values between processes (blobs)', () => {
  let tc: TestCluster;
  let big: Float64Array;

  beforeAll(async () => {
    big = halves(BIG);
    tc = await startCluster({ workers: 2, tasks: true });
  });
  afterAll(async () => {
    await tc?.close();
  });

  const owners = () => [process.pid, ...tc.cluster.workerInfo().map((w) => w.ospid)];

  it('same host - a 32 MB array goes to a worker and back intact, leaving no file in /dev/shm', async () => {
    expect(await tc.cluster.remotecallFetch(sum, 2, big)).toBe(sumOf(big));
    const back = await tc.cluster.remotecallFetch(echo, 2, big);
    expect(back).toBeInstanceOf(Float64Array);
    expect(sameBytes(back, big)).toBe(true);
    await waitFor(() => blobFiles(owners()).length === 0, { message: `no blob files left (left: ${blobFiles(owners()).join(', ')})` });
  });

  it('same host - every element type, at odd offsets and nested, arrives as sent both ways', async () => {
    const value = mixedValue();
    expectSameValue(await tc.cluster.remotecallFetch(echo, 3, value), value);
  });

  it('same host - a received array is the receiver\'s own: later writes on either side do not reach the other', async () => {
    const expected = sumOf(halves(BIG));
    const local = halves(BIG);
    const rr = tc.cluster.remoteRef<Float64Array>(2);
    await rr.put(local);
    local.fill(-1); // the sender writes into its array after the put
    expect(await tc.cluster.remotecallFetch(sumRef, 2, rr)).toEqual({ me: 2, sum: expected });
    // Worker 3 fetches the value and writes into what it got; the driver does the same.
    expect(await tc.cluster.remotecallFetch(fetchAndMutate, 3, rr, 1e9)).toBe(3);
    (await rr.fetch()).fill(7);
    expect(await tc.cluster.remotecallFetch(sumRef, 2, rr)).toEqual({ me: 2, sum: expected });
    await rr.free();
  });

  it('same host - many big values at once neither mix up nor leave files', async () => {
    const values = Array.from({ length: 6 }, (_, k) => new Float64Array(200_000).fill(k + 1));
    const sums = await Promise.all(values.map((v, k) => tc.cluster.remotecallFetch(sum, 2 + (k % 2), v)));
    expect(sums).toEqual(values.map((_, k) => 200_000 * (k + 1)));
    const backs = await Promise.all(values.map((v, k) => tc.cluster.remotecallFetch(echo, 2 + (k % 2), v)));
    backs.forEach((b, k) => expect(sameBytes(b, values[k]!)).toBe(true));
    await waitFor(() => blobFiles(owners()).length === 0, { message: `no blob files left (left: ${blobFiles(owners()).join(', ')})` });
  });

  it.skipIf(!canUnshare)('another host - big values travel in chunks over NATS both ways, intact, and the holder removes its file', async () => {
    const { cluster } = tc;
    const other = await joinFromOtherHost(tc);
    const { pid, ospid } = other;
    try {
      expect(await cluster.remotecallFetch(sum, pid, big)).toBe(sumOf(big));
      const back = await cluster.remotecallFetch(echo, pid, big);
      expect(sameBytes(back, big)).toBe(true);
      const value = mixedValue();
      expectSameValue(await cluster.remotecallFetch(echo, pid, value), value);
      await waitFor(() => blobFiles([process.pid, ospid]).length === 0, { message: 'both holders remove their files once the chunks are taken' });
    } finally {
      await other.stop();
    }
  });
});
