/**
 * What-if replay of pool policies over a recorded log: `whatif(log, policies, { seed })`.
 *
 * The pure part (extraction, simulation, the decision check) is in actors/pool-whatif.ts; this
 * module picks the pool, reads policy files, verifies, and renders the report as text.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { poolsIn, recording, simulate, sparkline, verifyDecisions } from '../../actors/pool-whatif.ts';
import type { DecisionMismatch, Recording, RunFigures } from '../../actors/pool-whatif.ts';
import type { Envelope, PoolPolicy } from '../../actors/index.ts';
import { DeterminismViolationError, InvalidArgumentError } from '../transport/errors.ts';
import { parsePolicy } from './pool.ts';

export type { RunFigures } from '../../actors/pool-whatif.ts';

/** A policy to try: a name (its file) and the fields it sets over the recorded policy. */
export interface WhatifPolicy {
  name: string;
  policy: PoolPolicy;
}

export interface WhatifOptions {
  /** The pool to replay; default: the only pool in the log. */
  pool?: string;
  /** The PRNG seed of the latency samples. @default 1 */
  seed?: number;
  /** Check first that the recorded policy reproduces the recorded decisions. */
  verify?: boolean;
  /**
   * `sampled` (default): each launch's latencies drawn from the recorded ones with the seeded PRNG;
   * `recorded`: the recorded latencies in their order, then again (the model's own error, without the sampling's).
   */
  latencies?: 'sampled' | 'recorded';
}

export interface WhatifReport {
  pool: string;
  seed: number;
  latencies: 'sampled' | 'recorded';
  /** Recorded time, ms, and the time the simulations took, ms. */
  recordedMs: number;
  simulatedInMs: number;
  policy: PoolPolicy;
  demand: Recording['maps'];
  /** The recorded launch latencies the simulation draws from, ms. */
  recordedLatencies: { submitToStartMs: number[]; startupMs: number[] };
  verified: { decisions: number; spawns: number } | null;
  recorded: RunFigures;
  /** The recorded policy simulated (how close the model comes to the recording). */
  baseline: RunFigures;
  policies: (WhatifPolicy & { simulated: RunFigures })[];
}

/** A recorded decision of a pool that its recorded policy does not reproduce. */
export class PoolDecisionMismatchError extends DeterminismViolationError {
  readonly recordedDecision: string;
  readonly replayedDecision: string;
  constructor(pool: string, m: DecisionMismatch) {
    super({ kind: 'pool', id: pool, seq: m.seq, type: m.type, recorded: m.recorded, replayed: m.replayed, accepted: true });
    this.message = `pool/${pool} event #${m.seq} '${m.type}' at ${new Date(m.at).toISOString()}: recorded decision '${m.recorded}' but decide() gives '${m.replayed}'`;
    this.name = 'PoolDecisionMismatchError';
    this.recordedDecision = m.recorded;
    this.replayedDecision = m.replayed;
  }
}

function pickPool(log: Envelope[], pool?: string): string {
  const ids = poolsIn(log);
  if (pool !== undefined) {
    if (!ids.includes(pool)) throw new InvalidArgumentError('pool', `no pool '${pool}' in the log${ids.length ? `; pools: ${ids.join(', ')}` : ''}`);
    return pool;
  }
  if (!ids.length) throw new InvalidArgumentError('pool', 'the log has no pool (no pool.started event)');
  if (ids.length > 1) throw new InvalidArgumentError('pool', `the log has ${ids.length} pools (${ids.join(', ')}): name one`);
  return ids[0]!;
}

/** Checks the recorded decisions of a pool; throws PoolDecisionMismatchError at the first that differs. */
export function verifyPool(log: Envelope[], pool?: string): { pool: string; decisions: number; spawns: number } {
  const id = pickPool(log, pool);
  const r = verifyDecisions(log.filter((e) => e.kind === 'pool' && e.id === id));
  if (r.mismatch) throw new PoolDecisionMismatchError(id, r.mismatch);
  return { pool: id, decisions: r.decisions, spawns: r.spawns };
}

/**
 * Reruns a pool's recorded demand and latencies under each policy (plain fields over the recorded
 * policy, or `{ name, policy }`), and reports the recorded figures next to the simulated ones.
 */
export function whatif(log: Envelope[], policies: (WhatifPolicy | Record<string, unknown>)[], opts: WhatifOptions = {}): WhatifReport {
  const id = pickPool(log, opts.pool);
  const verified = opts.verify ? verifyPool(log, id) : null;
  const rec = recording(log, id);
  const seed = opts.seed ?? 1;
  if (!Number.isInteger(seed)) throw new InvalidArgumentError('seed', `must be a whole number, got ${seed}`);
  const latencies = opts.latencies ?? 'sampled';
  if (latencies !== 'sampled' && latencies !== 'recorded') throw new InvalidArgumentError('latencies', `must be 'sampled' or 'recorded', got '${String(latencies)}'`);
  const list: WhatifPolicy[] = policies.map((p, i) => (
    typeof p.name === 'string' && typeof p.policy === 'object' && p.policy !== null
      ? { name: p.name, policy: parsePolicy(p.policy, undefined, rec.policy) }
      : { name: `policy ${i + 1}`, policy: parsePolicy(p, undefined, rec.policy) }));
  const t0 = performance.now();
  const baseline = simulate(rec, rec.policy, { seed, latencies });
  const sims = list.map((p) => ({ ...p, simulated: simulate(rec, p.policy, { seed, latencies }) }));
  return {
    pool: id, seed, latencies, recordedMs: rec.recorded.endMs, simulatedInMs: performance.now() - t0,
    policy: rec.policy, demand: rec.maps, recordedLatencies: { submitToStartMs: rec.submitToStartMs, startupMs: rec.startupMs },
    verified: verified && { decisions: verified.decisions, spawns: verified.spawns },
    recorded: rec.recorded, baseline, policies: sims,
  };
}

