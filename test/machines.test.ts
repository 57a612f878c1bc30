import { describe, expect, it } from 'vitest';
import {
  fold, foldStep, initialSnapshot, machineFor, persistable, refEvents, refMachine, restoreSnapshot, stateString, workerEvents, workerMachine,
} from '../actors/index.ts';
import type { ActorEvent, Envelope } from '../actors/index.ts';
import type { AnyMachineSnapshot, AnyStateMachine } from 'xstate';

/** Applies events in order, failing the test on one the machine refuses. */
function run(machine: AnyStateMachine, events: ActorEvent[], start = initialSnapshot(machine)): AnyMachineSnapshot {
  let s = start;
  for (const e of events) {
    const step = foldStep(machine, s, e);
    expect(step.accepted, `${e.type} from ${step.from}`).toBe(true);
    s = step.snapshot;
  }
  return s;
}

/** Records events as the actor host would: envelopes with from/to. */
function record(machine: AnyStateMachine, kind: 'worker' | 'ref', id: string, events: ActorEvent[]): Envelope[] {
  let s = initialSnapshot(machine);
  return events.map((e, i) => {
    const step = foldStep(machine, s, e);
    s = step.snapshot;
    return { v: 1, kind, id, seq: i + 1, at: e.at, type: e.type, from: i === 0 ? null : step.from, to: step.to, data: e.data as Record<string, unknown> };
  });
}

const reg = workerEvents.registered(1000, { pid: 2, host: 'node1', ospid: 4242, launchToken: 'tok', manager: 'local' });

describe('worker machine', () => {
  it('goes unregistered -> registered -> ready -> stopping -> exited, keeping what the events carry', () => {
    const s0 = initialSnapshot(workerMachine);
    expect(s0.value).toBe('unregistered');
    const s1 = run(workerMachine, [reg]);
    expect(s1.value).toBe('registered');
    expect(s1.context).toMatchObject({ pid: 2, host: 'node1', ospid: 4242, launchToken: 'tok', manager: 'local', registeredAt: 1000 });
    const s2 = run(workerMachine, [workerEvents.ready(1100, 1)], s1);
    expect(s2.value).toBe('ready');
    expect(s2.context.readyAt).toBe(1100);
    const s3 = run(workerMachine, [workerEvents.interrupted(1150), workerEvents.interrupted(1160)], s2);
    expect(s3.value).toBe('ready');
    expect(s3.context.interrupts).toBe(2);
    const s4 = run(workerMachine, [workerEvents.stopping(1200, 'rmprocs'), workerEvents.exited(1300, 0)], s3);
    expect(s4.value).toBe('exited');
    expect(s4.status).toBe('done');
    expect(s4.context).toMatchObject({ reason: 'rmprocs', exitCode: 0, endedAt: 1300 });
  });

  it('can be lost from registered, ready or stopping, and then accepts nothing', () => {
    for (const before of [[reg], [reg, workerEvents.ready(1, 0)], [reg, workerEvents.ready(1, 0), workerEvents.stopping(2, 'x')]]) {
      const s = run(workerMachine, [...before, workerEvents.lost(5000, 'no heartbeat for 5 s')]);
      expect(s.value).toBe('lost');
      expect(s.context.reason).toBe('no heartbeat for 5 s');
      expect(foldStep(workerMachine, s, workerEvents.ready(6000, 0)).accepted).toBe(false);
      expect(foldStep(workerMachine, s, workerEvents.exited(6000, 0)).accepted).toBe(false);
    }
  });

  it('refuses events that make no sense in the current state', () => {
    const s0 = initialSnapshot(workerMachine);
    for (const e of [workerEvents.ready(1, 0), workerEvents.interrupted(1), workerEvents.exited(1, 0)]) {
      const step = foldStep(workerMachine, s0, e);
      expect(step.accepted, e.type).toBe(false);
      expect(step.snapshot).toBe(s0);
      expect(step.to).toBe('unregistered');
    }
    const registered = run(workerMachine, [reg]);
    expect(foldStep(workerMachine, registered, reg).accepted).toBe(false);
    expect(foldStep(workerMachine, registered, workerEvents.interrupted(2)).accepted).toBe(false);
  });

  it('foldStep - never changes the snapshot it is given', () => {
    const s1 = run(workerMachine, [reg]);
    const before = JSON.stringify(persistable(s1));
    foldStep(workerMachine, s1, workerEvents.ready(2, 0));
    expect(JSON.stringify(persistable(s1))).toBe(before);
    expect(s1.value).toBe('registered');
  });
});

