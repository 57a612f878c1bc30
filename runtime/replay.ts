/**
 * Replay: folds an actor's recorded events through its machine with xstate's pure
 * `transition()`. With `verify`, a recorded `to` that differs from the replayed state is a
 * DeterminismViolationError naming the event.
 */
import { readFile } from 'node:fs/promises';
import { fold, machineFor } from '../actors/index.ts';
import type { ActorKind, Envelope } from '../actors/index.ts';
import { DeterminismViolationError } from './errors.ts';

export interface ReplayResult {
  kind: ActorKind;
  id: string;
  events: number;
  state: string;
  context: unknown;
  timeline: { seq: number; type: string; from: string; to: string; at: number }[];
}

/** Folds envelopes of one actor (in order). Stops after actor seq `until` when given. */
export function replayActor(envelopes: Envelope[], opts: { verify?: boolean; until?: number } = {}): ReplayResult {
  const first = envelopes[0];
  if (!first) throw new Error('no events to replay');
  const list = opts.until ? envelopes.filter((e) => e.seq <= opts.until!) : envelopes;
  const machine = machineFor(first.kind);
  const r = fold(machine, list);
  if (r.mismatch && opts.verify !== false) {
    const m = r.mismatch;
    throw new DeterminismViolationError({
      kind: first.kind, id: first.id, seq: m.envelope.seq, type: m.envelope.type, recorded: m.expectedTo, replayed: m.replayedTo, accepted: m.accepted,
    });
  }
  return {
    kind: first.kind,
    id: first.id,
    events: r.timeline.length,
    state: typeof r.snapshot.value === 'string' ? r.snapshot.value : JSON.stringify(r.snapshot.value),
    context: r.snapshot.context,
    timeline: r.timeline.map((t) => ({ seq: t.envelope.seq, type: t.envelope.type, from: t.from, to: t.to, at: t.envelope.at })),
  };
}

/** Groups envelopes by actor, keeping each actor's order. */
export function byActor(envelopes: Iterable<Envelope>): Map<string, Envelope[]> {
  const out = new Map<string, Envelope[]>();
  for (const e of envelopes) {
    const k = `${e.kind}/${e.id}`;
    let list = out.get(k);
    if (!list) out.set(k, (list = []));
    list.push(e);
  }
  return out;
}

/** Reads an exported log (`colony export`): one JSON envelope per line. */
export async function readJsonl(file: string): Promise<Envelope[]> {
  const text = await readFile(file, 'utf8');
  const out: Envelope[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      out.push(JSON.parse(line) as Envelope);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not a JSON envelope: ${(e as Error).message}`);
    }
  });
  return out;
}

/** Replays every actor of a set of envelopes; throws on the first violation when verifying. */
export function replayAll(envelopes: Envelope[], opts: { verify?: boolean } = {}): ReplayResult[] {
  return [...byActor(envelopes).values()].map((list) => replayActor(list, opts));
}
