/**
 * What-if replay of pool policies: pure, no clock, no I/O.
 *
 * From a recorded log (envelopes of one pool, its adapter and the maps) `recording()` extracts
 * - the demand: each pmap's items, when they became ready, and how long one item took a worker
 *   (the map's busy worker-time, from `pool.demand`, over its items). A map that started after
 *   another finished waits on it (the driver's script ran them one after the other), with the
 *   same pause; the others arrive when they did;
 * - the launch latencies, as empirical distributions: the scheduler's submit to start (from
 *   `pool.spawned` to the adapter's `adapter.started`) and the worker's start-up (from the job
 *   start to `pool.worker.joined`);
 * - the recorded figures (worker-seconds up, busy and idle, the wait of ready work, the time to
 *   drain, the jobs submitted, the peak of jobs queued, the pool's size over time).
 * `simulate()` reruns `decide()` under another policy in simulated time (discrete events: the
 * pool's ticks, arrivals, item ends, job starts and joins), sampling latencies with a seeded PRNG,
 * and gives the same figures. `verifyDecisions()` folds the pool's events through its machine and
 * checks that each recorded decision and spawn is what `decide()` gives over the recorded inputs.
 */
import type { Envelope } from './events.ts';
import { eventOf } from './events.ts';
import { foldStep, initialSnapshot } from './fold.ts';
import { poolDecision, poolMachine } from './pool.ts';
import type { PoolContext } from './pool.ts';
import { DRAIN_SETTLE_MS, decide } from './pool-policy.ts';
import type { PoolDecision, PoolInputs, PoolPolicy } from './pool-policy.ts';
import { prng } from './prng.ts';

/** One pmap of the recorded demand. */
export interface MapDemand {
  id: string;
  items: number;
  /** A worker's time per item, ms. */
  itemMs: number;
  /** Ready at this offset from the pool's start (when `after` is null). */
  readyAtMs: number;
  /** The index of the map it followed (started after that one finished), with the pause between. */
  after: number | null;
  gapMs: number;
}

/** What a run did: recorded, or simulated under a policy. Times in ms from the pool's start. */
export interface RunFigures {
  workerSeconds: { up: number; busy: number; idle: number };
  waitMs: { mean: number; p95: number };
  /** From the first ready item to the last item done. */
  drainMs: number;
  /** Workers asked of the scheduler (the sum of the spawns' counts), and the submits. */
  jobs: number;
  submits: number;
  /** Jobs submitted and not yet started, at most at once. */
  peakQueued: number;
  /** When the pool was back to `min` with nothing queued after the last item (or it closed). */
  endMs: number;
  /** Pool workers (joined, not retired) over time: [ms, workers] at each change. */
  size: [number, number][];
  /** The simulation reached its horizon before the work drained. */
  truncated?: boolean;
}

export interface Recording {
  pool: string;
  policy: PoolPolicy;
  startedAt: number;
  /** The pool's tick (its default for the policy: spawnIntervalMs / 2 between 20 and 200 ms). */
  tickMs: number;
  maps: MapDemand[];
  submitToStartMs: number[];
  startupMs: number[];
  recorded: RunFigures;
}

/** A recorded decision that replay does not reproduce. */
export interface DecisionMismatch {
  seq: number;
  type: string;
  at: number;
  recorded: string;
  replayed: string;
}

export const tickFor = (p: PoolPolicy) => Math.min(200, Math.max(20, p.spawnIntervalMs / 2));

const describe = (d: Pick<PoolDecision, 'action' | 'count' | 'pids' | 'reason'>) =>
  `${d.action}${d.count !== undefined ? ` ${d.count}` : ''}${d.pids ? ` [${d.pids.join(', ')}]` : ''}: ${d.reason}`;

const bySeq = (a: Envelope, b: Envelope) => a.seq - b.seq;
const byAt = (a: Envelope, b: Envelope) => a.at - b.at || a.seq - b.seq;

