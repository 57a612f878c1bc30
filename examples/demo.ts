/**
 * `npm start`: the first examples of the Julia manual's chapter on parallel computing, run on an
 * embedded NATS server with two local worker processes (`julia -p 2`). Each step prints the
 * TypeScript you would write, with the Julia it stands for on the right.
 *
 * At the end it removes the workers, prints one line per actor of the persisted event log, and
 * closes the cluster, leaving no process behind. Run it with `npm start`, or
 * `node --conditions=colony-source --import tsx examples/demo.ts`.
 */
import { Cluster, task } from 'colony';
import type { Envelope, RemoteRef } from 'colony';
import { addOne, countHeads, getindex, randMatrix, whoami } from './tasks.ts';
import type { Matrix } from './tasks.ts';

/**
 * Coin flips per worker for count_heads. The manual flips 1e8 per worker; half that keeps the
 * demo at about 1.5 s on a 2-core machine.
 */
const FLIPS = 5e7;

/**
 * The manual's `rand2`: defined in this script only, so the driver knows it and the workers do
 * not (this module is never loaded with `everywhere`).
 */
const rand2 = task(import.meta.url, function rand2(rows: number, cols: number): Matrix {
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = 2 * Math.random();
  return { rows, cols, data };
});

// ---------------------------------------------------------------- printing

const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

