/**
 * `colony pool`: look at and steer the cluster's elastic pools.
 *
 *   colony pool status [ID] [--watch]   every pool (or one, with its last decisions), from the log
 *   colony pool pause ID [--reason R]   stop submitting (asks the process that runs the pool)
 *   colony pool resume ID               submit again
 *   colony pool whatif [ID] --policy FILE [--policy FILE2 ...] [--file LOG.jsonl] [--json] [--verify] [--seed N] [--latencies sampled|recorded]
 *                                       rerun the recorded demand under other policies, offline
 */
import { parseArgs } from 'node:util';
import type { Envelope, PoolContext, PoolPolicy } from '../../actors/index.ts';
import { poolsIn } from '../../actors/pool-whatif.ts';
import { readJsonl } from '../log/replay.ts';
import { formatWhatif, readPolicyFile, whatif } from '../pool/whatif.ts';
import { decode, encode } from '../transport/codec.ts';
import { ColonyError, InvalidArgumentError } from '../transport/errors.ts';
import { TARGET_OPTIONS, openTarget } from './cli-target.ts';
import type { Target, TargetArgs } from './cli-target.ts';

export const POOL_USAGE = `usage: colony pool status [ID] [--watch] [--interval MS]
       colony pool pause ID [--reason TEXT]
       colony pool resume ID
       colony pool whatif [ID] --policy FILE [--policy FILE2 ...] [--file LOG.jsonl] [--json] [--verify] [--seed N] [--latencies sampled|recorded]
         (the live log, or an exported one with --file; policy files are YAML or JSON fields over the recorded policy)
  (target: --nats URL --name C [--creds FILE] [--state-dir DIR], as the other observer commands)
`;

const out = (s: string) => process.stdout.write(`${s}\n`);

interface PoolRow {
  id: string;
  state: string;
  c: PoolContext;
}

async function pools(t: Target, only?: string): Promise<PoolRow[]> {
  const rows: PoolRow[] = [];
  for (const k of await t.journal.stateKeys(only ? `pool.${only}` : 'pool.*')) {
    const id = k.slice('pool.'.length);
    const snap = await t.journal.snapshot('pool', id);
    if (!snap) continue;
    rows.push({ id, state: typeof snap.value === 'string' ? snap.value : JSON.stringify(snap.value), c: snap.context as PoolContext });
  }
  return rows.sort((a, b) => (a.c.startedAt ?? 0) - (b.c.startedAt ?? 0));
}

/** One line per pool: what `colony status` shows too. */
export function poolLine(id: string, state: string, c: PoolContext): string {
  const workers = Object.values(c.workers);
  const queued = Object.values(c.pending).reduce((n, l) => n + l.count, 0);
  const draining = workers.filter((w) => w.draining).length;
  const why = c.paused?.reason ?? c.lastDecision?.reason ?? '';
  return `pool ${id} (${c.manager}) ${state}: ${workers.length} workers${draining ? ` (${draining} draining)` : ''}, ${queued} queued, `
    + `${c.demand.ready} ready, failures ${c.failures}; ${c.lastDecision ? `last ${c.lastDecision.action}` : 'no decision yet'}${why ? `: ${why}` : ''}`;
}

async function render(t: Target, id?: string): Promise<string> {
  const rows = await pools(t, id);
  if (id && !rows.length) throw new ColonyError(`no pool '${id}' in cluster '${t.name}'`);
  if (!rows.length) return `cluster ${t.name}: no pools`;
  const lines = rows.map((r) => poolLine(r.id, r.state, r.c));
  if (id) {
    const { c } = rows[0]!;
    const p = c.policy;
    lines.push(`  policy: min ${p.min}, max ${p.max}, spawnIntervalMs ${p.spawnIntervalMs}, spawnCount ${p.spawnCount}, maxQueued ${p.maxQueued}, idleMs ${p.idleMs}, `
      + `walltimeMs ${p.walltimeMs ?? '-'}, drainMarginMs ${p.drainMarginMs}, pauseAfterFailures ${p.pauseAfterFailures}`);
    lines.push(`  workers: ${Object.values(c.workers).map((w) => `${w.pid}${w.draining ? ` (draining: ${w.draining.reason})` : ''}`).join(', ') || 'none'}`);
    lines.push(`  spawned ${c.spawned}, joined ${c.joined}, retired ${c.retired}${c.adapter ? `; adapter actor adapter.${c.adapter}` : ''}`);
    if (c.lastError) lines.push(`  last launch error${c.lastError.code !== null ? ` (exit code ${c.lastError.code})` : ''}: ${c.lastError.stderr.trim() || c.lastError.message}`);
    const decided = (await t.journal.read(`pool.${id}`)).filter((e) => e.type === 'pool.decided').slice(-8);
    lines.push('  last decisions:');
    for (const e of decided) {
      const d = e.data as { action: string; reason: string };
      lines.push(`    ${new Date(e.at).toISOString().slice(11, 23)} ${d.action.padEnd(6)} ${d.reason}`);
    }
  }
  return lines.join('\n');
}

