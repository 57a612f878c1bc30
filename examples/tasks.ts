/**
 * Tasks for the demo and the examples: the functions of the Julia manual's first pages.
 * A module of tasks is loaded on every worker with `cluster.everywhere(url)`.
 */
import { RemoteRef, myid, task } from 'colony';

/** A matrix as Julia prints it: row-major data plus its dimensions. */
export interface Matrix {
  rows: number;
  cols: number;
  data: Float64Array;
}

/** `rand(rows, cols)`. */
export const randMatrix = task(import.meta.url, function randMatrix(rows: number, cols: number): Matrix {
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = Math.random();
  return { rows, cols, data };
});

/** `1 .+ fetch(r)`: adds one to every element of a matrix held in a ref. */
export const addOne = task(import.meta.url, async function addOne(r: RemoteRef<Matrix>): Promise<Matrix> {
  const m = await r.fetch();
  return { rows: m.rows, cols: m.cols, data: m.data.map((x) => x + 1) };
});

/** `getindex(r, i, j)`, i.e. `r[i, j]`: one element of a matrix held in a ref (0-based, row-major). */
export const getindex = task(import.meta.url, async function getindex(r: RemoteRef<Matrix>, i: number, j: number): Promise<number> {
  const m = await r.fetch();
  if (!(i >= 0 && i < m.rows && j >= 0 && j < m.cols)) throw new RangeError(`index [${i}, ${j}] is outside a ${m.rows}x${m.cols} matrix`);
  return m.data[i * m.cols + j]!;
});

/** The manual's `count_heads(n)`: flips n coins. */
export const countHeads = task(import.meta.url, function countHeads(n: number): number {
  let c = 0;
  for (let i = 0; i < n; i++) c += Math.random() < 0.5 ? 1 : 0;
  return c;
});

/** `myid()` on whichever process runs it. */
export const whoami = task(import.meta.url, function whoami(): number {
  return myid();
});
