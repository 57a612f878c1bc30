/**
 * `npm run bench`: one JSON line per scenario on stdout, progress on stderr.
 *
 *   node --import tsx bench/run.ts [--only startup,roundtrip,...]
 *
 * Every line names its scenario, carries its numbers with their units in the field names
 * (`_ms`, `_us`, `_mb_per_s`, `_per_s`), the goal from the issue, and whether it was met (`ok`).
 * Each scenario runs on a cluster of its own, in a temporary state dir, and closes it.
 *
 * Beside its main figure a line carries the floor of the same work without Colony, measured in
 * the same run right before it (bench/floors.ts), as `floor_<unit>`, and `ratio` = figure / floor
 * (`ratio_is` says which way is better): the machine drifts too much for absolute figures alone.
 *
 * Scenario groups of other modules run after the core ones: each other `bench/<group>.ts` exports
 * `run(emit)` and emits its own lines (`--only events`, `--only pmap`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { existsSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Cluster } from 'colony';
import { refEvents } from '../actors/index.ts';
import { ActorHost } from '../runtime/log/actor-host.ts';
import { connectNats } from '../runtime/transport/connection.ts';
import { Journal } from '../runtime/log/journal.ts';
import { NatsServer } from '../runtime/transport/nats-server.ts';
import { encode } from '../runtime/transport/codec.ts';
import { jetstreamFloor, memcpyFloor, natsRequestFloor, nodeStartFloor, withFloor } from './floors.ts';
import { checksum, echo, iota, iotaSum } from './tasks.ts';

const TASKS = new URL('./tasks.ts', import.meta.url);

/** A scenario returns its measurements; `ok` says whether the goal was met. */
type Result = Record<string, unknown> & { goal: string; ok: boolean };
type Scenario = () => Promise<Result>;

// ---------------------------------------------------------------- helpers

function progress(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
/** Three significant digits, for ratios. */
const sig3 = (x: number) => Number(x.toPrecision(3));

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function median(xs: number[]): number {
  return percentile([...xs].sort((a, b) => a - b), 50);
}

/** Latency summary in microseconds. */
function latency(ms: number[]): { p50_us: number; p99_us: number; mean_us: number; max_us: number } {
  const s = [...ms].sort((a, b) => a - b);
  return {
    p50_us: round(percentile(s, 50) * 1000, 0),
    p99_us: round(percentile(s, 99) * 1000, 0),
    mean_us: round((s.reduce((a, b) => a + b, 0) / s.length) * 1000, 0),
    max_us: round(s.at(-1)! * 1000, 0),
  };
}

/** Cleanups of whatever is running, for Ctrl-C. */
const open = new Set<() => Promise<void>>();

async function tempDir(): Promise<{ dir: string; dispose: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'colony-bench-'));
  return { dir, dispose: () => rm(dir, { recursive: true, force: true }) };
}

/** Runs `fn` on a fresh 2-worker cluster with the bench tasks loaded, then closes it. */
async function withCluster<T>(fn: (cluster: Cluster) => Promise<T>): Promise<T> {
  const tmp = await tempDir();
  let cluster: Cluster | null = null;
  const cleanup = async () => {
    await cluster?.close();
    await tmp.dispose();
  };
  open.add(cleanup);
  try {
    cluster = await Cluster.start({ workers: 2, stateDir: tmp.dir, workerOutput: 'ignore' });
    await cluster.everywhere(TASKS);
    return await fn(cluster);
  } finally {
    open.delete(cleanup);
    await cleanup();
  }
}

// ---------------------------------------------------------------- scenarios

