import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SharedArray, localindexes, sdata } from '../runtime/index.ts';
import { ARRAY_TASKS_URL, fillLocal, fillStrided, markInit, sharedGet, sharedPut, sharedSlice } from './fixtures/array-tasks.ts';
import { startCluster } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { canUnshare, joinFromOtherHost, OTHER_HOST } from './helpers/other-host.ts';

/** The manual prints column-major matrices; Julia's memory holds them column by column. */
function columnMajor(rows: number[][]): number[] {
  const out: number[] = [];
  for (let j = 0; j < rows[0]!.length; j++) for (const r of rows) out.push(r[j]!);
  return out;
}

const shmFile = (S: SharedArray) => `/dev/shm${S.name}`;

describe('shared arrays (the manual\'s examples, addprocs(3))', () => {
  let tc: TestCluster;
  let w: number[];

  beforeAll(async () => {
    tc = await startCluster({ workers: 3 });
    await tc.cluster.everywhere(ARRAY_TASKS_URL);
    w = tc.cluster.workers();
  });
  afterAll(async () => {
    await tc?.close();
  });

  it('SharedArray(Int, (3,4), init = S -> S[localindexes(S)] = myid()) - the same layout as the manual', async () => {
    const { cluster } = tc;
    expect(w).toEqual([2, 3, 4]);
    const S = await cluster.sharedArray(Int32Array, [3, 4], { init: fillLocal });
    expect(S.dims).toEqual([3, 4]);
    expect(S.pids).toEqual([2, 3, 4]);
    // The manual shows
    //   2  2  3  4
    //   2  3  3  4
    //   2  3  4  4
    // in column-major order: its memory is 2 2 2 2 3 3 3 3 4 4 4 4, and so is ours.
    const julia = columnMajor([[2, 2, 3, 4], [2, 3, 3, 4], [2, 3, 4, 4]]);
    expect(Array.from(sdata(S))).toEqual(julia);
    // Row-major, the same memory reads row by row.
    expect([0, 1, 2].map((i) => [0, 1, 2, 3].map((j) => S.at(i, j)))).toEqual([[2, 2, 2, 2], [3, 3, 3, 3], [4, 4, 4, 4]]);

    // S[3,2] = 7: Julia's element 6 (1-based, column-major) is our linear index 5 = [1, 1].
    S.set([1, 1], 7);
    expect(sdata(S)[5]).toBe(7);
    // The workers see the driver's write at once, without a copy...
    expect(await Promise.all(w.map((p) => cluster.remotecallFetch(sharedGet, p, S, 5)))).toEqual([7, 7, 7]);
    // ...and the driver and the other workers see a worker's write.
    await cluster.remotecallFetch(sharedPut, 3, S, 11, -1);
    expect(sdata(S)[11]).toBe(-1);
    expect(await cluster.remotecallFetch(sharedGet, 4, S, 11)).toBe(-1);
    await S.free();
  });

  it('SharedArray(Int, (3,4), init = S -> S[myid()-1:nworkers():length(S)] = myid()) - the strided example', async () => {
    const S = await tc.cluster.sharedArray(Int32Array, [3, 4], { init: fillStrided });
    // The manual: every row of its column-major picture is one pid.
    expect(Array.from(sdata(S))).toEqual(columnMajor([[2, 2, 2, 2], [3, 3, 3, 3], [4, 4, 4, 4]]));
    await S.free();
  });

  it('localindexes - disjoint slices that cover the array exactly once', async () => {
    const { cluster } = tc;
    for (const dims of [[3, 4], [10], [2, 3, 5], [2]]) {
      const S = await cluster.sharedArray(Float64Array, dims);
      const slices = await Promise.all(w.map((p) => cluster.remotecallFetch(sharedSlice, p, S)));
      const n = dims.reduce((a, b) => a * b, 1);
      const seen = new Uint8Array(n);
      for (const { slice: [s, e] } of slices) for (let i = s; i < e; i++) seen[i]!++;
      expect({ dims, covered: seen.every((c) => c === 1) }).toEqual({ dims, covered: true });
      // The driver does not take part.
      expect(localindexes(S)).toEqual([0, 0]);
      await S.free();
    }
    // Julia's split: equal parts, the last one takes the rest.
    const S = await cluster.sharedArray(Int8Array, [10]);
    expect((await Promise.all(w.map((p) => cluster.remotecallFetch(sharedSlice, p, S)))).map((x) => x.slice)).toEqual([[0, 3], [3, 6], [6, 10]]);
    await S.free();
  });

  it('pids - init runs on exactly the participating workers; the file goes when freed', async () => {
    const { cluster } = tc;
    const S = await cluster.sharedArray(Int32Array, [8], { pids: [2, 4], init: markInit });
    expect(Array.from(sdata(S))).toEqual([0, 0, 1, 0, 1, 0, 0, 0]);
    expect(S).toBeInstanceOf(SharedArray);
    expect(existsSync(shmFile(S))).toBe(true);
    const big = await cluster.sharedArray(BigInt64Array, [2, 2]);
    sdata(big)[3] = 2n ** 62n;
    expect(big.at(1, 1)).toBe(2n ** 62n);
    await S.free();
    expect(existsSync(shmFile(S))).toBe(false);
    expect(() => sdata(S)).toThrow(/was freed/);
    await expect(cluster.remotecallFetch(sharedGet, 2, S, 0)).rejects.toThrow(/gone/);
    await big.free();
    await expect(cluster.sharedArray(Int32Array, [2], { pids: [2, 9] })).rejects.toThrow(/no process 9/);
  });

  it('close - the cluster removes the shared memory files it made', async () => {
    const other = await startCluster({ workers: 1 });
    let file = '';
    try {
      const S = await other.cluster.sharedArray(Uint8Array, [1024]);
      file = shmFile(S);
      expect(existsSync(file)).toBe(true);
    } finally {
      await other.close();
    }
    expect(existsSync(file)).toBe(false);
  });

  it.skipIf(!canUnshare)('a pid on another host gets a clear error', async () => {
    const { cluster } = tc;
    const other = await joinFromOtherHost(tc);
    const { pid } = other;
    try {
      const err = await cluster.sharedArray(Int32Array, [4], { pids: [2, pid] }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).name).toBe('InvalidArgumentError');
      expect((err as Error).message).toMatch(new RegExp(`pid ${pid} on '${OTHER_HOST}' is not on '.+' with pid 2`));
    } finally {
      await other.stop();
    }
  });
});
