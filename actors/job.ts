/**
 * The job actor (seed 003): one YAML job's whole life, `job.<id>`.
 *
 * new -> queued -> granted -> running -> succeeded | failed | cancelled
 *                     ^----- retrying ------'   (while retries last)
 *
 * The manager is the single writer. `job.granted` is the decision to start a run: it is stored
 * before any runner is spawned, so a restarted manager never decides the same start twice.
 * A run that fails with retries left is `job.retrying` (back to `queued`); the last one is
 * `job.failed`. A cancel is accepted in any live state.
 */
import { assign, setup } from 'xstate';
import type { ActorEvent } from './events.ts';
import { actorEvent } from './events.ts';

/** Where a job runs: the seed's Job, RemoteJob and EC2Job. */
export type JobClass = 'local' | 'ssh' | 'ec2';

export const JOB_CLASSES: readonly JobClass[] = ['local', 'ssh', 'ec2'];

/** A validated job file (see runtime/jobs/job-spec.ts). */
export interface JobSpec {
  name: string;
  class: JobClass;
  queue: string;
  /** An argv, or a string run by `/bin/sh -c`. */
  command: string[] | string;
  workdir: string | null;
  env: Record<string, string>;
  /** ssh: `[user@]host[:port]`. */
  host: string | null;
  /** Seconds; null: none. */
  timeout: number | null;
  retries: number;
  steps: string[];
}

/** What the job reports through the states. */
export interface JobContext {
  spec: JobSpec | null;
  /** Runs granted so far; the current run's number. */
  run: number;
  host: string | null;
  ospid: number | null;
  /** Steps completed in the current run, in order. */
  steps: string[];
  code: number | null;
  result: unknown;
  reason: string | null;
  stderrTail: string;
  cancelledBy: string | null;
  queuedAt: number | null;
  grantedAt: number | null;
  startedAt: number | null;
  endedAt: number | null;
}

type RunEnd = { code: number | null; reason: string; stderrTail: string };

export type JobQueued = ActorEvent<'job.queued', { spec: JobSpec }>;
export type JobGranted = ActorEvent<'job.granted', { host: string | null }>;
export type JobStarted = ActorEvent<'job.started', { host: string; ospid: number; run: number }>;
export type JobStepCompleted = ActorEvent<'job.step.completed', { step: string }>;
export type JobSucceeded = ActorEvent<'job.succeeded', { code: number; result: unknown }>;
export type JobFailed = ActorEvent<'job.failed', RunEnd>;
export type JobRetrying = ActorEvent<'job.retrying', RunEnd>;
export type JobCancelled = ActorEvent<'job.cancelled', { by: string }>;
export type JobEvent = JobQueued | JobGranted | JobStarted | JobStepCompleted | JobSucceeded | JobFailed | JobRetrying | JobCancelled;

/** Event creators, one per persisted type. `at` comes from the caller. */
export const jobEvents = {
  queued: (at: number, spec: JobSpec) => actorEvent('job.queued', at, { spec }) as JobQueued,
  granted: (at: number, host: string | null) => actorEvent('job.granted', at, { host }) as JobGranted,
  started: (at: number, data: JobStarted['data']) => actorEvent('job.started', at, data) as JobStarted,
  stepCompleted: (at: number, step: string) => actorEvent('job.step.completed', at, { step }) as JobStepCompleted,
  succeeded: (at: number, code: number, result: unknown) => actorEvent('job.succeeded', at, { code, result }) as JobSucceeded,
  failed: (at: number, data: RunEnd) => actorEvent('job.failed', at, data) as JobFailed,
  retrying: (at: number, data: RunEnd) => actorEvent('job.retrying', at, data) as JobRetrying,
  cancelled: (at: number, by: string) => actorEvent('job.cancelled', at, { by }) as JobCancelled,
};

/** The states a job never leaves. */
export const JOB_FINAL_STATES = ['succeeded', 'failed', 'cancelled'] as const;

/** Whether a run that just failed may run again: runs so far are at most `retries`. */
export function retriesLeft(c: Pick<JobContext, 'run' | 'spec'>): boolean {
  return c.run <= (c.spec?.retries ?? 0);
}

const cancel = { target: 'cancelled', actions: 'cancel' } as const;

export const jobMachine = setup({
  types: {} as { context: JobContext; events: JobEvent },
  guards: {
    retriesLeft: ({ context }) => retriesLeft(context),
    currentRun: ({ context, event }) => event.type === 'job.started' && event.data.run === context.run,
  },
  actions: {
    ended: assign(({ event }) => {
      const d = event.data as RunEnd;
      return { code: d.code, reason: d.reason, stderrTail: d.stderrTail, endedAt: event.at, ospid: null };
    }),
    cancel: assign(({ event }) => ({ cancelledBy: (event as JobCancelled).data.by, endedAt: event.at, ospid: null })),
  },
}).createMachine({
  id: 'job',
  initial: 'new',
  context: {
    spec: null, run: 0, host: null, ospid: null, steps: [], code: null, result: null, reason: null, stderrTail: '',
    cancelledBy: null, queuedAt: null, grantedAt: null, startedAt: null, endedAt: null,
  },
  states: {
    new: {
      on: { 'job.queued': { target: 'queued', actions: assign(({ event }) => ({ spec: event.data.spec, queuedAt: event.at })) } },
    },
    queued: {
      on: {
        'job.granted': {
          target: 'granted',
          actions: assign(({ context, event }) => ({
            run: context.run + 1, host: event.data.host, grantedAt: event.at, steps: [], ospid: null, startedAt: null,
          })),
        },
        'job.cancelled': cancel,
      },
    },
    granted: {
      on: {
        'job.started': {
          guard: 'currentRun', target: 'running',
          actions: assign(({ event }) => ({ host: event.data.host, ospid: event.data.ospid, startedAt: event.at })),
        },
        'job.retrying': { guard: 'retriesLeft', target: 'queued', actions: 'ended' },
        'job.failed': { target: 'failed', actions: 'ended' },
        'job.cancelled': cancel,
      },
    },
    running: {
      on: {
        'job.step.completed': { actions: assign(({ context, event }) => ({ steps: [...context.steps, event.data.step] })) },
        'job.succeeded': {
          target: 'succeeded',
          actions: assign(({ event }) => ({ code: event.data.code, result: event.data.result, reason: null, endedAt: event.at, ospid: null })),
        },
        'job.retrying': { guard: 'retriesLeft', target: 'queued', actions: 'ended' },
        'job.failed': { target: 'failed', actions: 'ended' },
        'job.cancelled': cancel,
      },
    },
    succeeded: { type: 'final' },
    failed: { type: 'final' },
    cancelled: { type: 'final' },
  },
});
