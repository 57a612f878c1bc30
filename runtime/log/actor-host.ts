/**
 * The actor host: restore -> run -> persist.
 *
 * A hosted actor computes each transition with the pure machine, then appends it to the journal
 * behind the actor's previous append (one chain per actor keeps its events in order and lets
 * `expect.lastSubjectSequence` name the previous event exactly). Different actors pipeline.
 */
import type { AnyMachineSnapshot, AnyStateMachine } from 'xstate';
import { ENVELOPE_VERSION, fold, foldStep, initialSnapshot, machineFor, persistable, restoreSnapshot } from '../../actors/index.ts';
import type { ActorEvent, ActorKind, Envelope } from '../../actors/index.ts';
import { DeterminismViolationError, JournalConflictError } from '../transport/errors.ts';
import type { Journal } from './journal.ts';

export interface ActorHostOptions {
  /** Writes a KV snapshot every N events of an actor (0: never). @default { worker: 1, pool: 1 }, others 0 */
  snapshotEvery?: Partial<Record<ActorKind, number>>;
}

export const DEFAULT_SNAPSHOT_EVERY: Partial<Record<ActorKind, number>> = { worker: 1, pool: 1 };

export class HostedActor {
  private tail: Promise<unknown> = Promise.resolve();
  private failure: Error | null = null;

  constructor(
    private readonly host: ActorHost,
    readonly kind: ActorKind,
    readonly id: string,
    readonly machine: AnyStateMachine,
    public snapshot: AnyMachineSnapshot,
    /** Events applied so far (actor-local sequence). */
    public seq: number,
    /** Stream sequence of the last persisted event (0: none). */
    public streamSeq: number,
  ) {}

  get state(): string {
    const v = this.snapshot.value;
    return typeof v === 'string' ? v : JSON.stringify(v);
  }

  get context(): Record<string, unknown> {
    return this.snapshot.context as Record<string, unknown>;
  }

  get done(): boolean {
    return this.snapshot.status !== 'active';
  }

  /** Whether the machine accepts `event` now. */
  accepts(event: ActorEvent): boolean {
    return foldStep(this.machine, this.snapshot, event).accepted;
  }

  /**
   * Applies `event` and queues its append. Returns the envelope at once; `durable()` awaits the
   * append. Throws if the machine does not accept the event in its current state.
   */
  send(event: ActorEvent): Envelope {
    if (this.failure) throw this.failure;
    const step = foldStep(this.machine, this.snapshot, event);
    if (!step.accepted) {
      throw new JournalConflictError(`${this.kind}/${this.id} in state '${step.from}' does not accept '${event.type}'`);
    }
    this.snapshot = step.snapshot;
    this.seq += 1;
    const env: Envelope = {
      v: ENVELOPE_VERSION, kind: this.kind, id: this.id, seq: this.seq, at: event.at,
      type: event.type, from: this.seq === 1 ? null : step.from, to: step.to, data: event.data as Record<string, unknown>,
    };
    const every = this.host.snapshotEvery(this.kind);
    const snapshotNow = every > 0 && (this.seq % every === 0 || this.done);
    const persistedSnap = snapshotNow ? persistable(this.snapshot) : null;
    this.tail = this.host.journal.track(
      this.tail.then(async () => {
        const streamSeq = await this.host.journal.append(env, this.streamSeq, this.host.writer);
        this.streamSeq = streamSeq;
        if (persistedSnap) {
          await this.host.journal.putSnapshot(this.kind, this.id, {
            kind: this.kind, id: this.id, ...persistedSnap, seq: env.seq, streamSeq, at: env.at, type: env.type,
          });
        }
      }).catch((e) => {
        this.failure ??= e as Error;
        throw e;
      }),
    );
    // The failure reaches whoever awaits durable(), the next send() and the journal's flush();
    // nobody need be waiting on it now, and the process must not die of an unhandled rejection.
    this.tail.catch(() => undefined);
    return env;
  }

