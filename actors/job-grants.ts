/**
 * Which queued jobs the manager may start now: a pure function of the queue, what runs, and the
 * limits. It is the seed's multi-queue blocking without head-of-line blocking: jobs are taken in
 * queue order, and one that does not fit (its host, class or queue is full) is passed over, so it
 * never holds up a later job that could run elsewhere.
 */
import type { JobClass } from './job.ts';

/** `jobs.limits` in colony.yaml. A missing limit is no limit. */
export interface JobLimits {
  /** Jobs granted or running at once, over everything. */
  total?: number;
  /** Per class: `{ local: 4, ssh: 8, ec2: 2 }` (for ec2, the instances EC2 reports). */
  perClass?: Partial<Record<JobClass, number>>;
  /** Per host (an ssh job's `host`, or the manager's host name for local jobs). */
  perHost?: Record<string, number>;
  /** Per queue name. */
  perQueue?: Record<string, number>;
}

/** A queued job as the grant function sees it. */
export interface GrantCandidate {
  id: string;
  class: JobClass;
  /** The host it will run on, when known before it starts (null: an ec2 instance to come). */
  host: string | null;
  queue: string;
}

/** What is granted or running now. */
export interface RunningCounts {
  total: number;
  perClass: Partial<Record<JobClass, number>>;
  perHost: Record<string, number>;
  perQueue: Record<string, number>;
}

export function emptyCounts(): RunningCounts {
  return { total: 0, perClass: {}, perHost: {}, perQueue: {} };
}

/** Adds one job to `counts` (in place). */
export function countJob(counts: RunningCounts, job: Omit<GrantCandidate, 'id'>): void {
  counts.total += 1;
  counts.perClass[job.class] = (counts.perClass[job.class] ?? 0) + 1;
  if (job.host !== null) counts.perHost[job.host] = (counts.perHost[job.host] ?? 0) + 1;
  counts.perQueue[job.queue] = (counts.perQueue[job.queue] ?? 0) + 1;
}

const fits = (limit: number | undefined, n: number | undefined) => limit === undefined || (n ?? 0) < limit;

/**
 * The ids of `queued` (in queue order) to grant now, in order. `running` is not changed.
 *
 * @example
 * grantable([{ id: 'a', class: 'ssh', host: 'full', queue: 'q' }, { id: 'b', class: 'ssh', host: 'free', queue: 'q' }],
 *   { total: 1, perClass: { ssh: 1 }, perHost: { full: 1 }, perQueue: { q: 1 } }, { perHost: { full: 1 } });  // ['b']
 */
export function grantable(queued: readonly GrantCandidate[], running: RunningCounts, limits: JobLimits): string[] {
  const counts: RunningCounts = {
    total: running.total, perClass: { ...running.perClass }, perHost: { ...running.perHost }, perQueue: { ...running.perQueue },
  };
  const out: string[] = [];
  for (const job of queued) {
    if (!fits(limits.total, counts.total)) break;
    if (!fits(limits.perClass?.[job.class], counts.perClass[job.class])) continue;
    if (job.host !== null && !fits(limits.perHost?.[job.host], counts.perHost[job.host])) continue;
    if (!fits(limits.perQueue?.[job.queue], counts.perQueue[job.queue])) continue;
    countJob(counts, job);
    out.push(job.id);
  }
  return out;
}