describe('ref machine', () => {
  it('a computed ref goes unborn -> running -> ready -> freed', () => {
    expect(initialSnapshot(refMachine).value).toBe('unborn');
    const s = run(refMachine, [refEvents.created(10, { owner: 2, creator: 1, task: 'file:///t.ts#f' })]);
    expect(s.value).toBe('running');
    expect(s.context).toMatchObject({ owner: 2, creator: 1, task: 'file:///t.ts#f', createdAt: 10 });
    const ready = run(refMachine, [refEvents.ready(20, 8)], s);
    expect(ready.value).toBe('ready');
    expect(ready.context.settledAt).toBe(20);
    const freed = run(refMachine, [refEvents.freed(30, 1)], ready);
    expect(freed.value).toBe('freed');
    expect(freed.status).toBe('done');
  });

  it('an empty ref (RemoteRef(pid)) goes unborn -> empty -> ready on put, and a second put is refused', () => {
    const empty = run(refMachine, [refEvents.created(10, { owner: 3, creator: 0, task: null })]);
    expect(empty.value).toBe('empty');
    const full = run(refMachine, [refEvents.put(11, 4, 1)], empty);
    expect(full.value).toBe('ready');
    expect(foldStep(refMachine, full, refEvents.put(12, 4, 1)).accepted).toBe(false);
  });

  it('a failed task keeps its error; a lost owner ends the ref', () => {
    const error = { name: 'RangeError', message: 'boom', pid: 2 };
    const failed = run(refMachine, [refEvents.created(1, { owner: 2, creator: 1, task: 'm#f' }), refEvents.failed(2, error)]);
    expect(failed.value).toBe('failed');
    expect(failed.context.error).toEqual(error);
    for (const before of [[], [refEvents.ready(2, 0)]]) {
      const lost = run(refMachine, [refEvents.created(1, { owner: 2, creator: 1, task: 'm#f' }), ...before, refEvents.lost(3, 2, 'owner lost')]);
      expect(lost.value).toBe('lost');
      expect(lost.status).toBe('done');
    }
  });

  it('refuses ref.ready on an unborn ref, ready on an empty one, and anything after freed', () => {
    const unborn = initialSnapshot(refMachine);
    expect(foldStep(refMachine, unborn, refEvents.ready(1, 0)).accepted).toBe(false);
    expect(foldStep(refMachine, unborn, refEvents.put(1, 0, 1)).accepted).toBe(false);
    expect(foldStep(refMachine, unborn, refEvents.lost(1, 2, 'x')).accepted).toBe(false);
    const empty = run(refMachine, [refEvents.created(1, { owner: 2, creator: 0, task: null })]);
    expect(foldStep(refMachine, empty, refEvents.ready(2, 0)).accepted).toBe(false);
    const freed = run(refMachine, [refEvents.freed(3, 1)], empty);
    for (const e of [refEvents.put(4, 0, 1), refEvents.freed(4, 1), refEvents.lost(4, 2, 'x')]) {
      expect(foldStep(refMachine, freed, e).accepted, e.type).toBe(false);
    }
  });
});

describe('snapshots and replay', () => {
  it('a snapshot round-trips through JSON and the restored machine goes on like the original', () => {
    const s = run(workerMachine, [reg, workerEvents.ready(1100, 1), workerEvents.interrupted(1200)]);
    const json = JSON.parse(JSON.stringify(persistable(s)));
    expect(json).toMatchObject({ value: 'ready', status: 'active' });
    const restored = restoreSnapshot(workerMachine, json);
    expect(restored.value).toBe('ready');
    expect(restored.context).toEqual(s.context);
    const next = [workerEvents.interrupted(1300), workerEvents.stopping(1400, 'rmprocs'), workerEvents.exited(1500, 0)];
    const a = run(workerMachine, next, s);
    const b = run(workerMachine, next, restored);
    expect(persistable(b)).toEqual(persistable(a));

    const r = run(refMachine, [refEvents.created(1, { owner: 2, creator: 1, task: 'm#f' })]);
    const rr = restoreSnapshot(refMachine, JSON.parse(JSON.stringify(persistable(r))));
    expect(run(refMachine, [refEvents.ready(2, 0)], rr).value).toBe('ready');
  });

  it('fold - replays recorded envelopes to the same state and timeline', () => {
    const events = [reg, workerEvents.ready(1100, 1), workerEvents.stopping(1200, 'rmprocs'), workerEvents.exited(1300, 0)];
    const envs = record(workerMachine, 'worker', '2', events);
    const result = fold(workerMachine, envs);
    expect(result.mismatch).toBeNull();
    expect(result.snapshot.value).toBe('exited');
    expect(result.timeline.map((t) => `${t.from}->${t.to}`)).toEqual([
      'unregistered->registered', 'registered->ready', 'ready->stopping', 'stopping->exited',
    ]);
    // From a snapshot in the middle, folding the rest gives the same end.
    const mid = fold(workerMachine, envs.slice(0, 2)).snapshot;
    const fromMid = fold(workerMachine, envs.slice(2), restoreSnapshot(workerMachine, JSON.parse(JSON.stringify(persistable(mid)))));
    expect(persistable(fromMid.snapshot)).toEqual(persistable(result.snapshot));
  });

  it('fold - detects a recorded state that replay does not reproduce, and names the event', () => {
    const envs = record(refMachine, 'ref', '2-x-1', [refEvents.created(1, { owner: 2, creator: 1, task: 'm#f' }), refEvents.ready(2, 0), refEvents.freed(3, 1)]);
    envs[1] = { ...envs[1]!, to: 'failed' };
    const result = fold(refMachine, envs);
    expect(result.mismatch).toMatchObject({ index: 1, expectedTo: 'failed', replayedTo: 'ready', accepted: true });
    expect(result.mismatch!.envelope.type).toBe('ref.ready');
    expect(result.snapshot.value).toBe('running');
    expect(result.timeline).toHaveLength(1);
  });

  it('fold - detects an event the machine would not accept', () => {
    const envs: Envelope[] = [
      { v: 1, kind: 'ref', id: '2-x-2', seq: 1, at: 1, type: 'ref.ready', from: null, to: 'ready', data: { bytes: 0 } },
    ];
    const result = fold(refMachine, envs);
    expect(result.mismatch).toMatchObject({ index: 0, accepted: false, replayedTo: 'unborn' });
  });

  it('machines are pure: the same events give the same states every time', () => {
    const events = [reg, workerEvents.ready(1100, 1), workerEvents.lost(1200, 'gone')];
    const a = persistable(run(workerMachine, events));
    const b = persistable(run(workerMachine, events));
    expect(b).toEqual(a);
    expect(machineFor('worker')).toBe(workerMachine);
    expect(machineFor('ref')).toBe(refMachine);
    expect(stateString({ running: 'retrying' })).toBe('running.retrying');
  });
});
