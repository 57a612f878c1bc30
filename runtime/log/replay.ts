/**
 * Replay: folds an actor's recorded events through its machine with xstate's pure
 * `transition()`. With `verify`, a recorded `to` that differs from the replayed state is a
 * DeterminismViolationError naming the event.
 */
import { readFile } from 'node:fs/promises';
import { machineFor } from '../../actors/index.ts';
import { foldEach } from '../../actors/fold.ts';
import type { ActorKind, Envelope } from '../../actors/index.ts';
import { DeterminismViolationError } from '../transport/errors.ts';

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
  const timeline: ReplayResult['timeline'] = [];
  const r = foldEach(machine, list, undefined, (e, from, to) => timeline.push({ seq: e.seq, type: e.type, from, to, at: e.at }));
  if (r.mismatch && opts.verify !== false) {
    const m = r.mismatch;
    throw new DeterminismViolationError({
      kind: first.kind, id: first.id, seq: m.envelope.seq, type: m.envelope.type, recorded: m.expectedTo, replayed: m.replayedTo, accepted: m.accepted,
    });
  }
  return {
    kind: first.kind,
    id: first.id,
    events: timeline.length,
    state: typeof r.snapshot.value === 'string' ? r.snapshot.value : JSON.stringify(r.snapshot.value),
    context: r.snapshot.context,
    timeline,
  };
}

/** Groups envelopes by actor, keeping each actor's order. */
export function byActor(envelopes: Iterable<Envelope>): Map<string, Envelope[]> {
  return new Map(groups(envelopes).map((l) => [`${l[0]!.kind}/${l[0]!.id}`, l]));
}

/** The envelopes of each actor, actors in order of their first event. */
function groups(envelopes: Iterable<Envelope>): Envelope[][] {
  // One map of ids per kind: a `${kind}/${id}` key per event cost more than the fold of a plain event.
  const kinds = new Map<string, Map<string, Envelope[]>>();
  const order: Envelope[][] = [];
  for (const e of envelopes) {
    let ids = kinds.get(e.kind);
    if (!ids) kinds.set(e.kind, (ids = new Map()));
    const list = ids.get(e.id);
    if (list) list.push(e);
    else {
      const l = [e];
      ids.set(e.id, l);
      order.push(l);
    }
  }
  return order;
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
  return groups(envelopes).map((list) => replayActor(list, opts));
}
