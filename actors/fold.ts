/**
 * Folding events through a machine with xstate's pure `transition()`: the replay primitive.
 * The actor host uses it to compute each transition before persisting it; replay uses it to
 * rebuild state from the log.
 */
import { isDeepStrictEqual } from 'node:util';
import { assign, createActor, initialTransition } from 'xstate';
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
function xstateTransition(machine: AnyStateMachine, snapshot: AnyMachineSnapshot, event: ActorEvent): AnyMachineSnapshot {
  return machine.transition(snapshot as never, event as never, scopeOf(machine) as never) as AnyMachineSnapshot;
}

interface Scope { self: { system: unknown }; system: unknown }
function scopeOf(machine: AnyStateMachine): Scope {
  let scope = scopes.get(machine);
  if (!scope) {
    const self = createActor(machine);
    scope = {
      self, defer: () => undefined, id: '', logger: () => undefined, sessionId: '', stopChild: () => undefined,
      system: self.system, emit: () => undefined, actionExecutor: () => undefined,
    } as Scope;
    scopes.set(machine, scope);
  }
  return scope;
}
const scopes = new WeakMap<AnyStateMachine, Scope>();

/*
 * Transition plans: the exact shortcut through xstate's macrostep.
 *
 * xstate spends ~9 us per event on bookkeeping (exit and entry sets, a new snapshot per assign,
 * eventless and internal-event loops) whose outcome, for a machine of the plain kind below, is
 * fixed by the state the event leaves and the transition it takes. The transition is still chosen
 * by xstate itself (`StateNode.next`, which evaluates the guards) unless no guard can matter, so
 * only the bookkeeping is memoised; the context is still computed per event, by running the
 * transition's assigns the way xstate's `resolveAssign` does.
 *
 * A machine qualifies when none of its states is parallel or history, none has entry or exit
 * actions, invokes, `always` or `after` transitions, initial actions or an output, and final states
 * sit only at the top. Then a macrostep is one microstep: exit and entry run no actions, no event
 * is raised, and a top-level final state only sets `status: 'done'`. A transition qualifies when
 * its actions are `assign`s or custom actions (which a pure transition never runs).
 *
 * A plan is learnt from xstate: the first time a (state, transition) pair is taken, xstate's
 * snapshot is computed as well and must equal the planned one field by field, or that pair stays
 * on xstate for good. test/fold-plan.test.ts checks every step of the recorded logs both ways.
 */
interface AnyStateNode {
  type: string;
  parent?: AnyStateNode;
  states: Record<string, AnyStateNode>;
  entry: unknown[];
  exit: unknown[];
  invoke: unknown[];
  always?: unknown[];
  output?: unknown;
  initial?: { actions: unknown[] };
  config: { after?: unknown };
  transitions: Map<string, Transition[]>;
  next(snapshot: AnyMachineSnapshot, event: ActorEvent): Transition[] | undefined;
}
interface Transition { actions: unknown[]; guard?: unknown }
type Assigner = (args: unknown, params: unknown) => unknown;
interface AssignStep { assignment: Assigner | Record<string, unknown>; params: unknown }
interface Plan {
  /** xstate hands back the very snapshot it was given (no assign, same states). */
  unchanged: boolean;
  assigns: AssignStep[];
  status: string;
  /** The states after the step; null when they are the ones before (xstate keeps the array). */
  nodes: AnyStateNode[] | null;
  value: unknown;
  tags: string[];
  scope: Scope;
  /** The snapshot methods xstate puts on every snapshot (shared functions). */
  methods: Pick<AnyMachineSnapshot, 'matches' | 'hasTag' | 'can' | 'getMeta' | 'toJSON'>;
}
type Snap = AnyMachineSnapshot & { _nodes: AnyStateNode[]; error: unknown; historyValue: unknown };

const ASSIGN_RESOLVE = (assign(() => ({})) as unknown as { resolve: unknown }).resolve;
const SLOW = 'slow' as const;
const plannable = new WeakMap<AnyStateMachine, boolean>();
const plans = new WeakMap<Transition, Map<AnyStateNode, Plan | typeof SLOW>>();

class SpawnInPlan extends Error {}
const noSpawn = (): never => {
  throw new SpawnInPlan('spawn inside an assign');
};

let lastMachine: AnyStateMachine | null = null;
let lastPlannable = false;

function isPlannable(machine: AnyStateMachine): boolean {
  if (machine === lastMachine) return lastPlannable;
  let ok = plannable.get(machine);
  if (ok === undefined) {
    const root = machine.root as unknown as AnyStateNode;
    const maxIterations = (machine as unknown as { options?: { maxIterations?: number } }).options?.maxIterations;
    const plain = (n: AnyStateNode): boolean =>
      (n.type === 'atomic' || n.type === 'compound' || n.type === 'final') &&
      !n.entry.length && !n.exit.length && !n.invoke.length && !n.always?.length && n.config.after === undefined &&
      (n.type !== 'final' || (n.parent === root && n.output === undefined)) &&
      (n.type !== 'compound' || !n.initial?.actions.length) &&
      Object.values(n.states).every(plain);
    ok = root.output === undefined && (maxIterations === undefined || maxIterations >= 1) && plain(root);
    plannable.set(machine, ok);
  }
  lastMachine = machine;
  lastPlannable = ok;
  return ok;
}

