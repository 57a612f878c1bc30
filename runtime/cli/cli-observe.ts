/**
 * Observer commands: `colony events`, `colony export`, `colony replay`, `colony status`.
 * They need only NATS credentials; none of them changes the cluster.
 */
import { parseArgs } from 'node:util';
import type { ActorKind, Envelope, PoolContext } from '../../actors/index.ts';
import { decode } from '../transport/codec.ts';
import { checkEventFilter } from '../transport/subjects.ts';
import { TARGET_OPTIONS, openTarget } from './cli-target.ts';
import { formatEvent, toJsonLine } from '../log/event-format.ts';
import { readJsonl, replayActor, replayAll } from '../log/replay.ts';
import type { ReplayResult } from '../log/replay.ts';

const out = (s: string) => process.stdout.write(`${s}\n`);

function since(v: string | undefined): { fromSeq?: number; since?: Date } {
  if (!v) return {};
  if (/^\d+$/.test(v)) return { fromSeq: Number(v) };
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new Error(`--since takes a stream sequence or a time, got '${v}'`);
  return { since: d };
}

/** `colony events [filter] [--since seq|time] [--follow] [--json]` */
export async function eventsCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args, allowPositionals: true,
    options: { ...TARGET_OPTIONS, since: { type: 'string' }, follow: { type: 'boolean', short: 'f' }, json: { type: 'boolean' } },
  });
  const filter = checkEventFilter(positionals[0] ?? '>');
  const t = await openTarget(values);
  const print = (e: Envelope) => out(values.json ? toJsonLine(e) : formatEvent(e));
  try {
    let last = 0;
    // Subscribe before reading history so nothing falls between the two.
    const live = values.follow ? t.nc.subscribe(t.journal.subjects.evtFilter(filter)) : null;
    for await (const e of t.journal.iterate(filter, since(values.since))) {
      print(e);
      last = Math.max(last, e.streamSeq ?? 0);
    }
    if (live) {
      const stop = () => live.unsubscribe();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      for await (const m of live) {
        const seq = Number(m.headers?.get('Nats-Sequence') || 0);
        if (seq && seq <= last) continue;
        print(decode<Envelope>(m.data));
      }
    }
  } finally {
    await t.close();
  }
}

/** `colony export <filter> > file.jsonl` */
export async function exportCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { ...TARGET_OPTIONS, since: { type: 'string' } } });
  const filter = checkEventFilter(positionals[0] ?? '>');
  const t = await openTarget(values);
  try {
    for await (const e of t.journal.iterate(filter, since(values.since))) out(toJsonLine(e));
  } finally {
    await t.close();
  }
}

function printTimeline(r: ReplayResult): void {
  out(`${r.kind}/${r.id}: ${r.events} event(s), state ${r.state}`);
  for (const s of r.timeline) out(`  #${String(s.seq).padEnd(3)} ${new Date(s.at).toISOString().slice(11, 23)}  ${s.type.padEnd(20)} ${s.from.padStart(10)} -> ${s.to}`);
}

/**
 * `colony replay <kind>/<id> [--until seq] [--verify] [--file log.jsonl]`
 * With --file and no actor, replays every actor in the file.
 */
export async function replayCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args, allowPositionals: true,
    options: { ...TARGET_OPTIONS, until: { type: 'string' }, verify: { type: 'boolean' }, file: { type: 'string' }, quiet: { type: 'boolean', short: 'q' } },
  });
  const actor = positionals[0];
  const until = values.until ? Number(values.until) : undefined;
  let envelopes: Envelope[];
  if (values.file) {
    envelopes = await readJsonl(values.file);
    if (actor) envelopes = envelopes.filter((e) => `${e.kind}/${e.id}` === actor);
  } else {
    if (!actor || !/^[a-z]+\/[A-Za-z0-9_-]+$/.test(actor)) throw new Error('colony replay needs <kind>/<id>, e.g. worker/2 or ref/2-ab12cd-7 (or --file log.jsonl)');
    const [kind, id] = actor.split('/') as [ActorKind, string];
    const t = await openTarget(values);
    try {
      envelopes = await t.journal.read(`${kind}.${id}`);
    } finally {
      await t.close();
    }
  }
  if (!envelopes.length) throw new Error(actor ? `no events for ${actor}` : 'no events in the file');
  const results = actor ? [replayActor(envelopes, { verify: values.verify, until })] : replayAll(envelopes, { verify: values.verify });
  for (const r of results) if (!values.quiet) printTimeline(r);
  if (values.verify) out(`verified: ${results.length} actor(s), ${results.reduce((n, r) => n + r.events, 0)} event(s) replay to their recorded states`);
}

