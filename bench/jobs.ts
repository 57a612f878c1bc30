/**
 * Job manager scenarios for `npm run bench` (`--only jobs`).
 *
 * - jobs_throughput: 500 trivial local jobs (`true`) under perClass.local 4, on a fresh
 *   nats-server. jobs/s from the first submit to the last `job.succeeded`, and the manager's
 *   overhead from "could start" to `job.started`: a job could start when it was queued or when
 *   the run whose slot it took ended, whichever is later. `grant_to_start` is the part spent
 *   handing the run to the runner host until the command has started.
 *   Its floor: the same 500 `true` processes spawned by bare Node, 4 at a time (`ratio` is the
 *   fraction of that rate the manager reaches).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobManager } from '../runtime/jobs/job-manager.ts';
import { Jobs } from '../runtime/jobs/jobs-client.ts';
import { spawn } from 'node:child_process';
import { NatsServer } from '../runtime/transport/nats-server.ts';
import { withFloor } from './floors.ts';

type Emit = (line: Record<string, unknown>) => void;

const JOBS = 500;
const PARALLEL = 4;
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};
const log = (m: string) => process.stderr.write(`bench: ${m}\n`);

/** Bare Node spawning `true` JOBS times, PARALLEL at once: processes per second. */
async function spawnFloor(): Promise<number> {
  const one = () => new Promise<void>((resolve, reject) => {
    const c = spawn('true', [], { stdio: 'ignore' });
    c.once('error', reject);
    c.once('exit', () => resolve());
  });
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next++ < JOBS) await one();
  }));
  return JOBS / ((performance.now() - t0) / 1000);
}

async function jobsThroughput(): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'colony-bench-jobs-'));
  const server = await NatsServer.start({ storeDir: dir });
  let manager: JobManager | null = null;
  let jobs: Jobs | null = null;
  try {
    manager = await JobManager.start({ nats: server.url, name: 'bench', limits: { perClass: { local: PARALLEL } }, log: () => undefined });
    jobs = await Jobs.connect({ nats: server.url, name: 'bench' });
    // Warm up: the first runner pays for the page cache.
    await jobs.wait(await jobs.submit({ name: 'warm', command: ['true'] }));
    const t0 = performance.now();
    const ids: string[] = [];
    for (let i = 0; i < JOBS; i += 50) ids.push(...(await Promise.all(Array.from({ length: Math.min(50, JOBS - i) }, (_, k) => jobs!.submit({ name: `t${i + k}`, command: ['true'] })))));
    const done = await Promise.all(ids.map((id) => jobs!.wait(id, { timeoutMs: 600_000 })));
    const s = (performance.now() - t0) / 1000;
    const failed = done.filter((j) => j.state !== 'succeeded');
    if (failed.length) throw new Error(`${failed.length} job(s) did not succeed; first: ${failed[0]!.state} ${failed[0]!.reason}`);
    const ends = done.map((j) => j.endedAt!).sort((a, b) => a - b);
    const overhead: number[] = [];
    const grantToStart: number[] = [];
    for (const j of done) {
      // The latest end of a run at or before this job's grant: the slot it took was freed then.
      let lo = 0;
      let hi = ends.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (ends[mid]! <= j.grantedAt!) lo = mid + 1;
        else hi = mid;
      }
      const freed = lo > 0 ? ends[lo - 1]! : 0;
      overhead.push(j.startedAt! - Math.max(j.queuedAt!, freed));
      grantToStart.push(j.startedAt! - j.grantedAt!);
    }
    const perS = JOBS / s;
    const floor = await spawnFloor();
    const p50 = pct(overhead, 50);
    log(`jobs_throughput: ${JOBS} jobs in ${round(s, 2)} s, ${round(perS)} jobs/s, overhead p50 ${p50} ms`);
    return {
      scenario: 'jobs_throughput', jobs: JOBS, per_class_local: PARALLEL, seconds: round(s, 2), jobs_per_s: round(perS),
      ...withFloor('jobs_per_s', perS, 'floor_per_s', round(floor), 'rate', `bare node spawning ${JOBS} \`true\`, ${PARALLEL} at a time`),
      overhead_p50_ms: p50, overhead_p90_ms: pct(overhead, 90), grant_to_start_p50_ms: pct(grantToStart, 50),
      goal: '>= 50 jobs/s, overhead p50 <= 20 ms', ok: perS >= 50 && p50 <= 20,
    };
  } finally {
    await jobs?.close();
    await manager?.close();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function run(emit: Emit): Promise<void> {
  for (const scenario of [jobsThroughput]) {
    try {
      emit(await scenario());
    } catch (e) {
      emit({ scenario: scenario.name, ok: false, error: `${(e as Error).name}: ${(e as Error).message}` });
    }
  }
}
