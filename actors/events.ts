/**
 * The persisted event envelope and the event shape the machines consume.
 *
 * Every transition of every actor is stored as one {@link Envelope} under
 * `colony.<cluster>.evt.<kind>.<id>`. Machines never read clocks or random values: the time of
 * an event travels in `at`, everything else in `data`.
 */

/** Version of the envelope layout. Bump it, and keep the old reader, if the layout changes. */
export const ENVELOPE_VERSION = 1 as const;

/** The kinds of actor whose transitions are persisted. */
export type ActorKind = 'worker' | 'ref' | 'map' | 'job' | 'adapter' | 'pool' | 'chunk' | 'darray';

/** A persisted transition. `from` is `null` for the first event of an actor. */
export interface Envelope<D = Record<string, unknown>> {
  v: number;
  kind: ActorKind;
  id: string;
  /** Position of this event in the actor's own history, 1-based. */
  seq: number;
  /** Milliseconds since the epoch, taken by the writer when the event happened. */
  at: number;
  /** Past-tense dot name, e.g. `worker.registered`. */
  type: string;
  from: string | null;
  to: string;
  data: D;
  /** Stream sequence, filled in when the envelope is read back from JetStream. */
  streamSeq?: number;
}

/** What a machine receives: the envelope without the bookkeeping. */
export interface ActorEvent<T extends string = string, D = Record<string, unknown>> {
  type: T;
  at: number;
  data: D;
}

/** Builds an event; `at` must come from the caller, never from inside a machine. */
export function actorEvent<T extends string, D>(type: T, at: number, data: D): ActorEvent<T, D> {
  return { type, at, data };
}

/** Renders an xstate state value as a stable string: `ready`, or `running.retrying` when nested. */
export function stateString(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const [k, v] = Object.entries(value as Record<string, unknown>)[0] ?? [];
    return k === undefined ? '' : `${k}.${stateString(v)}`;
  }
  return String(value);
}

/** Turns an envelope back into the event its machine consumed. */
export function eventOf(env: Envelope): ActorEvent {
  return { type: env.type, at: env.at, data: env.data };
}