/**
 * Per leaf state and event type: the transition xstate always selects, when the first state from
 * the leaf up that has candidates for the type has an unguarded one first (and no wildcard
 * descriptor is involved); NONE when no state has candidates; null when guards decide.
 */
const NONE = 'none' as const;
const fixed = new WeakMap<AnyStateNode, Map<string, Transition | typeof NONE | null>>();

function fixedTransition(leaf: AnyStateNode, type: string): Transition | typeof NONE | null {
  let byType = fixed.get(leaf);
  if (!byType) fixed.set(leaf, (byType = new Map()));
  let f = byType.get(type);
  if (f === undefined) {
    f = NONE;
    for (let n: AnyStateNode | undefined = leaf; n; n = n.parent) {
      if ([...n.transitions.keys()].some((d) => d === '*' || d.endsWith('.*'))) {
        f = null;
        break;
      }
      const candidates = n.transitions.get(type);
      if (candidates?.length) {
        f = candidates[0]!.guard === undefined ? candidates[0]! : null;
        break;
      }
    }
    byType.set(type, f);
  }
  return f;
}

/** The atomic state of the last `selectTransition`. */
let selectedLeaf: AnyStateNode = null!;

/** The transition xstate's `transitionNode` selects: the first enabled one from the leaf up. */
function selectTransition(snapshot: Snap, event: ActorEvent): Transition | undefined {
  let leaf: AnyStateNode | undefined;
  for (const n of snapshot._nodes) if (n.type === 'atomic' || n.type === 'final') leaf = n;
  selectedLeaf = leaf!;
  const f = fixedTransition(leaf!, event.type);
  if (f === NONE) return undefined;
  if (f) return f;
  for (let n = leaf; n; n = n.parent) {
    const next = n.next(snapshot, event);
    if (next?.length) return next[0];
  }
  return undefined;
}

/** The actions of `t` as assign steps, or null when one is a builtin other than assign. */
function assignSteps(machine: AnyStateMachine, t: Transition): AssignStep[] | null {
  const steps: AssignStep[] = [];
  const impls = (machine as unknown as { implementations: { actions: Record<string, unknown> } }).implementations.actions;
  for (const a of t.actions) {
    const inline = typeof a === 'function';
    const impl = (inline ? a : impls[typeof a === 'string' ? a : (a as { type: string }).type]) as { resolve?: unknown; assignment?: AssignStep['assignment'] } | undefined;
    if (!impl || !('resolve' in impl)) continue;
    if (impl.resolve !== ASSIGN_RESOLVE) return null;
    const params = inline || typeof a === 'string' ? undefined : (a as { params?: unknown }).params;
    steps.push({ assignment: impl.assignment!, params });
  }
  return steps;
}

/** xstate's `resolveAssign`, in a row, without a snapshot per assign. */
function applyAssigns(steps: AssignStep[], context: unknown, event: ActorEvent, scope: Scope): unknown {
  let ctx = context as Record<string, unknown>;
  for (const { assignment, params: p } of steps) {
    if (!ctx) throw new SpawnInPlan('no context to assign to');
    const params = typeof p === 'function' ? (p as Assigner)({ context: ctx, event }, undefined) : p;
    const args = { context: ctx, event, spawn: noSpawn, self: scope.self, system: scope.system };
    let partial: Record<string, unknown> = {};
    if (typeof assignment === 'function') partial = assignment(args, params) as Record<string, unknown>;
    else for (const key of Object.keys(assignment)) {
      const v = assignment[key];
      partial[key] = typeof v === 'function' ? (v as Assigner)(args, params) : v;
    }
    ctx = Object.assign({}, ctx, partial);
  }
  return ctx;
}

function copyValue(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) out[k] = copyValue((v as Record<string, unknown>)[k]);
  return out;
}

/** The snapshot xstate's `createMachineSnapshot` would build, with its fields in its order. */
function planned(plan: Plan, s: Snap, context: unknown): AnyMachineSnapshot {
  const done = plan.status === 'done';
  return {
    status: plan.status, output: done ? undefined : s.output, error: s.error, machine: s.machine, context,
    _nodes: plan.nodes ? plan.nodes.slice() : s._nodes, value: copyValue(plan.value), tags: new Set(plan.tags),
    children: s.children, historyValue: s.historyValue, ...plan.methods,
  } as unknown as AnyMachineSnapshot;
}

