/**
 * Conway's Life on a torus over a distributed array: the manual's `life_step`.
 *
 *   node --conditions=colony-source --import tsx examples/life.ts [rows] [cols] [generations]
 *
 * Every generation is a new DArray built by `cluster.darray.create(lifeChunk, dims, { args: [d] })`:
 * on each owner, the init task reads its chunk of the previous generation locally and the halo
 * (one row or column of each neighbouring chunk) through the handle `d`, then applies the rule.
 * `colony events chunk.>` shows where each chunk was placed and how many halo reads it served.
 */
import { pathToFileURL } from 'node:url';
import { Cluster } from 'colony';
import type { DArray } from 'colony';
import { lifeChunk, randomCells } from './life-tasks.ts';

export const LIFE_TASKS = new URL('./life-tasks.ts', import.meta.url);

/** Julia's `life_step(d)`: the next generation, on the same processes with the same blocks. */
export function lifeStep(cluster: Cluster, d: DArray<Uint8Array>): Promise<DArray<Uint8Array>> {
  return cluster.darray.create<Uint8Array>(lifeChunk, [...d.dims], { procs: [...d.procs], dist: [...d.dist], type: Uint8Array, args: [d] });
}

/** A random board, each cell alive with probability `density` (seeded: the same board every time). */
export function randomBoard(cluster: Cluster, rows: number, cols: number, opts: { procs?: number[]; dist?: number[]; density?: number; seed?: number } = {}): Promise<DArray<Uint8Array>> {
  return cluster.darray.create<Uint8Array>(randomCells, [rows, cols], {
    procs: opts.procs, dist: opts.dist, type: Uint8Array, args: [cols, opts.density ?? 0.3, opts.seed ?? 42],
  });
}

/**
 * Runs `generations` steps. Each generation is freed once the next one is built; the free goes out
 * right after the call that builds the generation after that, so an owner starts that call (and
 * its halo request) first and handles the free while the halo travels. The frees are not waited
 * for one by one, only all together at the end.
 */
export async function runLife(cluster: Cluster, d: DArray<Uint8Array>, generations: number): Promise<DArray<Uint8Array>> {
  const frees: Promise<void>[] = [];
  // The generation before `d`: built, and no longer read once the step from `d` has started.
  let done: DArray<Uint8Array> | null = null;
  try {
    for (let g = 0; g < generations; g++) {
      const next = lifeStep(cluster, d);
      if (done) frees.push(done.free());
      done = d;
      d = await next;
    }
    if (done) frees.push(done.free());
  } finally {
    await Promise.all(frees);
  }
  return d;
}

async function main(): Promise<void> {
  const [rows = 512, cols = 512, generations = 100] = process.argv.slice(2).map(Number);
  const cluster = await Cluster.start({ workers: 2 });
  try {
    await cluster.everywhere(LIFE_TASKS);
    let d = await randomBoard(cluster, rows, cols);
    console.log(`${d}: ${await d.reduce('+')} cells alive`);
    const t0 = performance.now();
    d = await runLife(cluster, d, generations);
    const s = (performance.now() - t0) / 1000;
    console.log(`after ${generations} generations: ${await d.reduce('+')} cells alive; ${(generations / s).toFixed(1)} generations/s`);
    const corner = await d.get([[0, 8], [0, 32]]);
    for (let i = 0; i < 8; i++) console.log(Array.from(corner.subarray(i * 32, (i + 1) * 32), (c) => (c ? '#' : '.')).join(''));
    await d.free();
  } finally {
    await cluster.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