/** `Cluster.start({ workers: 2 })` until both workers answer a remotecallFetch; median of 3. */
async function startup(): Promise<Result> {
  const floor = await nodeStartFloor();
  const runs: { total: number; start: number; everywhere: number; firstCall: number }[] = [];
  for (let i = 0; i < 3; i++) {
    const tmp = await tempDir();
    let cluster: Cluster | null = null;
    const cleanup = async () => {
      await cluster?.close();
      await tmp.dispose();
    };
    open.add(cleanup);
    try {
      const t0 = performance.now();
      cluster = await Cluster.start({ workers: 2, stateDir: tmp.dir, workerOutput: 'ignore' });
      const t1 = performance.now();
      // A worker answers a task only once the task's module is loaded there.
      await cluster.everywhere(TASKS);
      const t2 = performance.now();
      const pids = cluster.workers();
      const answers = await Promise.all(pids.map((p) => cluster!.remotecallFetch(echo, p, p)));
      const t3 = performance.now();
      if (pids.length !== 2 || answers.join() !== pids.join()) throw new Error(`expected 2 workers to answer, got ${JSON.stringify({ pids, answers })}`);
      runs.push({ total: t3 - t0, start: t1 - t0, everywhere: t2 - t1, firstCall: t3 - t2 });
      progress(`startup run ${i + 1}: ${round(t3 - t0)} ms (start ${round(t1 - t0)}, everywhere ${round(t2 - t1)}, first calls ${round(t3 - t2)})`);
    } finally {
      open.delete(cleanup);
      await cleanup();
    }
  }
  const ms = round(median(runs.map((r) => r.total)));
  return {
    ms,
    runs_ms: runs.map((r) => round(r.total)),
    start_ms: round(median(runs.map((r) => r.start))),
    everywhere_ms: round(median(runs.map((r) => r.everywhere))),
    first_call_ms: round(median(runs.map((r) => r.firstCall))),
    ...withFloor('ms', ms, 'floor_ms', floor.parallel_ms, 'time', floor.is),
    floor_one_node_ms: floor.one_ms,
    goal: 'ms <= 1000 (median of 3: Cluster.start({ workers: 2 }) + everywhere + both workers answer)',
    ok: ms <= 1000,
  };
}

const CALLS = 2000;
const WARMUP = 500;

/** The bare nats.js request/reply of `roundtrip` and `remotecall_fetch`, with the sizes of an echo call. */
function callFloor() {
  const mid = CALLS >> 1;
  return natsRequestFloor({
    requestBytes: encode({ op: 'call', task: echo.key, args: [mid], from: 1 }).length,
    replyBytes: encode({ ok: mid }).length,
    calls: CALLS,
    warmup: WARMUP,
  });
}
const ROUNDTRIP_GOAL_RATIO = 1.15;

/** `remotecallFetch` of a trivial task: nothing is stored, one request/reply. */
async function roundtrip(): Promise<Result> {
  const floor = await callFloor();
  return withCluster(async (cluster) => {
    for (let i = 0; i < WARMUP; i++) await cluster.remotecallFetch(echo, 2, i);
    const ms: number[] = [];
    for (let i = 0; i < CALLS; i++) {
      const t0 = performance.now();
      const v = await cluster.remotecallFetch(echo, 2, i);
      ms.push(performance.now() - t0);
      if (v !== i) throw new Error(`echo(${i}) returned ${v}`);
    }
    const l = latency(ms);
    progress(`roundtrip: p50 ${l.p50_us} us, p99 ${l.p99_us} us`);
    const f = withFloor('p50_us', l.p50_us, 'floor_p50_us', floor.p50_us, 'time', floor.is);
    return {
      calls: CALLS,
      ...l,
      ...f,
      floor_p99_us: floor.p99_us,
      request_bytes: floor.request_bytes,
      reply_bytes: floor.reply_bytes,
      goal: `ratio <= ${ROUNDTRIP_GOAL_RATIO} (p50 at most ${ROUNDTRIP_GOAL_RATIO} x the bare nats.js floor; Dask measured here: 10.8 ms)`,
      ok: l.p50_us <= ROUNDTRIP_GOAL_RATIO * floor.p50_us,
    };
  });
}

/** `remotecall(...).fetch()`: the ref's created and ready events are stored before the value returns. */
async function remotecallFetch(): Promise<Result> {
  const floor = await callFloor();
  return withCluster(async (cluster) => {
    const refs = [];
    for (let i = 0; i < WARMUP; i++) {
      const r = cluster.remotecall(echo, 2, i);
      await r.fetch();
      refs.push(r);
    }
    const ms: number[] = [];
    for (let i = 0; i < CALLS; i++) {
      const t0 = performance.now();
      const r = cluster.remotecall(echo, 2, i);
      const v = await r.fetch();
      ms.push(performance.now() - t0);
      if (v !== i) throw new Error(`echo(${i}) returned ${v}`);
      refs.push(r);
    }
    const l = latency(ms);
    progress(`remotecall_fetch: p50 ${l.p50_us} us, p99 ${l.p99_us} us; freeing ${refs.length} refs`);
    for (let i = 0; i < refs.length; i += 200) await Promise.all(refs.slice(i, i + 200).map((r) => r.free()));
    await cluster.flush();
    const events = await cluster.events.history('ref.>');
    return {
      calls: CALLS,
      ...l,
      events_stored: events.length,
      ...withFloor('p50_us', l.p50_us, 'floor_p50_us', floor.p50_us, 'time', floor.is),
      floor_p99_us: floor.p99_us,
      goal: 'p50_us <= 500, with ref.created and ref.ready persisted before each fetch returns',
      ok: l.p50_us <= 500,
    };
  });
}

