/**
 * Transition plans (actors/fold.ts) against plain xstate: every step of the recorded logs and of
 * random walks through every registered machine must give xstate's snapshot, field for field.
 */
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { assign, createMachine, setup, transition } from 'xstate';
import type { AnyMachineSnapshot, AnyStateMachine } from 'xstate';
import { eventOf, foldStep, initialSnapshot, machineFor, machines, stateString } from '../actors/index.ts';
import type { ActorEvent, ActorKind } from '../actors/index.ts';
import { readJsonl } from '../runtime/log/replay.ts';

const FIXTURE = new URL('./fixtures/logs/core-lifecycle.jsonl', import.meta.url).pathname;

/** xstate's own pure transition, or the error it throws. */
function reference(machine: AnyStateMachine, s: AnyMachineSnapshot, e: ActorEvent): AnyMachineSnapshot | Error {
  try {
    return transition(machine, s, e as never)[0] as AnyMachineSnapshot;
  } catch (err) {
    return err as Error;
  }
}

/** One fold step, checked against xstate; returns the snapshot to go on from. */
function checkedStep(machine: AnyStateMachine, s: AnyMachineSnapshot, e: ActorEvent): AnyMachineSnapshot {
  const want = reference(machine, s, e);
  if (want instanceof Error) {
    expect(() => foldStep(machine, s, e)).toThrow(want.message);
    return s;
  }
  const step = foldStep(machine, s, e);
  const where = `${e.type} from ${stateString(s.value)}`;
  // xstate hands back the same snapshot when nothing happens, and foldStep calls that refused.
  expect(step.accepted, where).toBe(want !== s && s.status === 'active');
  if (!step.accepted) return s;
  expect(Object.keys(step.snapshot), where).toEqual(Object.keys(want));
  expect(isDeepStrictEqual(step.snapshot, want), where).toBe(true);
  return step.snapshot;
}

/** A small seeded generator, so a failing walk can be rerun. */
function rng(seed: number): () => number {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

/** Event data with every field some machine reads, in values that steer guards both ways. */
function data(r: () => number): Record<string, unknown> {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  return {
    pid: pick([2, 3]), owner: 2, creator: 1, task: pick([null, 't#1']), bytes: pick([0, 8]), from: 1, by: 1, code: pick([0, 1, null]),
    error: pick([null, { name: 'Error', message: 'boom' }]), reason: 'x', lostPid: pick([2, 3]), dims: [2, 2], dist: [1, 2], procs: [2, 3],
    done: pick([0, 5]), items: pick([5, 10]), reads: 1, readElements: 4, writes: 0, type: pick(['Float64Array', 'Int32Array']),
    host: 'vm', ospid: 4242, launchToken: 'tok', manager: 'local', modules: 1, workers: [2, 3], batchSize: 'auto', retries: 1,
    launch: 'a/1', count: 2, command: ['qsub'], jobId: '5', units: ['5.1', '5.2'], unit: pick(['5.1', '5.2']), message: 'm', stderr: '',
  };
}

describe('transition plans replay exactly as xstate', () => {
  it('every step of the recorded fixture log', async () => {
    const snaps = new Map<string, AnyMachineSnapshot>();
    for (const env of await readJsonl(FIXTURE)) {
      const machine = machineFor(env.kind);
      const key = `${env.kind}/${env.id}`;
      const next = checkedStep(machine, snaps.get(key) ?? initialSnapshot(machine), eventOf(env));
      expect(stateString(next.value)).toBe(env.to);
      snaps.set(key, next);
    }
  });

  for (const kind of Object.keys(machines) as ActorKind[]) {
    it(`random walks through the ${kind} machine`, () => {
      const machine = machineFor(kind);
      const types = [...(machine.root as unknown as { events: string[] }).events];
      const r = rng(kind.length * 7919);
      let s = initialSnapshot(machine);
      let accepted = 0;
      for (let i = 0; i < 3000; i++) {
        // Restart at the initial state now and then, and when the walk has ended in a final state.
        if (s.status !== 'active' || r() < 0.05) s = initialSnapshot(machine);
        const next = checkedStep(machine, s, { type: types[Math.floor(r() * types.length)]!, at: i, data: data(r) });
        if (next !== s) accepted++;
        s = next;
      }
      expect(accepted).toBeGreaterThan(100);
    });
  }

  it('a machine with entry actions, nested states and eventless transitions goes through xstate', () => {
    const machine = createMachine({
      id: 'n', initial: 'a', context: { n: 0 },
      states: {
        a: { on: { go: { target: 'b', actions: assign({ n: ({ context }) => context.n + 1 }) } } },
        b: {
          initial: 'x', entry: assign({ n: ({ context }) => context.n * 10 }),
          states: { x: { always: { guard: ({ context }) => context.n > 50, target: 'y' }, on: { go: 'y' } }, y: { type: 'final' } },
          on: { back: '#n.a' },
        },
      },
    });
    let s = initialSnapshot(machine);
    for (const type of ['go', 'back', 'go', 'go', 'back', 'go', 'back', 'go', 'go']) s = checkedStep(machine, s, { type, at: 0, data: {} });
    expect(s.value).toEqual({ b: 'y' });
  });

  it('wildcard and guarded transitions on parent states are selected as xstate selects them', () => {
    const machine = createMachine({
      id: 'w', initial: 'a', context: { n: 0 },
      on: { '*': { actions: assign({ n: () => -1 }) }, 'w.b': { target: '.b' } },
      states: {
        a: { on: { 'w.*': [{ guard: ({ context }) => context.n > 1, target: 'b' }, { actions: assign({ n: ({ context }) => context.n + 1 }) }], 'w.x': 'b' } },
        b: { on: { 'w.a': 'a', 'w.inc': { actions: assign({ n: ({ context }) => context.n + 10 }) } } },
      },
    });
    let s = initialSnapshot(machine);
    for (const type of ['w.y', 'w.y', 'w.y', 'w.inc', 'w.a', 'w.x', 'other', 'w.a', 'w.y', 'w.b', 'w.inc', 'w.zz', 'w.a', 'w.y']) {
      s = checkedStep(machine, s, { type, at: 0, data: {} });
    }
  });

  it('a transition whose assign spawns, or that has no target, matches xstate too', () => {
    const child = createMachine({ id: 'c', initial: 'i', states: { i: {} } });
    const machine = setup({ actors: { child }, actions: { custom: () => undefined } }).createMachine({
      id: 'p', initial: 'a', context: { n: 0, kids: [] as unknown[] },
      states: {
        a: {
          on: {
            spawn: { actions: assign({ kids: ({ spawn, context }) => [...context.kids, spawn('child')] }) },
            inc: { actions: [assign({ n: ({ context }) => context.n + 1 }), { type: 'custom', params: { x: 1 } }] },
            nothing: {},
            stay: { target: 'a', actions: assign(({ event }) => ({ n: (event as unknown as ActorEvent).at })) },
          },
        },
      },
    });
    let s = initialSnapshot(machine);
    for (const type of ['inc', 'inc', 'nothing', 'stay', 'inc', 'nothing', 'stay', 'inc']) s = checkedStep(machine, s, { type, at: 7, data: {} });
    expect(s.context).toMatchObject({ n: 8 });
    // The spawn fails the plan, the step goes to xstate: same children as xstate's own step.
    const spawned = foldStep(machine, s, { type: 'spawn', at: 8, data: {} }).snapshot;
    expect(Object.keys(spawned.children)).toHaveLength(1);
    expect(spawned.context.kids).toHaveLength(1);
  });
});
