/**
 * Subject, stream and bucket names: part of the public API (see docs/subjects.md).
 * A cluster name is one NATS token: letters, digits, `_` and `-`.
 */
import { InvalidArgumentError } from './errors.ts';

const TOKEN = /^[A-Za-z0-9_-]+$/;

export function checkClusterName(name: string): string {
  if (!TOKEN.test(name)) throw new InvalidArgumentError('name', `cluster name '${name}' must match ${TOKEN} (it is used in subjects and stream names)`);
  return name;
}

/** The forms an events filter takes, for error messages. */
export const EVENT_FILTER_FORMS = "a subject tail under colony.<cluster>.evt.: '>' (everything), 'worker.*' (every worker), 'ref.>' (every ref), 'worker.2' (one actor)";

/**
 * Checks an events filter (`worker.*`, `ref.>`, `worker.2`, `>`): dot-separated tokens, none
 * empty, no spaces, `*` only as a whole token, `>` only as the whole last token.
 */
export function checkEventFilter(filter: unknown): string {
  const bad = (why: string): never => {
    throw new InvalidArgumentError('filter', `${JSON.stringify(filter) ?? String(filter)} is not an events filter (${why}); give ${EVENT_FILTER_FORMS}`);
  };
  if (typeof filter !== 'string') return bad(`expected a string, got ${filter === null ? 'null' : typeof filter}`);
  if (filter === '') return bad('it is empty');
  if (/\s/.test(filter)) return bad('it has a space');
  const tokens = filter.split('.');
  if (tokens[0] === 'colony' || tokens[0] === '$JS') return bad('give only the tail after colony.<cluster>.evt.');
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '') return bad('a token between dots is empty');
    if (t === '>' && i !== tokens.length - 1) return bad("'>' must be the last token");
    if (t.length > 1 && /[*>]/.test(t)) return bad("'*' and '>' must be whole tokens");
  }
  return filter;
}

/** All names for one cluster. */
export function subjects(c: string) {
  const p = `colony.${c}`;
  return {
    evtPrefix: `${p}.evt`,
    evt: (kind: string, id: string | number) => `${p}.evt.${kind}.${id}`,
    /** A filter such as `worker.*`, `ref.>` or `>` becomes a full subject; a bad one is an InvalidArgumentError. */
    evtFilter: (filter: string) => `${p}.evt.${checkEventFilter(filter)}`,
    call: (pid: number) => `${p}.call.${pid}`,
    ref: (pid: number) => `${p}.ref.${pid}`,
    chunk: (array: string, index: number) => `${p}.chunk.${array}.${index}`,
    hb: (pid: number | '*') => `${p}.hb.${pid}`,
    /** Task spans of a process, batched (core NATS, not persisted): see runtime/process/span-recorder.ts. */
    span: (pid: number | '*') => `${p}.span.${pid}`,
    /** Control: registration (worker -> driver) and per-worker control (interrupt, exit). */
    register: `${p}.ctl.register`,
    ready: `${p}.ctl.ready`,
    ctl: (pid: number) => `${p}.ctl.${pid}`,
    jobsSubmit: `${p}.jobs.submit`,
    /** Pools: demand (drivers -> pools), info (pools -> drivers), status requests, control of one pool. */
    poolDemand: `${p}.pool.demand`,
    poolInfo: `${p}.pool.info`,
    poolStatus: `${p}.pool.status`,
    poolCtl: (id: string) => `${p}.pool.ctl.${id}`,
    eventsStream: `COLONY_${c}_EVENTS`,
    jobsStream: `COLONY_${c}_JOBS`,
    stateBucket: `colony_${c}_state`,
  };
}
export type Subjects = ReturnType<typeof subjects>;