interface Heartbeat {
  pid: number;
  running: number;
  completed: number;
  task: string | null;
  refs: Record<string, number>;
  rss: number;
}

/** `colony status [--watch]`: workers from the KV projections plus one round of heartbeats. */
export async function statusCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { ...TARGET_OPTIONS, watch: { type: 'boolean', short: 'w' }, interval: { type: 'string' } } });
  const t = await openTarget(values);
  const hbs = new Map<number, Heartbeat>();
  const sub = t.nc.subscribe(t.journal.subjects.hb('*'), {
    callback: (_e, m) => {
      try {
        const hb = decode<Heartbeat>(m.data);
        if (hb.pid > 1) hbs.set(hb.pid, hb);
      } catch { /* not a heartbeat */ }
    },
  });
  let driverSeen = 0;
  const dsub = t.nc.subscribe(t.journal.subjects.hb(1), { callback: () => { driverSeen = Date.now(); } });
  const interval = Number(values.interval ?? 1000);
  const render = async () => {
    const rows: string[] = [];
    const keys = await t.journal.stateKeys();
    const counts = new Map<string, Map<string, number>>();
    const workers: { pid: number; host: string; state: string }[] = [];
    const poolRows: string[] = [];
    for (const k of keys) {
      const [kind] = k.split('.');
      const snap = await t.journal.snapshot(kind as ActorKind, k.slice(kind!.length + 1));
      if (!snap) continue;
      const state = typeof snap.value === 'string' ? snap.value : JSON.stringify(snap.value);
      if (kind === 'worker') {
        const c = snap.context as { pid: number; host: string };
        workers.push({ pid: c.pid, host: c.host, state });
      } else if (kind === 'pool') {
        poolRows.push((await import('./cli-pool.ts')).poolLine(k.slice(5), state, snap.context as PoolContext));
      } else {
        let m = counts.get(kind!);
        if (!m) counts.set(kind!, (m = new Map()));
        m.set(state, (m.get(state) ?? 0) + 1);
      }
    }
    rows.push(`cluster ${t.name}${t.offline ? ' (stopped; stored log)' : ''}  driver: ${driverSeen ? 'alive' : 'not seen'}`);
    rows.push('PID  HOST              STATE       RUNNING  DONE     RSS(MB)  TASK');
    const refTotals: Record<string, number> = {};
    for (const w of workers.sort((a, b) => a.pid - b.pid)) {
      const hb = hbs.get(w.pid);
      if (hb) for (const [s, n] of Object.entries(hb.refs ?? {})) refTotals[s] = (refTotals[s] ?? 0) + n;
      const live = w.state === 'ready' || w.state === 'registered' || w.state === 'stopping';
      rows.push(`${String(w.pid).padEnd(4)} ${w.host.slice(0, 16).padEnd(17)} ${(live && !hb && !t.offline ? `${w.state}?` : w.state).padEnd(11)} ${String(hb?.running ?? '-').padEnd(8)} ${String(hb?.completed ?? '-').padEnd(8)} ${hb ? String(Math.round(hb.rss / 1e6)).padEnd(8) : '-'.padEnd(8)} ${hb?.task?.replace(/^.*\//, '') ?? ''}`);
    }
    rows.push(`refs on live workers: ${Object.entries(refTotals).map(([s, n]) => `${s} ${n}`).join(', ') || 'none'}`);
    for (const [kind, m] of counts) rows.push(`${kind}s: ${[...m].map(([s, n]) => `${s} ${n}`).join(', ')}`);
    rows.push(...poolRows);
    return rows.join('\n');
  };
  try {
    // One heartbeat period so the live columns are filled.
    await new Promise((r) => setTimeout(r, Math.min(interval, 1200)));
    if (!values.watch) {
      out(await render());
      return;
    }
    let stop = false;
    process.once('SIGINT', () => { stop = true; });
    while (!stop) {
      const text = await render();
      process.stdout.write(`\x1b[2J\x1b[H${text}\n`);
      await new Promise((r) => setTimeout(r, interval));
    }
  } finally {
    sub.unsubscribe();
    dsub.unsubscribe();
    await t.close();
  }
}