/** Learns the plan of (leaf, t) from xstate's own result `r`; SLOW when they would differ. */
function learn(machine: AnyStateMachine, s: Snap, event: ActorEvent, t: Transition, r: Snap): Plan | typeof SLOW {
  const assigns = assignSteps(machine, t);
  if (!assigns) return SLOW;
  const plan: Plan = {
    unchanged: r === s, assigns, status: r.status, nodes: r._nodes === s._nodes ? null : (r._nodes.slice() as unknown as AnyStateNode[]), value: copyValue(r.value),
    tags: [...r.tags], scope: scopeOf(machine), methods: { matches: r.matches, hasTag: r.hasTag, can: r.can, getMeta: r.getMeta, toJSON: r.toJSON },
  };
  if (plan.unchanged) return assigns.length === 0 ? plan : SLOW;
  if (r.status !== 'active' && r.status !== 'done') return SLOW;
  try {
    const mine = planned(plan, s, applyAssigns(assigns, s.context, event, plan.scope)) as Snap;
    const same = Object.keys(mine).join() === Object.keys(r).join() && isDeepStrictEqual(mine, r) && mine.tags.size === r.tags.size;
    return same ? plan : SLOW;
  } catch {
    return SLOW;
  }
}

/**
 * `COLONY_FOLD_CHECK=1` computes every planned step with xstate as well and throws where they
 * differ: run any test or replay under it to check the plans against plain xstate.
 */
const CHECK = process.env.COLONY_FOLD_CHECK === '1';
let planUsed = false;

function pureTransition(machine: AnyStateMachine, snapshot: AnyMachineSnapshot, event: ActorEvent): AnyMachineSnapshot {
  if (!CHECK) return plannedTransition(machine, snapshot, event);
  planUsed = false;
  const mine = plannedTransition(machine, snapshot, event);
  if (!planUsed) return mine;
  const theirs = xstateTransition(machine, snapshot, event);
  const same = mine === snapshot ? theirs === snapshot
    : theirs !== snapshot && Object.keys(mine).join() === Object.keys(theirs).join() && isDeepStrictEqual(mine, theirs);
  if (!same) throw new Error(`COLONY_FOLD_CHECK: the planned ${event.type} from ${stateString(snapshot.value)} differs from xstate's`);
  return mine;
}

/** One step: through a plan when there is one, else through xstate (and learn a plan). */
function plannedTransition(machine: AnyStateMachine, snapshot: AnyMachineSnapshot, event: ActorEvent): AnyMachineSnapshot {
  if (!isPlannable(machine) || event.type.startsWith('xstate.')) return xstateTransition(machine, snapshot, event);
  const s = snapshot as Snap;
  const t = selectTransition(s, event);
  const leaf = selectedLeaf;
  // No enabled transition: xstate's macrostep returns the snapshot it was given.
  if (!t) return snapshot;
  let byLeaf = plans.get(t);
  if (!byLeaf) plans.set(t, (byLeaf = new Map()));
  const plan = byLeaf.get(leaf);
  if (plan === undefined) {
    const r = xstateTransition(machine, snapshot, event);
    byLeaf.set(leaf, learn(machine, s, event, t, r as Snap));
    return r;
  }
  if (plan === SLOW) return xstateTransition(machine, snapshot, event);
  if (plan.unchanged) {
    planUsed = true;
    return snapshot;
  }
  let context: unknown;
  try {
    context = applyAssigns(plan.assigns, s.context, event, plan.scope);
  } catch (e) {
    // A spawn in an assign: this pair goes through xstate from now on. Other errors are the
    // assign's own, which xstate would throw as well.
    if (!(e instanceof SpawnInPlan)) throw e;
    byLeaf.set(leaf, SLOW);
    return xstateTransition(machine, snapshot, event);
  }
  planUsed = true;
  return planned(plan, s, context);
}

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
  const timeline: FoldResult['timeline'] = [];
  const r = foldEach(machine, envelopes, start, (envelope, from, to) => timeline.push({ envelope, from, to }));
  return { snapshot: r.snapshot, timeline, mismatch: r.mismatch };
}

/**
 * `fold` without the timeline: `each` sees every event that replayed to its recorded state. Replay
 * builds its own timeline through it rather than a second one per event.
 */
export function foldEach(
  machine: AnyStateMachine, envelopes: Iterable<Envelope>, start: AnyMachineSnapshot | undefined,
  each: (envelope: Envelope, from: string, to: string) => void,
): { snapshot: AnyMachineSnapshot; events: number; mismatch: FoldMismatch | null } {
  let snapshot = start ?? initialSnapshot(machine);
  let from = stateString(snapshot.value);
  let index = 0;
  for (const env of envelopes) {
    // foldStep, inlined: `from` is the previous `to`, and no StepResult per event.
    const next = snapshot.status === 'active' ? pureTransition(machine, snapshot, eventOf(env)) : snapshot;
    const accepted = next !== snapshot;
    const to = accepted ? stateString(next.value) : from;
    if (!accepted || to !== env.to) {
      return { snapshot, events: index, mismatch: { index, envelope: env, expectedTo: env.to, replayedTo: to, accepted } };
    }
    each(env, from, to);
    snapshot = next;
    from = to;
    index++;
  }
  return { snapshot, events: index, mismatch: null };
}
