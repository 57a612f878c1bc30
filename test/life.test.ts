import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DArray } from '../runtime/index.ts';
import { LIFE_TASKS, lifeStep, randomBoard, runLife } from '../examples/life.ts';
import { cellAt, serialLifeStep } from '../examples/life-tasks.ts';
import { startCluster } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { waitFor } from './helpers/wait.ts';

/** The board `randomBoard` makes, built here in one process. */
function serialBoard(rows: number, cols: number, density: number, seed: number): Uint8Array {
  const b = new Uint8Array(rows * cols);
  for (let i = 0; i < b.length; i++) b[i] = cellAt(i, seed) < density ? 1 : 0;
  return b;
}

function diffCells(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

describe('Life on a distributed array (the manual\'s life_step)', () => {
  let tc: TestCluster;
  let w: number[];

  beforeAll(async () => {
    tc = await startCluster({ workers: 2 });
    await tc.cluster.everywhere(LIFE_TASKS);
    w = tc.cluster.workers();
  });
  afterAll(async () => {
    await tc?.close();
  });

  // Chunk k on worker procs[k] (an index into the workers), blocks per dimension.
  const layouts = [
    { name: 'rows split over 2 workers', procs: [0, 1], dist: [2, 1] },
    { name: 'columns split over 2 workers', procs: [0, 1], dist: [1, 2] },
    { name: '2x2 chunks, corners from diagonal neighbours', procs: [0, 1, 1, 0], dist: [2, 2] },
    // Chunk rows of whole 32-bit words: the interior is computed while all four ring sides travel.
    { name: '2x2 chunks of whole words, every ring side from another chunk', procs: [0, 1, 1, 0], dist: [2, 2], cols: 56 },
  ];

  for (const [i, layout] of layouts.entries()) {
    it(`lifeStep equals a serial Life cell for cell: ${layout.name}`, async () => {
      const { cluster } = tc;
      const procs = layout.procs.map((k) => w[k]!);
      const { dist } = layout;
      const [rows, cols] = [37, layout.cols ?? 52];
      let d = await randomBoard(cluster, rows, cols, { procs, dist, density: 0.35, seed: 11 + i });
      let serial = serialBoard(rows, cols, 0.35, 11 + i);
      expect(diffCells(await d.toArray(), serial)).toBe(0);
      for (let g = 1; g <= 25; g++) {
        const next = await lifeStep(cluster, d);
        await d.free();
        d = next;
        serial = serialLifeStep(serial, rows, cols);
        if (g % 5 === 0) expect({ generation: g, differing: diffCells(await d.toArray(), serial) }).toEqual({ generation: g, differing: 0 });
      }
      expect(d.procs).toEqual(procs);
      expect(d.dist).toEqual(dist);
      await d.free();
    });
  }

  it('a glider crosses the chunk border and wraps around the torus', async () => {
    const { cluster } = tc;
    const [rows, cols] = [12, 12];
    const board = new Uint8Array(rows * cols);
    for (const [r, c] of [[0, 1], [1, 2], [2, 0], [2, 1], [2, 2]]) board[r! * cols + c!] = 1;
    let d: DArray<Uint8Array> = await cluster.darray.distribute(board, [rows, cols], { procs: [w[0]!, w[1]!], dist: [2, 1] });
    // A glider moves one cell down and right every 4 generations: after 48 it is home again.
    d = await runLife(cluster, d, 48);
    expect(Array.from(await d.toArray())).toEqual(Array.from(board));
    await d.free();
  });

  it('events - each generation records placement and its halo reads', async () => {
    const { cluster } = tc;
    let d = await randomBoard(cluster, 20, 20, { procs: [w[0]!, w[1]!], dist: [2, 1] });
    const ids = [d.id];
    for (let g = 0; g < 3; g++) {
      const next = await lifeStep(cluster, d);
      await d.free();
      d = next;
      ids.push(d.id);
    }
    await d.free();
    await cluster.flush();
    // Each generation's chunk i was read once, by the owner of the other chunk (its halo rows);
    // the last one was never read.
    for (const [g, id] of ids.entries()) {
      const chunks = await waitFor(async () => {
        const h = (await cluster.events.history('chunk.>')).filter((e) => e.id.startsWith(`${id}-`));
        return h.filter((e) => e.type === 'chunk.freed').length === 2 ? h : null;
      }, { message: `chunks of generation ${g} freed in the log` });
      expect(chunks.filter((e) => e.type === 'chunk.placed').map((e) => e.data.pid).sort()).toEqual([w[0], w[1]].sort());
      const darray = await cluster.events.history(`darray.${id}`);
      expect(darray.map((e) => e.type)).toEqual(['darray.created', 'darray.freed']);
      const halo = g < ids.length - 1 ? 2 : 0;
      // One read per chunk: the row above and the row below, each with its two corners.
      expect(darray[1]!.data).toMatchObject({ reads: halo, readElements: halo * 2 * (20 + 2) });
      for (const e of chunks.filter((x) => x.type === 'chunk.freed')) {
        const other = e.id.endsWith('-0') ? w[1]! : w[0]!;
        expect(e.data.readers).toEqual(halo ? { [other]: 1 } : {});
      }
    }
  });
});