/** Reads a policy file (YAML or JSON); a bad field is named with the file. */
export async function readPolicyFile(file: string, base: Partial<PoolPolicy> = {}): Promise<WhatifPolicy> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new InvalidArgumentError('--policy', `cannot read ${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new InvalidArgumentError('--policy', `${file}: not YAML or JSON: ${(e as Error).message}`);
  }
  return { name: file, policy: parsePolicy(raw, () => ` in ${file}`, base) };
}

const s1 = (x: number) => x.toFixed(1);
const ms = (x: number) => `${(x / 1000).toFixed(2)} s`;

/** Only the fields a policy changes from the recorded one. */
function changes(p: PoolPolicy, base: PoolPolicy): string {
  const d = (Object.keys(p) as (keyof PoolPolicy)[]).filter((k) => p[k] !== base[k]).map((k) => `${k} ${p[k]}`);
  return d.length ? d.join(', ') : 'as recorded';
}

/** The report as text: a table, recorded next to simulated, and the pool's size over time. */
export function formatWhatif(r: WhatifReport, width = 60): string {
  const cols: { name: string; f: RunFigures; note: string }[] = [
    { name: 'recorded', f: r.recorded, note: '' },
    { name: 'simulated', f: r.baseline, note: 'the recorded policy' },
    ...r.policies.map((p) => ({ name: p.name, f: p.simulated, note: changes(p.policy, r.policy) })),
  ];
  const rows: [string, (f: RunFigures) => string][] = [
    ['worker-s up', (f) => s1(f.workerSeconds.up)],
    ['worker-s busy', (f) => s1(f.workerSeconds.busy)],
    ['worker-s idle', (f) => s1(f.workerSeconds.idle)],
    ['wait mean', (f) => ms(f.waitMs.mean)],
    ['wait p95', (f) => ms(f.waitMs.p95)],
    ['time to drain', (f) => ms(f.drainMs)],
    ['jobs submitted', (f) => String(f.jobs)],
    ['submits', (f) => String(f.submits)],
    ['peak queued', (f) => String(f.peakQueued)],
    ['back to min at', (f) => `${ms(f.endMs)}${f.truncated ? ' (horizon)' : ''}`],
  ];
  const p = r.policy;
  const lines = [
    `pool ${r.pool}: ${ms(r.recordedMs)} recorded, ${r.demand.length} map${r.demand.length === 1 ? '' : 's'} (${r.demand.map((m) => `${m.items} x ${Math.round(m.itemMs)} ms`).join(', ')}), ${r.latencies === 'sampled' ? `seed ${r.seed}` : 'recorded latencies'}, simulated in ${r.simulatedInMs.toFixed(1)} ms`,
    `  recorded policy: min ${p.min}, max ${p.max}, spawnIntervalMs ${p.spawnIntervalMs}, spawnCount ${p.spawnCount}, maxQueued ${p.maxQueued}, idleMs ${p.idleMs}, walltimeMs ${p.walltimeMs ?? '-'}`,
    `  latencies ${r.latencies === 'sampled' ? 'sampled' : 'replayed in order'}: submit to start ${r.recordedLatencies.submitToStartMs.map((x) => Math.round(x)).join(', ')} ms; start-up ${r.recordedLatencies.startupMs.map((x) => Math.round(x)).join(', ')} ms`,
  ];
  if (r.verified) lines.push(`  verify: ${r.verified.decisions} decisions and ${r.verified.spawns} spawns reproduced by decide()`);
  for (const [i, c] of cols.entries()) if (i >= 2) lines.push(`  [${i - 1}] ${c.name}: ${c.note}`);
  const heads = cols.map((c, i) => (i >= 2 ? `[${i - 1}]` : c.name));
  const wFirst = 16;
  const w = Math.max(11, ...heads.map((h) => h.length + 1));
  lines.push('', `${''.padEnd(wFirst)}${heads.map((h) => h.padStart(w)).join('')}`);
  for (const [label, f] of rows) lines.push(`${label.padEnd(wFirst)}${cols.map((c) => f(c.f).padStart(w)).join('')}`);
  const until = Math.max(...cols.map((c) => c.f.endMs), 1);
  const top = Math.max(1, ...cols.flatMap((c) => c.f.size.map((s) => s[1])));
  lines.push('', `pool size (workers, 0..${top}) over ${ms(until)}:`);
  for (const [i, c] of cols.entries()) lines.push(`${heads[i]!.padEnd(wFirst)}|${sparkline(c.f.size, until, width, top, c.f.endMs)}|`);
  return lines.join('\n');
}
