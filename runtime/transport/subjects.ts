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

/** All names for one cluster. */
export function subjects(c: string) {
  const p = `colony.${c}`;
  return {
    evtPrefix: `${p}.evt`,
    evt: (kind: string, id: string | number) => `${p}.evt.${kind}.${id}`,
    /** A filter such as `worker.*`, `ref.>` or `>` becomes a full subject. */
    evtFilter: (filter: string) => `${p}.evt.${filter}`,
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
    eventsStream: `COLONY_${c}_EVENTS`,
    jobsStream: `COLONY_${c}_JOBS`,
    stateBucket: `colony_${c}_state`,
  };
}
export type Subjects = ReturnType<typeof subjects>;
