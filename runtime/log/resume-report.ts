/**
 * What a resuming driver learns from the log about the calls of the driver before it: which
 * finished (their values wait on their owners), which still run on live workers, and which were
 * lost with a worker that is gone.
 */
import type { Envelope } from '../../actors/index.ts';
import type { Journal } from './journal.ts';

export interface RefSummary {
  id: string;
  owner: number;
  /** `module#name` of the call, null for a ref made by remoteRef(pid). */
  task: string | null;
  /** Last recorded state: running, empty, ready, failed. */
  state: string;
}

export interface ResumeReport {
  /** Workers found alive (they answered with heartbeats). */
  workers: number[];
  /** Workers the log knew that did not answer. */
  silentWorkers: number[];
  /** Results computed and not freed: fetch them with cluster.ref(id). */
  finished: RefSummary[];
  /** Calls still running on a live worker. */
  running: RefSummary[];
  /** Calls whose owner is gone: their values are lost. */
  lost: RefSummary[];
  /** How long the resume took, in ms. */
  ms: number;
}

/** Reads every ref's last state from the log. Refs that ended (freed, lost) are left out. */
export async function openRefs(journal: Journal): Promise<RefSummary[]> {
  const last = new Map<string, Envelope>();
  const task = new Map<string, string | null>();
  for await (const env of journal.iterate('ref.>')) {
    last.set(env.id, env);
    if (env.type === 'ref.created') task.set(env.id, (env.data.task as string | null) ?? null);
  }
  const out: RefSummary[] = [];
  for (const [id, env] of last) {
    if (env.to === 'freed' || env.to === 'lost') continue;
    out.push({ id, owner: Number.parseInt(id, 10), task: task.get(id) ?? null, state: env.to });
  }
  return out;
}
