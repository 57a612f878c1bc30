/**
 * The adapter actor's pure machine: submitting -> queued -> running -> exited | failed, replayed
 * with the same fold the log uses, and snapshots that survive JSON.
 */
import { describe, expect, it } from 'vitest';
import { adapterEvents as ev, adapterMachine, fold, foldStep, initialSnapshot, restoreSnapshot, persistable } from '../actors/index.ts';
import type { ActorEvent, AdapterContext, Envelope } from '../actors/index.ts';

/** Folds events one by one and returns the states they lead to (refused events give 'refused'). */
function states(events: ActorEvent[]): { to: string[]; context: AdapterContext } {
  let s = initialSnapshot(adapterMachine);
  const to: string[] = [];
  for (const e of events) {
    const step = foldStep(adapterMachine, s, e);
    to.push(step.accepted ? step.to : 'refused');
    s = step.snapshot;
  }
  return { to, context: s.context as AdapterContext };
}

const requested = (launch: string, count: number, at = 1) => ev.requested(at, { manager: 'sge', launch, count, command: ['qsub'] });
const queued = (launch: string, jobId: string, units: string[], at = 2) => ev.queued(at, { launch, jobId, units });
const started = (unit: string, launch: string, jobId = unit.split('.')[0]!, at = 3) => ev.started(at, { unit, jobId, launch, host: 'vm' });
const exited = (unit: string, code: number | null = 0, at = 4) => ev.exited(at, { unit, jobId: unit.split('.')[0]!, code, reason: 'completed' });
const failedUnit = (unit: string) => ev.failed(5, { launch: null, unit, jobId: unit.split('.')[0]!, message: 'boom', code: 1, stderr: 'err' });
const failedLaunch = (launch: string) => ev.failed(5, { launch, unit: null, jobId: null, message: 'qsub failed', code: 1, stderr: 'Unable to run job' });

describe('adapter machine', () => {
  it('one array job: submitting -> queued -> running -> exited, with the job ids in the context', () => {
    const { to, context } = states([requested('a/1', 2), queued('a/1', '5', ['5.1', '5.2']), started('5.1', 'a/1'), started('5.2', 'a/1'), exited('5.1'), exited('5.2')]);
    expect(to).toEqual(['submitting', 'queued', 'running', 'running', 'running', 'exited']);
    expect(context).toMatchObject({ manager: 'sge', units: {}, pending: {}, launches: 1, started: 2, exited: 2, failed: 0 });
  });

  it('a units context while running names the job, state and host of each unit', () => {
    const { context } = states([requested('a/1', 2), queued('a/1', '5', ['5.1', '5.2']), started('5.2', 'a/1')]);
    expect(context.units['5.1']).toMatchObject({ jobId: '5', state: 'queued', queuedAt: 2, startedAt: null });
    expect(context.units['5.2']).toMatchObject({ jobId: '5', state: 'running', startedAt: 3, host: 'vm' });
  });

  it('a failed submission: submitting -> failed, with the scheduler\'s stderr; a new submission starts over', () => {
    const { to, context } = states([requested('a/1', 2), failedLaunch('a/1'), requested('a/2', 1), queued('a/2', '6', ['6'])]);
    expect(to).toEqual(['submitting', 'failed', 'submitting', 'queued']);
    expect(context.lastError).toEqual({ message: 'qsub failed', code: 1, stderr: 'Unable to run job', at: 5 });
  });

  it('a unit that fails while another runs keeps the adapter running; the last end decides', () => {
    const { to } = states([requested('a/1', 2), queued('a/1', '5', ['5.1', '5.2']), started('5.1', 'a/1'), failedUnit('5.2'), exited('5.1')]);
    expect(to).toEqual(['submitting', 'queued', 'running', 'running', 'exited']);
    expect(states([requested('a/1', 1), queued('a/1', '5', ['5']), started('5', 'a/1'), failedUnit('5')]).to.at(-1)).toBe('failed');
  });

  it('units without a queue (ssh sessions) start straight from their launch', () => {
    const { to } = states([requested('s/1', 2), started('h#1', 's/1', 'h#1'), started('h#2', 's/1', 'h#2'), exited('h#1'), exited('h#2')]);
    expect(to).toEqual(['submitting', 'running', 'running', 'running', 'exited']);
  });

  it('events that do not fit are refused: an unknown unit, a unit started twice, a launch queued twice', () => {
    expect(states([requested('a/1', 1), started('9.1', 'a/9')]).to).toEqual(['submitting', 'refused']);
    expect(states([requested('a/1', 1), queued('a/1', '5', ['5']), started('5', 'a/1'), started('5', 'a/1')]).to.at(-1)).toBe('refused');
    expect(states([requested('a/1', 1), queued('a/1', '5', ['5']), queued('a/1', '6', ['6'])]).to.at(-1)).toBe('refused');
    expect(states([exited('5')]).to).toEqual(['refused']);
  });

  it('closed is final', () => {
    const { to } = states([requested('a/1', 1), ev.closed(9, 'closed'), requested('a/2', 1)]);
    expect(to).toEqual(['submitting', 'closed', 'refused']);
  });

  it('replay - a recorded history folds to the recorded states, and a snapshot survives JSON', () => {
    const events = [requested('a/1', 2), queued('a/1', '5', ['5.1', '5.2']), started('5.1', 'a/1'), started('5.2', 'a/1'), exited('5.1')];
    const envelopes: Envelope[] = [];
    let s = initialSnapshot(adapterMachine);
    events.forEach((e, i) => {
      const step = foldStep(adapterMachine, s, e);
      envelopes.push({ v: 1, kind: 'adapter', id: 'sge-1', seq: i + 1, at: e.at, type: e.type, from: i ? step.from : null, to: step.to, data: e.data as Record<string, unknown> });
      s = step.snapshot;
    });
    const replay = fold(adapterMachine, envelopes);
    expect(replay.mismatch).toBeNull();
    const restored = restoreSnapshot(adapterMachine, JSON.parse(JSON.stringify(persistable(replay.snapshot))));
    const next = foldStep(adapterMachine, restored, exited('5.2'));
    expect(next.to).toBe('exited');
    // A tampered history is a mismatch that names the event.
    const tampered = envelopes.map((e, i) => (i === 2 ? { ...e, to: 'queued' } : e));
    expect(fold(adapterMachine, tampered).mismatch).toMatchObject({ index: 2, expectedTo: 'queued', replayedTo: 'running' });
  });
});
