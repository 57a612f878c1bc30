/**
 * Distributed array benchmarks, one JSON line per scenario:
 *
 * - `life`: the manual's Life on a 2000x2000 Uint8 torus, 2 chunks on 2 workers, 20 generations
 *   (goal: at least 100 generations/s; Dask measured here: 14 to 20, numpy in one process: 450).
 *   The final board is checked against a serial run, cell for cell.
 * - `distribute_toarray`: a 64 MiB Float64Array distributed over 2 workers and brought back
 *   (goal: at least 1 GB/s each way).
 *
 * Each line carries its floor, measured right before it (bench/floors.ts): for `life` the
 * workers' kernel on the whole grid in one process, for `distribute_toarray` a memcpy of the
 * same bytes; `ratio` = figure / floor.
 *
 *   node --import tsx bench/darray.ts
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Cluster } from 'colony';
import { LIFE_TASKS, randomBoard, runLife } from '../examples/life.ts';
import { serialLifeStep } from '../examples/life-tasks.ts';
import { lifeFloor, memcpyFloor, withFloor } from './floors.ts';

type Emit = (line: Record<string, unknown>) => void;

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const progress = (msg: string) => process.stderr.write(`bench darray: ${msg}\n`);

async function withCluster<T>(fn: (cluster: Cluster) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'colony-bench-darray-'));
  let cluster: Cluster | null = null;
  try {
    cluster = await Cluster.start({ workers: 2, stateDir: dir, workerOutput: 'ignore' });
    return await fn(cluster);
  } finally {
    await cluster?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const LIFE_N = 2000;
const LIFE_GENERATIONS = 20;
const LIFE_WARMUP = 3;
const LIFE_RUNS = 3;
const LIFE_DENSITY = 0.3;
const LIFE_SEED = 7;

async function life(): Promise<Record<string, unknown>> {
  const floor = await lifeFloor({ n: LIFE_N, density: LIFE_DENSITY, seed: LIFE_SEED, generations: 5, runs: 3 });
  return withCluster(async (cluster) => {
    await cluster.everywhere(LIFE_TASKS);
    const [a, b] = cluster.workers() as [number, number];
    let d = await randomBoard(cluster, LIFE_N, LIFE_N, { procs: [a, b], dist: [2, 1], density: LIFE_DENSITY, seed: LIFE_SEED });
    const start = await d.toArray();
    d = await runLife(cluster, d, LIFE_WARMUP);
    const rates: number[] = [];
    for (let r = 0; r < LIFE_RUNS; r++) {
      const t0 = performance.now();
      d = await runLife(cluster, d, LIFE_GENERATIONS);
      const s = (performance.now() - t0) / 1000;
      rates.push(LIFE_GENERATIONS / s);
      progress(`life run ${r + 1}: ${round(LIFE_GENERATIONS / s)} generations/s`);
    }
    const final = await d.toArray();
    let board = start;
    for (let g = 0; g < LIFE_WARMUP + LIFE_RUNS * LIFE_GENERATIONS; g++) board = serialLifeStep(board, LIFE_N, LIFE_N);
    let diff = 0;
    for (let i = 0; i < board.length; i++) if (board[i] !== final[i]) diff++;
    if (diff) throw new Error(`the distributed board differs from the serial one in ${diff} cells`);
    await d.free();
    const t1 = performance.now();
    let s = start;
    for (let g = 0; g < 5; g++) s = serialLifeStep(s, LIFE_N, LIFE_N);
    const serialGps = 5 / ((performance.now() - t1) / 1000);
    await cluster.flush();
    const events = (await cluster.events.history('darray.>')).length;
    const rate = median(rates);
    return {
      scenario: 'life',
      size: `${LIFE_N}x${LIFE_N}`,
      chunks: 2,
      generations: LIFE_GENERATIONS,
      generations_per_s: round(rate),
      runs_generations_per_s: rates.map((x) => round(x)),
      serial_one_process_generations_per_s: round(serialGps),
      ...withFloor('generations_per_s', rate, 'floor_generations_per_s', floor.generations_per_s, 'rate', `${floor.is}; 2 workers can reach up to 2`),
      floor_serial_step_generations_per_s: floor.serial_step_generations_per_s,
      darray_events: events,
      checked_cells: board.length,
      goal: 'generations_per_s >= 100 (median of 3 runs of 20 generations; Dask: 14 to 20, numpy in one process: 450)',
      ok: rate >= 100,
    };
  });
}

const TRANSFER_ELEMENTS = 8 * 1024 * 1024; // 64 MiB of Float64
const TRANSFER_REPS = 3;

async function distributeToArray(): Promise<Record<string, unknown>> {
  const floor = await memcpyFloor({ bytes: TRANSFER_ELEMENTS * 8 });
  return withCluster(async (cluster) => {
    const n = TRANSFER_ELEMENTS;
    const bytes = n * 8;
    const mbps = (ms: number) => bytes / 1e6 / (ms / 1000);
    const local = new Float64Array(n);
    for (let i = 0; i < n; i++) local[i] = i;
    const up: number[] = [];
    const down: number[] = [];
    for (let rep = 0; rep <= TRANSFER_REPS; rep++) {
      const t0 = performance.now();
      const d = await cluster.darray.distribute(local, [n / 1024, 1024]);
      const t1 = performance.now();
      const back = await d.toArray();
      const t2 = performance.now();
      if (back.length !== n || back[0] !== 0 || back[n - 1] !== n - 1 || back[n >> 1] !== n >> 1) throw new Error('toArray returned other data than was distributed');
      await d.free();
      progress(`distribute ${round(mbps(t1 - t0), 0)} MB/s, toArray ${round(mbps(t2 - t1), 0)} MB/s${rep === 0 ? ' (warmup)' : ''}`);
      if (rep > 0) {
        up.push(t1 - t0);
        down.push(t2 - t1);
      }
    }
    const upMs = median(up);
    const downMs = median(down);
    return {
      scenario: 'distribute_toarray',
      bytes,
      chunks: 2,
      distribute_ms: round(upMs),
      distribute_mb_per_s: round(mbps(upMs), 0),
      toarray_ms: round(downMs),
      toarray_mb_per_s: round(mbps(downMs), 0),
      reps: TRANSFER_REPS,
      ...withFloor('the slower way\'s mb_per_s', Math.min(mbps(upMs), mbps(downMs)), 'floor_mb_per_s', floor.mb_per_s, 'rate', floor.is),
      distribute_ratio: Number((mbps(upMs) / floor.mb_per_s).toPrecision(3)),
      toarray_ratio: Number((mbps(downMs) / floor.mb_per_s).toPrecision(3)),
      floor_fresh_memory_mb_per_s: floor.fresh_memory_mb_per_s,
      fresh_memory_ratio: Number((Math.min(mbps(upMs), mbps(downMs)) / floor.fresh_memory_mb_per_s).toPrecision(3)),
      goal: 'mb_per_s >= 1000 each way (median of 3; MB = 1e6 bytes)',
      ok: mbps(upMs) >= 1000 && mbps(downMs) >= 1000,
    };
  });
}

/** Runs the scenarios and emits one line each; a failed scenario emits `ok: false` with its error. */
export async function run(emit: Emit): Promise<void> {
  for (const [name, scenario] of [['life', life], ['distribute_toarray', distributeToArray]] as const) {
    try {
      emit(await scenario());
    } catch (e) {
      emit({ scenario: name, ok: false, error: `${(e as Error).name}: ${(e as Error).message}` });
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run((line) => console.log(JSON.stringify(line)));
}