const TRANSFER_ELEMENTS = 8 * 1024 * 1024; // 64 MiB of Float64
const TRANSFER_REPS = 3;

/** A 64 MiB Float64Array driver -> worker (put into remoteRef(2)) and worker -> driver (fetch). */
async function transfer(): Promise<Result> {
  const floor = await memcpyFloor({ bytes: TRANSFER_ELEMENTS * 8 });
  return withCluster(async (cluster) => {
    const n = TRANSFER_ELEMENTS;
    const bytes = n * 8;
    const mbps = (ms: number) => bytes / 1e6 / (ms / 1000);
    const local = new Float64Array(n);
    for (let i = 0; i < n; i++) local[i] = i;

    const up: number[] = [];
    for (let rep = 0; rep <= TRANSFER_REPS; rep++) {
      const rr = cluster.remoteRef<Float64Array>(2);
      const t0 = performance.now();
      await rr.put(local);
      const ms = performance.now() - t0;
      const check = await cluster.remotecallFetch(checksum, 2, rr);
      if (check.type !== 'Float64Array' || check.length !== n || check.sum !== iotaSum(n)) throw new Error(`driver -> worker: arrived damaged: ${JSON.stringify(check)}`);
      await rr.free();
      if (rep > 0) up.push(ms); // rep 0 warms up
      progress(`transfer driver -> worker ${rep === 0 ? '(warmup) ' : ''}${round(ms)} ms, ${round(mbps(ms), 0)} MB/s`);
    }

    const down: number[] = [];
    for (let rep = 0; rep <= TRANSFER_REPS; rep++) {
      const r = cluster.remotecall(iota, 2, n);
      await r.wait();
      const t0 = performance.now();
      const v = await r.fetch();
      const ms = performance.now() - t0;
      if (!(v instanceof Float64Array) || v.length !== n || v[n - 1] !== n - 1 || v.reduce((a, b) => a + b, 0) !== iotaSum(n)) {
        throw new Error(`worker -> driver: arrived damaged (${v?.constructor?.name}, length ${(v as Float64Array)?.length})`);
      }
      await r.free();
      if (rep > 0) down.push(ms);
      progress(`transfer worker -> driver ${rep === 0 ? '(warmup) ' : ''}${round(ms)} ms, ${round(mbps(ms), 0)} MB/s`);
    }

    const upMs = median(up);
    const downMs = median(down);
    return {
      bytes,
      driver_to_worker_ms: round(upMs),
      driver_to_worker_mb_per_s: round(mbps(upMs), 0),
      worker_to_driver_ms: round(downMs),
      worker_to_driver_mb_per_s: round(mbps(downMs), 0),
      driver_to_worker_gb_per_s: round(mbps(upMs) / 1000, 2),
      worker_to_driver_gb_per_s: round(mbps(downMs) / 1000, 2),
      best_driver_to_worker_mb_per_s: round(mbps(Math.min(...up)), 0),
      best_worker_to_driver_mb_per_s: round(mbps(Math.min(...down)), 0),
      reps: TRANSFER_REPS,
      ...withFloor('the slower way\'s mb_per_s', Math.min(mbps(upMs), mbps(downMs)), 'floor_mb_per_s', floor.mb_per_s, 'rate', floor.is),
      driver_to_worker_ratio: sig3(mbps(upMs) / floor.mb_per_s),
      worker_to_driver_ratio: sig3(mbps(downMs) / floor.mb_per_s),
      floor_fresh_memory_mb_per_s: floor.fresh_memory_mb_per_s,
      fresh_memory_ratio: sig3(Math.min(mbps(upMs), mbps(downMs)) / floor.fresh_memory_mb_per_s),
      goal: 'gb_per_s >= 1 each way (median of 3; MB = 1e6 bytes; Dask: 1.5 GB/s)',
      ok: mbps(upMs) >= 1000 && mbps(downMs) >= 1000,
    };
  });
}

