/**
 * Cluster-manager scenarios for `npm run bench` (wired in by bench/run.ts: `--only managers`).
 *
 * addprocs_<manager>: `addprocs(manager, { count: 2 })` until both workers answer a call, on a
 * fresh cluster with the tasks already loaded, median of 3 runs, for local, ssh, sge and slurm
 * (each where it is up: test/schedulers/start-*.sh).
 *
 * `scheduler_ms` is the scheduler's own share: for sge and slurm, from the submit to the later of
 * the two jobs' start (each job writes its start time); for ssh, what `ssh host true` takes.
 * `overhead_ms = total_ms - scheduler_ms` is Colony's part (worker start, announce, register),
 * with the goal from the issue: at most 1 s. `local_ms` of the same machine is given beside it,
 * since a worker's own start (node, TypeScript loader, NATS) is most of any overhead.
 *
 * The floor, measured right before (bench/floors.ts): 2 bare `node -e` started at once until both
 * answer; `ratio` = overhead_ms / floor_ms.
 */
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// Through the package's own names, so the same scenarios measure whichever copy 'colony'
// resolves to: the sources (npm run bench sets the colony-source condition) or dist/
// (bench/managers_dist.ts runs this file without it).
import { Cluster, LocalManager, SGEManager, SlurmManager, SSHManager } from 'colony';
import type { ClusterManager } from 'colony';
import { run as runCommand } from 'colony/adapters';
import { sgeGate, slurmGate, sshdGate, SSHD_DIR } from '../test/schedulers/gate.ts';
import { nodeStartFloor, withFloor } from './floors.ts';
import { echo as echoTs } from './tasks.ts';
// @ts-expect-error a plain JavaScript module without declarations
import { echo as echoJs } from '../scripts/startup-tasks.mjs';

type Emit = (line: Record<string, unknown>) => void;

/** Which copy runs: scenario names get `_dist` for the compiled package, whose goals are the issue's. */
const DIST = import.meta.resolve('colony').includes('/dist/');

/** On dist/, a plain JavaScript task module, so the workers load no TypeScript loader. */
const TASKS = DIST ? new URL('../scripts/startup-tasks.mjs', import.meta.url) : new URL('./tasks.ts', import.meta.url);
const echo: typeof echoTs = DIST ? echoJs : echoTs;
const RUNS = 3;
const GOAL_MS = DIST ? { local: 500, ssh: 700, sge: 700, slurm: 700 } as Record<string, number> : { local: 1000, ssh: 1000, sge: 1000, slurm: 1000 } as Record<string, number>;
const round = (x: number) => Math.round(x * 10) / 10;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);

/** The job script records its start (ms since the epoch) in its job directory. */
const STAMP = ['date +%s%3N > "$COLONY_JOB_DIR/start.$COLONY_TASK"'];

interface Run {
  total: number;
  /** The scheduler's own time, when it can be told. */
  scheduler: number | null;
}

/** One addprocs of 2 workers until both answer. */
async function once(make: (jobDir: string) => ClusterManager): Promise<Run> {
  const dir = await mkdtemp(join(tmpdir(), 'colony-bench-mgr-'));
  let cluster: Cluster | null = null;
  try {
    cluster = await Cluster.start({ workers: 0, stateDir: dir, workerOutput: 'ignore' });
    await cluster.everywhere(TASKS);
    const manager = make(join(dir, 'jobs'));
    const t0 = Date.now();
    const p0 = performance.now();
    const pids = await cluster.addprocs(manager, { count: 2 });
    const answers = await Promise.all(pids.map((p) => cluster!.remotecallFetch(echo, p, p)));
    const total = performance.now() - p0;
    if (answers.join() !== pids.join()) throw new Error(`expected answers from ${pids}, got ${answers}`);
    let scheduler: number | null = null;
    const starts = await jobStarts(join(dir, 'jobs'));
    if (starts.length) scheduler = Math.max(...starts) - t0;
    await cluster.rmprocs(pids);
    return { total, scheduler };
  } finally {
    await cluster?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function jobStarts(jobs: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir(jobs).catch(() => [] as string[])) {
    for (const f of await readdir(join(jobs, d)).catch(() => [] as string[])) {
      if (f.startsWith('start.')) out.push(Number((await readFile(join(jobs, d, f), 'utf8')).trim()));
    }
  }
  return out;
}

async function scenario(emit: Emit, name: string, make: (jobDir: string) => ClusterManager, fixedScheduler: number | null, localMs: number | null): Promise<number> {
  const floor = await nodeStartFloor();
  const runs: Run[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await once(make);
    runs.push(r);
    log(`addprocs_${name} run ${i + 1}: ${round(r.total)} ms${r.scheduler !== null ? ` (scheduler ${round(r.scheduler)} ms)` : ''}`);
  }
  const total = median(runs.map((r) => r.total));
  const scheduler = fixedScheduler ?? (runs.every((r) => r.scheduler !== null) ? median(runs.map((r) => r.scheduler!)) : 0);
  const overhead = total - scheduler;
  emit({
    scenario: `addprocs_${name}${DIST ? '_dist' : ''}`,
    workers: 2,
    total_ms: round(total),
    scheduler_ms: round(scheduler),
    overhead_ms: round(overhead),
    ...(localMs !== null ? { local_ms: round(localMs) } : {}),
    runs_ms: runs.map((r) => round(r.total)),
    ...withFloor('overhead_ms', overhead, 'floor_ms', floor.parallel_ms, 'time', floor.is),
    floor_one_node_ms: floor.one_ms,
    goal: `overhead_ms <= ${GOAL_MS[name]} (addprocs of 2 until both answer, minus the scheduler's own submit-to-start)${DIST ? ', from the compiled package' : ''}`,
    ok: overhead <= GOAL_MS[name]!,
  });
  return total;
}

/** Median time of `ssh host true`: ssh's own share of a worker start. */
async function sshConnectMs(): Promise<number> {
  const ts: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    await runCommand(['ssh', '-F', join(SSHD_DIR, 'ssh_config'), 'colony-sshd', 'true']);
    ts.push(performance.now() - t);
  }
  return median(ts);
}

export async function run(emit: Emit): Promise<void> {
  const local = await scenario(emit, 'local', () => new LocalManager({ output: 'ignore' }), 0, null);

  const ssh = await sshdGate();
  if (ssh.up) {
    const port = Number((await readFile(join(SSHD_DIR, 'port'), 'utf8')).trim());
    const connect = await sshConnectMs();
    await scenario(emit, 'ssh', () => new SSHManager({ machines: [{ host: `127.0.0.1:${port}`, count: 2 }], sshflags: ['-F', join(SSHD_DIR, 'ssh_config')], output: 'ignore' }), connect, local);
  } else emit({ scenario: 'addprocs_ssh', skipped: ssh.reason, ok: true });

  const sge = await sgeGate();
  if (sge.up) await scenario(emit, 'sge', (jobDir) => new SGEManager({ jobDir, prologue: STAMP }), null, local);
  else emit({ scenario: `addprocs_sge${DIST ? '_dist' : ''}`, skipped: sge.reason, ok: true });

  const slurm = await slurmGate();
  if (slurm.up) await scenario(emit, 'slurm', (jobDir) => new SlurmManager({ jobDir, prologue: STAMP }), null, local);
  else emit({ scenario: `addprocs_slurm${DIST ? '_dist' : ''}`, skipped: slurm.reason, ok: true });
}


// Run directly (bench/managers_dist.ts): one JSON line per scenario on stdout.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  await run((line) => console.log(JSON.stringify(line)));
}