/** The ids of the pools in a log, in order of their start. */
export function poolsIn(envs: Envelope[]): string[] {
  return envs.filter((e) => e.kind === 'pool' && e.type === 'pool.started').sort(byAt).map((e) => e.id);
}

/**
 * Folds a pool's events through its machine and checks every `pool.decided` (the decision
 * `decide()` gives over the inputs folded so far) and every `pool.spawned` (a spawn of that count).
 */
export function verifyDecisions(poolEnvs: Envelope[]): { decisions: number; spawns: number; mismatch: DecisionMismatch | null } {
  let snap = initialSnapshot(poolMachine);
  let decisions = 0;
  let spawns = 0;
  for (const env of [...poolEnvs].sort(bySeq)) {
    const ctx = snap.context as PoolContext;
    const miss = (recorded: string, replayed: string) => ({ decisions, spawns, mismatch: { seq: env.seq, type: env.type, at: env.at, recorded, replayed } });
    if (env.type === 'pool.decided' && snap.value !== 'idle') {
      const rec = env.data as unknown as PoolDecision;
      const rep = poolDecision(ctx, env.at);
      if (describe(rec) !== describe(rep)) return miss(describe(rec), describe(rep));
      decisions++;
    }
    if (env.type === 'pool.spawned') {
      const count = (env.data as { count: number }).count;
      const rep = poolDecision(ctx, env.at);
      if (rep.action !== 'spawn' || rep.count !== count) return miss(`spawn ${count} (pool.spawned)`, describe(rep));
      spawns++;
    }
    const r = foldStep(poolMachine, snap, eventOf(env));
    if (!r.accepted) return miss(`'${env.type}' to '${env.to}'`, `refused in state '${r.from}'`);
    snap = r.snapshot;
  }
  return { decisions, spawns, mismatch: null };
}

// ------------------------------------------------------------------ extraction

interface Interval { from: number; to: number }

function maxOverlap(xs: Interval[]): number {
  const pts: [number, number][] = [];
  for (const x of xs) if (x.to > x.from) pts.push([x.from, 1], [x.to, -1]);
  pts.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let n = 0;
  let max = 0;
  for (const [, d] of pts) max = Math.max(max, (n += d));
  return max;
}

function stats(waits: number[]): { mean: number; p95: number } {
  if (!waits.length) return { mean: 0, p95: 0 };
  const s = [...waits].sort((a, b) => a - b);
  return { mean: s.reduce((a, b) => a + b, 0) / s.length, p95: s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)]! };
}