const JOURNAL_ACTORS = 20_000;

/**
 * Appends per second through the actor host: 20k ref actors each send created + ready (the
 * second append chains behind the first, actors pipeline), then one flush. Also raw
 * `Journal.append`, pipelined, for comparison.
 */
async function journal(): Promise<Result> {
  // The envelopes the actor host appends: their encoded sizes are the floor's payloads.
  const env = (seq: number, type: string, from: string | null, to: string, data: Record<string, unknown>) =>
    encode({ v: 1, kind: 'ref', id: `2-bench-${JOURNAL_ACTORS >> 1}`, seq, at: Date.now(), type, from, to, data }).length;
  const floor = await jetstreamFloor({
    payloadBytes: [env(1, 'ref.created', null, 'running', { owner: 2, creator: 1, task: 'bench#echo' }), env(2, 'ref.ready', 'running', 'ready', { bytes: 8 })],
    events: 2 * JOURNAL_ACTORS,
    serialEvents: 2000,
    warmup: 2 * 2000,
  });
  const tmp = await tempDir();
  let server: NatsServer | null = null;
  let nc: Awaited<ReturnType<typeof connectNats>> | null = null;
  const cleanup = async () => {
    await nc?.close().catch(() => undefined);
    await server?.stop();
    await tmp.dispose();
  };
  open.add(cleanup);
  try {
    server = await NatsServer.start({ storeDir: join(tmp.dir, 'nats') });
    nc = await connectNats({ url: server.url }, 'colony-bench-journal');
    const j = await Journal.open(nc, 'bench');
    const host = new ActorHost(j, 'bench');

    const runActors = async (prefix: string, count: number): Promise<number> => {
      const t0 = performance.now();
      for (let i = 0; i < count; i++) {
        const a = host.create('ref', `2-${prefix}-${i}`);
        a.send(refEvents.created(Date.now(), { owner: 2, creator: 1, task: 'bench#echo' }));
        a.send(refEvents.ready(Date.now(), 8));
      }
      await j.flush();
      return performance.now() - t0;
    };
    await runActors('warm', 2000);
    const ms = await runActors('bench', JOURNAL_ACTORS);
    const events = 2 * JOURNAL_ACTORS;
    const perS = events / (ms / 1000);
    progress(`journal (actor host): ${events} events in ${round(ms)} ms, ${round(perS, 0)} events/s`);

    // Raw appends: one event per subject, no chain, all in flight at once.
    const t0 = performance.now();
    for (let i = 0; i < events; i++) {
      const id = `2-raw-${i}`;
      void j.track(j.append({ v: 1, kind: 'ref', id, seq: 1, at: Date.now(), type: 'ref.created', from: null, to: 'running', data: { owner: 2, creator: 1, task: 'bench#echo' } }, 0, 'raw')).catch(() => undefined);
    }
    await j.flush();
    const rawMs = performance.now() - t0;
    const rawPerS = events / (rawMs / 1000);
    progress(`journal (raw append): ${events} events in ${round(rawMs)} ms, ${round(rawPerS, 0)} events/s`);

    const stored = (await j.jsm.streams.info(j.subjects.eventsStream)).state.messages;
    const expected = 2 * 2000 + 2 * events;
    if (stored !== expected) throw new Error(`the stream holds ${stored} events, expected ${expected}`);
    return {
      actors: JOURNAL_ACTORS,
      events,
      ms: round(ms),
      events_per_s: round(perS, 0),
      raw_append_ms: round(rawMs),
      raw_appends_per_s: round(rawPerS, 0),
      ...withFloor('events_per_s', perS, 'floor_events_per_s', floor.pipelined_per_s, 'rate', floor.is),
      floor_unchained_no_headers_per_s: floor.unchained_no_headers_per_s,
      floor_serial_per_s: floor.serial_per_s,
      floor_serial_p50_us: floor.serial_p50_us,
      goal: 'events_per_s >= 30000 (actor host: created + ready per ref actor, pipelined across actors, then flush)',
      ok: perS >= 30_000,
    };
  } finally {
    open.delete(cleanup);
    await cleanup();
  }
}