/** `colony pool whatif`: reads the log (live, or exported with --file), reruns it under each policy. */
async function whatifCommand(id: string | undefined, values: TargetArgs & { policy?: string[]; file?: string; json?: boolean; verify?: boolean; seed?: string; latencies?: string }): Promise<void> {
  const policies = values.policy ?? [];
  if (!policies.length && !values.verify) throw new InvalidArgumentError('--policy', 'colony pool whatif needs a policy file (--policy FILE), or --verify');
  const seed = values.seed === undefined ? 1 : Number(values.seed);
  if (!Number.isInteger(seed)) throw new InvalidArgumentError('--seed', `must be a whole number, got '${values.seed}'`);
  let log: Envelope[];
  if (values.file) log = await readJsonl(values.file);
  else {
    const t = await openTarget(values);
    try {
      log = [];
      for (const kind of ['pool', 'adapter', 'map']) log.push(...(await t.journal.read(`${kind}.*`)));
    } finally {
      await t.close();
    }
  }
  // The policy files set fields over the recorded policy of the pool.
  const pool = id ?? poolsIn(log).at(-1);
  const base = pool ? log.find((e) => e.kind === 'pool' && e.id === pool && e.type === 'pool.started')?.data.policy as Partial<PoolPolicy> | undefined : undefined;
  const list = await Promise.all(policies.map((f) => readPolicyFile(f, base ?? {})));
  const latencies = values.latencies ?? 'sampled';
  if (latencies !== 'sampled' && latencies !== 'recorded') throw new InvalidArgumentError('--latencies', `must be 'sampled' or 'recorded', got '${latencies}'`);
  const report = whatif(log, list, { pool: id, seed, verify: values.verify, latencies });
  out(values.json ? JSON.stringify(report, null, 2) : formatWhatif(report));
}

export async function poolCommand(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      ...TARGET_OPTIONS, watch: { type: 'boolean', short: 'w' }, interval: { type: 'string' }, reason: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      policy: { type: 'string', multiple: true }, file: { type: 'string' }, json: { type: 'boolean' }, verify: { type: 'boolean' }, seed: { type: 'string' }, latencies: { type: 'string' },
    },
  });
  if (values.help || !sub || sub === 'help') {
    process.stdout.write(POOL_USAGE);
    return;
  }
  const id = positionals[0];
  if (sub === 'whatif') return whatifCommand(id, values);
  const t = await openTarget(values);
  try {
    switch (sub) {
      case 'status': {
        if (!values.watch) {
          out(await render(t, id));
          return;
        }
        const interval = Number(values.interval ?? 1000);
        let stop = false;
        process.once('SIGINT', () => { stop = true; });
        while (!stop) {
          process.stdout.write(`\x1b[2J\x1b[H${await render(t, id)}\n`);
          await new Promise((r) => setTimeout(r, interval));
        }
        return;
      }
      case 'pause':
      case 'resume': {
        if (!id) throw new ColonyError(`colony pool ${sub} needs a pool id (colony pool status lists them)`);
        let reply;
        try {
          reply = await t.nc.request(t.journal.subjects.poolCtl(id), encode({ op: sub, reason: values.reason }), { timeout: 10_000 });
        } catch (e) {
          throw new ColonyError(`pool '${id}' does not answer: no running process serves it (${(e as Error).message})`);
        }
        const r = decode<{ ok: boolean; error?: string; status?: { state: string; reason: string | null } }>(reply.data);
        if (!r.ok) throw new ColonyError(`pool '${id}': ${r.error}`);
        out(`pool ${id}: ${r.status?.state}${r.status?.reason ? ` (${r.status.reason})` : ''}`);
        return;
      }
      default:
        throw new ColonyError(`unknown pool command '${sub}'\n${POOL_USAGE}`);
    }
  } finally {
    await t.close();
  }
}