/** Extracts pool `poolId`'s demand, latencies and recorded figures from a log. */
export function recording(envs: Envelope[], poolId: string): Recording {
  const poolEnvs = envs.filter((e) => e.kind === 'pool' && e.id === poolId).sort(bySeq);
  const started = poolEnvs.find((e) => e.type === 'pool.started');
  if (!started) throw new Error(`no pool.started event for pool '${poolId}' in the log`);
  const sd = started.data as { policy: PoolPolicy; adapter: string | null };
  const t0 = started.at;
  const policy = sd.policy;
  const adapterEnvs = sd.adapter ? envs.filter((e) => e.kind === 'adapter' && e.id === sd.adapter).sort(bySeq) : [];
  const closed = poolEnvs.find((e) => e.type === 'pool.closed')?.at ?? null;
  const lastAt = Math.max(...poolEnvs.map((e) => e.at));

  // The maps that ran while the pool did.
  const mapEnvs = envs.filter((e) => e.kind === 'map' && e.at >= t0 && (closed === null || e.at <= closed)).sort(byAt);
  const mapIds = [...new Set(mapEnvs.filter((e) => e.type === 'map.started').map((e) => e.id))];
  const raw = mapIds.map((id) => {
    const own = envs.filter((e) => e.kind === 'map' && e.id === id).sort(bySeq);
    const s = own.find((e) => e.type === 'map.started')!;
    const end = own.find((e) => e.type === 'map.finished' || e.type === 'map.failed');
    return { id, items: (s.data as { items: number }).items, start: s.at, end: end?.at ?? lastAt, busy: 0 };
  }).filter((m) => m.items > 0).sort((a, b) => a.start - b.start);

  // Busy worker-time, from the demand's busy workers, shared between the maps that ran then.
  const demand = poolEnvs.filter((e) => e.type === 'pool.demand').sort(byAt);
  for (let i = 0; i < demand.length; i++) {
    const a = demand[i]!.at;
    const b = demand[i + 1]?.at ?? lastAt;
    const n = (demand[i]!.data as { busy: number[] }).busy.length;
    const active = raw.filter((m) => m.start <= a && a < m.end);
    for (const m of active) m.busy += (n * (b - a)) / active.length;
  }
  const maps: MapDemand[] = raw.map((m, k) => {
    let after: number | null = null;
    let latest = -Infinity;
    for (let j = 0; j < k; j++) if (raw[j]!.end <= m.start && raw[j]!.end > latest) { latest = raw[j]!.end; after = j; }
    const itemMs = m.busy > 0 ? m.busy / m.items : (m.end - m.start) / m.items;
    return { id: m.id, items: m.items, itemMs, readyAtMs: m.start - t0, after, gapMs: after === null ? 0 : m.start - latest };
  });

  // Latencies: pool launch i is adapter launch i (the pool is its manager's only user).
  const spawned = poolEnvs.filter((e) => e.type === 'pool.spawned');
  const requested = adapterEnvs.filter((e) => e.type === 'adapter.requested');
  const startsOf = new Map<string, number[]>();
  const unitIv: Interval[] = [];
  const reqAt = new Map<string, number>(requested.map((e) => [(e.data as { launch: string }).launch, e.at]));
  const unitFrom = new Map<string, number>();
  for (const e of adapterEnvs) {
    const d = e.data as { launch?: string; unit?: string; units?: string[] };
    if (e.type === 'adapter.queued') for (const u of d.units ?? []) unitFrom.set(u, reqAt.get(d.launch!) ?? e.at);
    if ((e.type === 'adapter.started' || e.type === 'adapter.exited' || e.type === 'adapter.failed') && d.unit && unitFrom.has(d.unit)) {
      unitIv.push({ from: unitFrom.get(d.unit)!, to: e.at });
      unitFrom.delete(d.unit);
    }
    if (e.type === 'adapter.started' && d.launch) startsOf.set(d.launch, [...(startsOf.get(d.launch) ?? []), e.at]);
  }
  for (const from of unitFrom.values()) unitIv.push({ from, to: closed ?? lastAt });
  const submitToStartMs: number[] = [];
  const startupMs: number[] = [];
  spawned.forEach((sp, i) => {
    const launch = (sp.data as { launch: string }).launch;
    const joins = poolEnvs.filter((e) => e.type === 'pool.worker.joined' && (e.data as { launch: string }).launch === launch).map((e) => e.at).sort((a, b) => a - b);
    const aLaunch = (requested[i]?.data as { launch?: string } | undefined)?.launch;
    const starts = (aLaunch ? startsOf.get(aLaunch) ?? [] : []).sort((a, b) => a - b);
    if (!starts.length) {
      // No adapter events (a manager without an adapter actor): all of it is start-up.
      for (const j of joins) startupMs.push(j - sp.at);
      return;
    }
    for (const s of starts) submitToStartMs.push(s - sp.at);
    joins.forEach((j, k) => startupMs.push(Math.max(0, j - (starts[k] ?? starts.at(-1)!))));
  });
  if (!submitToStartMs.length) submitToStartMs.push(0);

  // The recorded figures.
  const joinedAt = new Map<number, number>();
  const retiredAt = new Map<number, number>();
  const size: [number, number][] = [[0, 0]];
  let live = 0;
  let pending = 0;
  const lastDone = raw.length ? Math.max(...raw.map((m) => m.end)) : t0;
  let end: number | null = null;
  for (const e of [...poolEnvs].sort(byAt)) {
    const d = e.data as { pid?: number; count?: number };
    if (e.type === 'pool.spawned') pending += d.count!;
    if (e.type === 'pool.worker.joined') { joinedAt.set(d.pid!, e.at); live++; pending--; size.push([e.at - t0, live]); }
    if (e.type === 'pool.worker.retired' && joinedAt.has(d.pid!)) { retiredAt.set(d.pid!, e.at); live--; size.push([e.at - t0, live]); }
    if (e.type === 'pool.launch.failed' || e.type === 'pool.launch.cancelled') pending = 0;
    if (end === null && e.at >= lastDone && live <= policy.min && pending <= 0 && (e.type === 'pool.worker.retired' || e.type === 'pool.launch.cancelled')) end = e.at;
  }
  end ??= Math.max(lastDone, closed ?? lastAt);
  let up = 0;
  for (const [pid, j] of joinedAt) up += Math.min(end, retiredAt.get(pid) ?? end) - j;
  let busy = 0;
  for (let i = 0; i < demand.length; i++) {
    const a = demand[i]!.at;
    const b = Math.min(end, demand[i + 1]?.at ?? end);
    if (b > a) busy += (demand[i]!.data as { busy: number[] }).busy.filter((p) => joinedAt.has(p)).length * (b - a);
  }
  busy = Math.min(busy, up);
  // Waits: items leave the ready work in order; dispatched = arrived - ready, at each demand event.
  const arrivals: number[] = [];
  for (const m of raw) for (let k = 0; k < m.items; k++) arrivals.push(m.start);
  const waits: number[] = [];
  const marks = [
    ...demand.map((e) => ({ at: e.at, ready: (e.data as { ready: number }).ready as number | null })),
    ...raw.map((m) => ({ at: m.end, ready: null as number | null, through: m })),
  ].sort((a, b) => a.at - b.at);
  let next = 0;
  for (const mk of marks) {
    const arrived = raw.filter((m) => m.start <= mk.at).reduce((n, m) => n + m.items, 0);
    const doneThrough = raw.filter((m) => m.end <= mk.at).reduce((n, m) => n + m.items, 0);
    const dispatched = Math.max(mk.ready === null ? 0 : arrived - mk.ready, doneThrough);
    while (next < Math.min(dispatched, arrivals.length)) waits.push(Math.max(0, mk.at - arrivals[next++]!));
  }
  const recorded: RunFigures = {
    workerSeconds: { up: up / 1000, busy: busy / 1000, idle: (up - busy) / 1000 },
    waitMs: stats(waits),
    drainMs: raw.length ? lastDone - raw[0]!.start : 0,
    jobs: spawned.reduce((n, e) => n + (e.data as { count: number }).count, 0),
    submits: spawned.length,
    peakQueued: maxOverlap(unitIv),
    endMs: end - t0,
    size,
  };
  return { pool: poolId, policy, startedAt: t0, tickMs: tickFor(policy), maps, submitToStartMs, startupMs, recorded };
}