/**
 * Start-up of the compiled package, as a user who installed it gets it: `startup` and
 * `addprocs_local` from dist/ (built first when missing), each with its bare-node floor, by
 * scripts/measure-startup.mjs in a process of its own (no TypeScript loader, no source condition).
 */
async function startupDist(): Promise<Result> {
  const root = fileURLToPath(new URL('..', import.meta.url));
  if (!existsSync(join(root, 'dist/runtime/index.js'))) {
    progress('startup_dist: building dist/ (npm run build)');
    execFileSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const out = execFileSync(process.execPath, [join(root, 'scripts/measure-startup.mjs'), '--runs', '3'], { cwd: root, encoding: 'utf8' });
  const lines = Object.fromEntries(out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).map((l) => [l.scenario as string, l]));
  const st = lines.startup as { ms: number; runs_ms: number[]; floor_ms: number; ratio: number } | undefined;
  const ap = lines.addprocs_local as { ms: number; runs_ms: number[]; ratio: number } | undefined;
  if (!st || !ap || lines.startup?.mode !== 'dist') throw new Error(`scripts/measure-startup.mjs did not measure dist/: ${out}`);
  return {
    ms: st.ms,
    runs_ms: st.runs_ms,
    addprocs_local_ms: ap.ms,
    addprocs_local_runs_ms: ap.runs_ms,
    floor_ms: st.floor_ms,
    ratio: st.ratio,
    addprocs_local_ratio: ap.ratio,
    ratio_is: 'figure / a bare `node -e 0` start measured in the same run; lower is better',
    goal: 'ms <= 500 (startup, below Dask LocalCluster(2) at 840 ms) and addprocs_local_ms <= 500, from the compiled package',
    ok: st.ms <= 500 && ap.ms <= 500,
  };
}

const SCENARIOS: Record<string, Scenario> = {
  startup,
  startup_dist: startupDist,
  roundtrip,
  remotecall_fetch: remotecallFetch,
  transfer,
  journal,
};

/**
 * Scenario groups: every other `bench/<group>.ts` (task modules `*tasks.ts` and floors.ts aside) exports
 * `run(emit)` and emits one line per scenario of its own. They run after the core scenarios.
 */
const GROUPS = readdirSync(fileURLToPath(new URL('.', import.meta.url)))
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && f !== 'floors.ts' && !f.endsWith('tasks.ts'))
  .map((f) => f.slice(0, -3))
  .sort();
type Emit = (line: Record<string, unknown>) => void;

async function runGroup(group: string, emit: Emit): Promise<void> {
  const mod = (await import(new URL(`./${group}.ts`, import.meta.url).href)) as { run?: (emit: Emit) => Promise<void> };
  if (typeof mod.run !== 'function') throw new Error(`bench/${group}.ts does not export run(emit)`);
  await mod.run(emit);
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { only: { type: 'string', multiple: true } } });
  const all = [...Object.keys(SCENARIOS), ...GROUPS];
  const names = values.only ? values.only.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean) : all;
  for (const n of names) {
    if (!all.includes(n)) {
      process.stderr.write(`bench: unknown scenario '${n}'; choose from ${all.join(', ')}\n`);
      return 2;
    }
  }
  progress(`node ${process.version}, ${availableParallelism()} cpus (${cpus()[0]?.model ?? '?'}); scenarios: ${names.join(', ')}`);
  let failed = 0;
  for (const name of names) {
    progress(`${name}...`);
    const t0 = performance.now();
    try {
      if (SCENARIOS[name]) {
        const { goal, ok, ...numbers } = await SCENARIOS[name]();
        console.log(JSON.stringify({ scenario: name, ...numbers, goal, ok }));
      } else {
        await runGroup(name, (line) => {
          if (line.error) failed++;
          console.log(JSON.stringify(line));
        });
      }
    } catch (e) {
      failed++;
      console.log(JSON.stringify({ scenario: name, ok: false, error: `${(e as Error).name}: ${(e as Error).message}` }));
      progress(`${name} failed: ${(e as Error).stack ?? e}`);
    }
    progress(`${name} took ${round((performance.now() - t0) / 1000)} s`);
  }
  return failed ? 1 : 0;
}

const onSignal = (sig: NodeJS.Signals) => {
  progress(`${sig}: cleaning up`);
  void Promise.allSettled([...open].map((f) => f())).finally(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

process.exitCode = await main();
process.off('SIGINT', onSignal);
process.off('SIGTERM', onSignal);
