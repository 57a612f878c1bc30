/**
 * Folding events through a machine with xstate's pure `transition()`: the replay primitive.
 * The actor host uses it to compute each transition before persisting it; replay uses it to
 * rebuild state from the log.
 */
import { createActor, initialTransition } from 'xstate';
import type { AnyMachineSnapshot, AnyStateMachine } from 'xstate';
import type { ActorEvent, Envelope } from './events.ts';
import { eventOf, stateString } from './events.ts';

export interface StepResult {
  snapshot: AnyMachineSnapshot;
  from: string;
  to: string;
  /** False when the machine has no transition for the event in its current state. */
  accepted: boolean;
}

/** The machine's start state, with no event applied. */
export function initialSnapshot(machine: AnyStateMachine): AnyMachineSnapshot {
  // Snapshots are immutable, so one initial snapshot per machine serves every new actor.
  let s = initials.get(machine);
  if (!s) initials.set(machine, (s = initialTransition(machine)[0] as AnyMachineSnapshot));
  return s;
}
const initials = new WeakMap<AnyStateMachine, AnyMachineSnapshot>();

/** Rebuilds a snapshot from a persisted `{ value, context }`. */
export function restoreSnapshot(machine: AnyStateMachine, persisted: { value: unknown; context: unknown }): AnyMachineSnapshot {
  return machine.resolveState({ value: persisted.value as never, context: persisted.context as never }) as AnyMachineSnapshot;
}

/** What a snapshot persists as: plain data that survives msgpack and JSON. */
export function persistable(snapshot: AnyMachineSnapshot): { value: unknown; context: unknown; status: string } {
  return { value: snapshot.value, context: snapshot.context, status: snapshot.status };
}

/**
 * xstate's pure `transition(logic, snapshot, event)` builds a throwaway actor (and so an initial
 * snapshot) on every call, which made replay spend most of its time creating actors. This calls
 * the same `logic.transition` with an inert scope built once per machine. Our machines spawn no
 * children and their actions are all `assign`s, applied inside the transition.
 */
function pureTransition(machine: AnyStateMachine, snapshot: AnyMachineSnapshot, event: ActorEvent): AnyMachineSnapshot {
  let scope = scopes.get(machine);
  if (!scope) {
    const self = createActor(machine);
    scope = {
      self, defer: () => undefined, id: '', logger: () => undefined, sessionId: '', stopChild: () => undefined,
      system: self.system, emit: () => undefined, actionExecutor: () => undefined,
    };
    scopes.set(machine, scope);
  }
  return machine.transition(snapshot as never, event as never, scope as never) as AnyMachineSnapshot;
}
const scopes = new WeakMap<AnyStateMachine, object>();

/** Applies one event. The snapshot passed in is never mutated. */
export function foldStep(machine: AnyStateMachine, snapshot: AnyMachineSnapshot, event: ActorEvent): StepResult {
  const from = stateString(snapshot.value);
  if (snapshot.status !== 'active') return { snapshot, from, to: from, accepted: false };
  const nextSnap = pureTransition(machine, snapshot, event);
  // xstate returns the very same snapshot when no transition is enabled for the event.
  if (nextSnap === snapshot) return { snapshot, from, to: from, accepted: false };
  return { snapshot: nextSnap, from, to: stateString(nextSnap.value), accepted: true };
}

export interface FoldMismatch {
  index: number;
  envelope: Envelope;
  expectedTo: string;
  replayedTo: string;
  accepted: boolean;
}

export interface FoldResult {
  snapshot: AnyMachineSnapshot;
  timeline: { envelope: Envelope; from: string; to: string }[];
  /** The first event whose recorded `to` differs from the replayed state, if any. */
  mismatch: FoldMismatch | null;
}

/**
 * Folds envelopes in order, starting from `start` (a restored snapshot) or the initial state.
 * It stops at the first mismatch between the recorded and the replayed state.
 */
export function fold(machine: AnyStateMachine, envelopes: Iterable<Envelope>, start?: AnyMachineSnapshot): FoldResult {
  let snapshot = start ?? initialSnapshot(machine);
  const timeline: FoldResult['timeline'] = [];
  let index = 0;
  for (const env of envelopes) {
    const step = foldStep(machine, snapshot, eventOf(env));
    if (!step.accepted || step.to !== env.to) {
      return { snapshot, timeline, mismatch: { index, envelope: env, expectedTo: env.to, replayedTo: step.to, accepted: step.accepted } };
    }
    snapshot = step.snapshot;
    timeline.push({ envelope: env, from: step.from, to: step.to });
    index++;
  }
  return { snapshot, timeline, mismatch: null };
}