// ------------------------------------------------------------------ simulation


interface SimWorker { pid: number; joinAt: number; busyUntil: number | null; idleSince: number; drainAt: number | null; retiredAt: number | null; map: number }
interface SimUnit { startAt: number; joinAt: number; launch: number }

/** Reruns the recorded demand under `policy`; deterministic for a given seed. */
export function simulate(rec: Recording, policy: PoolPolicy, opts: { seed?: number; tickMs?: number; horizonMs?: number; latencies?: 'sampled' | 'recorded' } = {}): RunFigures {
  const rand = prng(opts.seed ?? 1);
  // 'recorded': the recorded latencies in their order (then again), to tell the model's error from the sampling's.
  const nth = new Map<number[], number>();
  const pick = opts.latencies === 'recorded'
    ? (xs: number[]) => { const i = nth.get(xs) ?? 0; nth.set(xs, i + 1); return xs[i % xs.length]!; }
    : (xs: number[]) => xs[Math.floor(rand() * xs.length)]!;
  const tick = opts.tickMs ?? tickFor(policy);
  const span = Math.max(rec.recorded.endMs, 1000);
  const horizon = opts.horizonMs ?? Math.max(20 * span, 3_600_000);
  const maps = rec.maps;
  const readyAt: (number | null)[] = maps.map((m) => (m.after === null ? m.readyAtMs : null));
  const left = maps.map((m) => m.items);
  const done = maps.map(() => 0);
  const finishedAt: (number | null)[] = maps.map(() => null);
  /** Live pool workers, and the pending units (submitted, not joined, not cancelled). */
  let workers: SimWorker[] = [];
  let units: SimUnit[] = [];
  const waits: number[] = [];
  const size: [number, number][] = [[0, 0]];
  let nextPid = 2;
  let launches = 0;
  let lastSpawnAt: number | null = null;
  let jobs = 0;
  let submits = 0;
  let peakQueued = 0;
  let busyMs = 0;
  let retiredUp = 0;
  /** Maps not yet ready, the arrived ones with items left (in order of arrival), the ready items. */
  let waiting = maps.map((_, k) => k);
  let queue: number[] = [];
  let ready = 0;
  let nextArrival = 0;
  const arrivals = () => {
    if (t < nextArrival) return;
    const now = waiting.filter((k) => readyAt[k] !== null && readyAt[k]! <= t).sort((a, b) => readyAt[a]! - readyAt[b]! || a - b);
    if (now.length) {
      waiting = waiting.filter((k) => !now.includes(k));
      for (const k of now) { queue.push(k); ready += left[k]!; }
    }
    nextArrival = Math.min(Infinity, ...waiting.map((k) => readyAt[k] ?? Infinity));
  };
  let t = 0;
  let nextTick = 0;
  let end: number | null = null;
  let unfinished = maps.length;
  const lastDone = () => Math.max(...finishedAt.map((f) => f ?? 0));
  const firstReady = () => Math.min(...maps.map((_, k) => readyAt[k] ?? Infinity));

  const dispatch = () => {
    for (const w of workers) {
      if (w.drainAt !== null || w.busyUntil !== null) continue;
      while (queue.length && left[queue[0]!] === 0) queue = queue.slice(1);
      if (!queue.length) return;
      const k = queue[0]!;
      left[k]!--;
      ready--;
      waits.push(t - readyAt[k]!);
      w.busyUntil = t + maps[k]!.itemMs;
      w.map = k;
      busyMs += maps[k]!.itemMs;
    }
  };

  while (t <= horizon) {
    // Items that end now.
    for (const w of workers) {
      if (w.busyUntil !== null && w.busyUntil <= t) {
        const k = w.map;
        w.busyUntil = null;
        // The pool sees it idle from its second tick after: the driver reports the change, the
        // pool records it at its next tick (what the recorded runs show, and their retire times).
        w.idleSince = Math.ceil(t / tick) * tick + tick;
        if (++done[k]! === maps[k]!.items) {
          finishedAt[k] = t;
          unfinished--;
          maps.forEach((m, j) => { if (m.after === k) readyAt[j] = t + m.gapMs; });
          nextArrival = t;
        }
      }
    }
    // Workers whose jobs started and who registered.
    if (units.some((u) => u.joinAt <= t)) {
      for (const u of units) {
        if (u.joinAt > t) continue;
        workers.push({ pid: nextPid++, joinAt: t, busyUntil: null, idleSince: t, drainAt: null, retiredAt: null, map: -1 });
        size.push([t, workers.length]);
      }
      units = units.filter((u) => u.joinAt > t);
    }
    arrivals();
    dispatch();
    if (t >= nextTick) {
      nextTick += tick;
      // Walltime: drain; drained and settled: retire.
      let retired = false;
      for (const w of workers) {
        if (policy.walltimeMs !== null && w.drainAt === null && t >= w.joinAt + policy.walltimeMs - policy.drainMarginMs) w.drainAt = t;
        if (w.drainAt !== null && w.busyUntil === null && t - w.drainAt >= DRAIN_SETTLE_MS) {
          w.retiredAt = t;
          retiredUp += t - w.joinAt;
          retired = true;
        }
      }
      if (retired) {
        workers = workers.filter((w) => w.retiredAt === null);
        size.push([t, workers.length]);
      }
      const idleW = workers.filter((w) => w.busyUntil === null && w.drainAt === null);
      const inputs: PoolInputs = {
        at: t, paused: null, ready,
        idle: idleW.length, queued: units.length, running: workers.length, draining: workers.filter((w) => w.drainAt !== null).length,
        lastSpawnAt, failures: 0,
        idlePool: idleW.map((w) => ({ pid: w.pid, idleMs: t - w.idleSince })),
      };
      const d = decide(inputs, policy);
      if (d.action === 'spawn') {
        const count = d.count ?? 1;
        launches++;
        for (let i = 0; i < count; i++) {
          const startAt = t + pick(rec.submitToStartMs);
          units.push({ startAt, joinAt: startAt + (rec.startupMs.length ? pick(rec.startupMs) : 0), launch: launches });
        }
        lastSpawnAt = t;
        jobs += count;
        submits++;
      } else if (d.action === 'retire' && d.pids) {
        for (const w of workers) if (d.pids.includes(w.pid)) w.drainAt = t;
      } else if (d.action === 'retire') {
        // Cancel the newest launches' waiting jobs, a launch at a time.
        let n = d.count ?? 0;
        const gone = new Set<number>();
        for (const l of [...new Set(units.map((u) => u.launch))].sort((a, b) => b - a)) {
          if (n <= 0) break;
          gone.add(l);
          n -= units.filter((u) => u.launch === l).length;
        }
        units = units.filter((u) => !gone.has(u.launch));
      }
      let q = 0;
      for (const u of units) if (u.startAt > t) q++;
      peakQueued = Math.max(peakQueued, q);
      if (unfinished === 0 && workers.length <= policy.min && units.length === 0) {
        end = t;
        break;
      }
    }
    // The next moment something happens.
    let nt = nextTick;
    for (const w of workers) if (w.busyUntil !== null && w.busyUntil < nt) nt = w.busyUntil;
    for (const u of units) if (u.joinAt < nt) nt = u.joinAt;
    if (nextArrival > t && nextArrival < nt) nt = nextArrival;
    t = Math.max(t, nt);
  }
  const truncated = end === null;
  const fin = end ?? t;
  let up = retiredUp;
  for (const w of workers) up += fin - w.joinAt;
  const busy = Math.min(busyMs, up);
  return {
    workerSeconds: { up: up / 1000, busy: busy / 1000, idle: (up - busy) / 1000 },
    waitMs: stats(waits),
    drainMs: unfinished === 0 && maps.length ? lastDone() - firstReady() : fin - (maps.length ? firstReady() : 0),
    jobs, submits, peakQueued, endMs: fin, size,
    ...(truncated ? { truncated } : {}),
  };
}

// ------------------------------------------------------------------ the chart

const BARS = ' ▁▂▃▄▅▆▇█';

/**
 * The pool's size over [0, untilMs] as one row of `width` bars (the most workers in each column);
 * blank from `endMs` on (the run was over).
 */
export function sparkline(size: [number, number][], untilMs: number, width: number, top: number, endMs = untilMs): string {
  let out = '';
  const step = untilMs / width;
  let i = 0;
  let cur = 0;
  for (let c = 0; c < width; c++) {
    const a = c * step;
    const b = a + step;
    if (a >= endMs) {
      out += ' ';
      continue;
    }
    let most = cur;
    while (i < size.length && size[i]![0] < b) {
      cur = size[i]![1];
      if (size[i]![0] >= a || cur > most) most = Math.max(most, cur);
      i++;
    }
    most = Math.max(most, cur);
    out += most <= 0 ? BARS[0] : BARS[Math.max(1, Math.min(8, Math.ceil((most / Math.max(1, top)) * 8)))];
  }
  return out;
}