  /** Resolves when every event sent so far is stored. */
  async durable(): Promise<void> {
    await this.tail;
  }
}

export class ActorHost {
  private readonly every: Partial<Record<ActorKind, number>>;

  /**
   * @param writer a name unique to this process run, part of every msgID
   */
  constructor(readonly journal: Journal, readonly writer: string, opts: ActorHostOptions = {}) {
    this.every = { ...DEFAULT_SNAPSHOT_EVERY, ...opts.snapshotEvery };
  }

  /** The whole cadence, to hand to other writers of the cluster. */
  snapshotPolicy(): Partial<Record<ActorKind, number>> {
    return { ...this.every };
  }

  snapshotEvery(kind: ActorKind): number {
    return this.every[kind] ?? 0;
  }

  /** A new actor: its first append expects an empty subject, so an id is never reused. */
  create(kind: ActorKind, id: string, machine: AnyStateMachine = machineFor(kind)): HostedActor {
    return new HostedActor(this, kind, id, machine, initialSnapshot(machine), 0, 0);
  }

  /**
   * A new actor whose first event is stored now, outside the journal's tracking: when the id is
   * taken (another driver of the cluster created it first) this throws JournalConflictError and
   * leaves no lost append behind, so the caller can take another id.
   */
  async createFirst(kind: ActorKind, id: string, event: ActorEvent): Promise<HostedActor> {
    const machine = machineFor(kind);
    const step = foldStep(machine, initialSnapshot(machine), event);
    if (!step.accepted) throw new JournalConflictError(`${kind}/${id}: a new actor does not accept '${event.type}'`);
    const env: Envelope = {
      v: ENVELOPE_VERSION, kind, id, seq: 1, at: event.at, type: event.type, from: null, to: step.to, data: event.data as Record<string, unknown>,
    };
    const streamSeq = await this.journal.append(env, 0, this.writer);
    if (this.snapshotEvery(kind) > 0) {
      await this.journal.putSnapshot(kind, id, { kind, id, ...persistable(step.snapshot), seq: 1, streamSeq, at: env.at, type: env.type });
    }
    return new HostedActor(this, kind, id, machine, step.snapshot, 1, streamSeq);
  }

  /**
   * Rebuilds an actor from its KV snapshot plus the events stored after it (or from all its
   * events when there is no snapshot). With `verify`, every recorded `to` is checked.
   */
  async restore(kind: ActorKind, id: string, opts: { verify?: boolean; useSnapshot?: boolean } = {}): Promise<HostedActor> {
    const machine = machineFor(kind);
    const snap = opts.useSnapshot === false ? null : await this.journal.snapshot(kind, id);
    let start = initialSnapshot(machine);
    let seq = 0;
    let streamSeq = 0;
    if (snap) {
      start = restoreSnapshot(machine, snap);
      seq = snap.seq;
      streamSeq = snap.streamSeq;
    }
    const tail = await this.journal.read(`${kind}.${id}`, streamSeq ? { fromSeq: streamSeq + 1 } : {});
    const result = fold(machine, tail, start);
    if (result.mismatch && (opts.verify ?? true)) {
      const m = result.mismatch;
      throw new DeterminismViolationError({
        kind, id, seq: m.envelope.seq, type: m.envelope.type, recorded: m.expectedTo, replayed: m.replayedTo, accepted: m.accepted,
      });
    }
    const last = tail.at(-1);
    if (last) {
      seq = last.seq;
      streamSeq = last.streamSeq ?? streamSeq;
    }
    return new HostedActor(this, kind, id, machine, result.snapshot, seq, streamSeq);
  }

  /**
   * Appends an event to an actor this process does not host (for example `ref.lost` for a value
   * whose owner died), chained after whatever is stored last.
   */
  async appendForeign(kind: ActorKind, id: string, event: ActorEvent): Promise<Envelope | null> {
    const actor = await this.restore(kind, id, { verify: false });
    if (!actor.accepts(event)) return null;
    const env = actor.send(event);
    await actor.durable();
    return env;
  }
}