/** Prints a prompt line: the TypeScript, then the Julia it mirrors. */
function prompt(ts: string, julia?: string): void {
  const line = `${bold('colony>')} ${ts}`;
  const pad = Math.max(1, 66 - ts.length);
  console.log(julia ? `${line}${' '.repeat(pad)}${dim(`# julia> ${julia}`)}` : line);
}

function section(title: string): void {
  console.log(`\n${dim(`--- ${title} ${'-'.repeat(Math.max(0, 74 - title.length))}`)}`);
}

/** Six significant digits, as Julia's REPL shows array elements. */
function num(x: number): string {
  return String(Number(x.toPrecision(6)));
}

/** A matrix the way Julia prints one: a header, then aligned rows. Data is row-major. */
function showMatrix(m: Matrix): string {
  const cells = Array.from({ length: m.rows }, (_, i) => Array.from({ length: m.cols }, (_, j) => num(m.data[i * m.cols + j]!)));
  const widths = Array.from({ length: m.cols }, (_, j) => Math.max(...cells.map((row) => row[j]!.length)));
  const rows = cells.map((row) => ' ' + row.map((c, j) => c.padEnd(widths[j]!)).join('  ').trimEnd());
  return [`${m.rows}x${m.cols} ${m.data.constructor.name} (row-major):`, ...rows].join('\n');
}

function showRef(ref: RemoteRef): string {
  return `${String(ref)}${dim(`   # owned by worker ${ref.where}`)}`;
}

/** `worker/2   registered -> ready -> stopping -> exited`, one line per actor, in first-event order. */
function summarize(events: Envelope[]): string[] {
  const actors = new Map<string, { states: string[]; note: string }>();
  for (const e of events) {
    const key = `${e.kind}/${e.id}`;
    let a = actors.get(key);
    if (!a) actors.set(key, (a = { states: [], note: '' }));
    a.states.push(e.to);
    if (e.type === 'ref.created') {
      const task = (e.data as { task?: string | null }).task;
      a.note = task ? `${task.slice(task.lastIndexOf('#') + 1)}()` : 'remoteRef + put';
    }
    if (e.type === 'worker.registered') a.note = `pid ${(e.data as { pid: number }).pid}, os pid ${(e.data as { ospid: number }).ospid}`;
  }
  const width = Math.max(...[...actors.keys()].map((k) => k.length));
  const chains = [...actors.values()].map((a) => a.states.join(' -> '));
  const chainWidth = Math.max(...chains.map((c) => c.length));
  return [...actors.entries()].map(([key, a], i) => `  ${key.padEnd(width)}  ${chains[i]!.padEnd(chainWidth)}  ${dim(a.note)}`);
}

// ---------------------------------------------------------------- the demo

async function demo(cluster: Cluster, startMs: number): Promise<void> {
  console.log(`Started an embedded NATS at ${cluster.url} and workers ${JSON.stringify(cluster.workers())} in ${Math.round(startMs)} ms.`);

  prompt(`await cluster.everywhere(new URL('./tasks.ts', import.meta.url))`, '@everywhere include("tasks.jl")');

  section('Remote calls and remote references');
  await cluster.everywhere(new URL('./tasks.ts', import.meta.url));
  prompt('r = cluster.remotecall(randMatrix, 2, 2, 2)', 'r = remotecall(2, rand, 2, 2)');
  const r = cluster.remotecall(randMatrix, 2, 2, 2);
  console.log(showRef(r));
  prompt('await r.fetch()', 'fetch(r)');
  console.log(showMatrix(await r.fetch()));

  prompt('s = cluster.spawnat(2, addOne, r)', 's = @spawnat 2 1 .+ fetch(r)');
  const s = cluster.spawnat(2, addOne, r);
  console.log(showRef(s));
  prompt('await s.fetch()', 'fetch(s)');
  console.log(showMatrix(await s.fetch()));

  prompt('await cluster.remotecallFetch(getindex, 2, r, 0, 0)', 'remotecall_fetch(2, getindex, r, 1, 1)');
  console.log(await cluster.remotecallFetch(getindex, 2, r, 0, 0), dim('  # 0-based: r[0, 0]'));

  section('@spawn picks the process');
  prompt('r2 = cluster.spawn(randMatrix, 2, 2)', 'r = @spawn rand(2,2)');
  const r2 = cluster.spawn(randMatrix, 2, 2);
  console.log(showRef(r2));
  prompt('s2 = cluster.spawn(addOne, r2)', 's = @spawn 1 .+ fetch(r)');
  const s2 = cluster.spawn(addOne, r2);
  console.log(`${showRef(s2)}${s2.where === r2.where ? dim(' too: where r2 lives, so its fetch is a no-op') : ''}`);
  prompt('await s2.fetch()', 'fetch(s)');
  console.log(showMatrix(await s2.fetch()));

  section('Code availability');
  prompt('rand2(2, 2)', 'rand2(2,2)   # defined in this script only');
  console.log(showMatrix(rand2(2, 2)));
  prompt('await cluster.remotecallFetch(rand2, 2, 2, 2)', '@spawn rand2(2,2)');
  try {
    await cluster.remotecallFetch(rand2, 2, 2, 2);
    console.log('(unexpected: worker 2 knew rand2)');
  } catch (e) {
    // Errors cross the wire as data: check `name`, not instanceof.
    const err = e as Error & { pid?: number };
    if (err.name !== 'TaskNotFoundError') throw e;
    console.log(`exception on ${err.pid}: ${err.name}: ${err.message}`);
  }
  prompt('await cluster.remotecallFetch(whoami, 2)', 'remotecall_fetch(2, ()->myid())');
  console.log(await cluster.remotecallFetch(whoami, 2));
  prompt('rr = cluster.remoteRef(3); await rr.put({ a: 7 })', 'rr = RemoteRef(3); put!(rr, MyType(7))');
  const rr = cluster.remoteRef<{ a: number }>(3);
  await rr.put({ a: 7 });
  console.log(showRef(rr));
  prompt('await rr.fetch()', 'fetch(rr)');
  console.log(await rr.fetch());

  section('count_heads on two workers');
  const flips = FLIPS.toExponential().replace('e+', 'e');
  prompt(`a = cluster.spawn(countHeads, ${flips})`, `a = @spawn count_heads(${flips})`);
  const t0 = performance.now();
  const a = cluster.spawn(countHeads, FLIPS);
  prompt(`b = cluster.spawn(countHeads, ${flips})`, `b = @spawn count_heads(${flips})`);
  const b = cluster.spawn(countHeads, FLIPS);
  console.log(dim(`# a runs on worker ${a.where}, b on worker ${b.where}`));
  prompt('(await a.fetch()) + (await b.fetch())', 'fetch(a)+fetch(b)');
  const heads = (await a.fetch()) + (await b.fetch());
  const secs = (performance.now() - t0) / 1000;
  console.log(heads);
  console.log(dim(`# ${heads} heads in ${2 * FLIPS} flips: p = ${(heads / (2 * FLIPS)).toFixed(6)}, in ${secs.toFixed(2)} s`));

  section('The log: every transition of every actor, from JetStream');
  prompt('await r.free(); await s.free()', 'finalize(r); finalize(s)');
  await r.free();
  await s.free();
  prompt('await cluster.rmprocs(cluster.workers())', 'rmprocs(workers())');
  await cluster.rmprocs(cluster.workers());
  console.log(JSON.stringify(cluster.workers()), dim('  # only the driver is left'));
  await cluster.flush();
  prompt(`await cluster.events.history('>')`);
  const events = await cluster.events.history('>');
  console.log(dim(`# ${events.length} events in stream COLONY_${cluster.name}_EVENTS, one line per actor:`));
  for (const line of summarize(events)) console.log(line);
}

async function main(): Promise<number> {
  console.log(dim('$ npm start        # Cluster.start({ workers: 2 }) is `julia -p 2`'));
  const t0 = performance.now();
  const cluster = await Cluster.start({ workers: 2 });
  let code = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    console.error(`\n${sig}: closing the cluster`);
    void cluster.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await demo(cluster, performance.now() - t0);
  } catch (e) {
    code = 1;
    console.error(`\nerror: ${(e as Error)?.stack ?? e}`);
  } finally {
    prompt('await cluster.close()');
    await cluster.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return code;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    // Cluster.start failed (nats-server missing, no free port...): nothing is left running.
    console.error(`error: ${(e as Error)?.message ?? e}`);
    process.exitCode = 1;
  },
);
