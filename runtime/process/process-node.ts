/**
 * A process of the cluster, driver or worker: it owns values (one slot per RemoteRef it owns),
 * serves calls on `colony.<c>.call.<pid>` and value operations on `colony.<c>.ref.<pid>`, and is
 * the client side of both for the handles it holds.
 */
import vm from 'node:vm';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { refEvents } from '../../actors/index.ts';
import type { ErrorData } from '../../actors/index.ts';
import type { ActorHost, HostedActor } from '../log/actor-host.ts';
import { BlobStore, takeBlob } from '../transport/blob.ts';
import type { BlobMarker } from '../transport/blob.ts';
import { decode, encode, functionError } from '../transport/codec.ts';
import { decodeFrame, encodeParts, frameOf, unescapeInline } from '../transport/frame.ts';
import type { RefBinder } from '../transport/codec.ts';
import { InterruptException, InvalidArgumentError, ProcessExitedError, TaskNotFoundError, fromErrorData, toErrorData } from '../transport/errors.ts';
import { RemoteRef } from './remote-ref.ts';
import type { RefClient } from './remote-ref.ts';
import { isEmptyRefId, ownerOf } from './remote-ref.ts';
import { Requester } from '../transport/requester.ts';
import { subjects } from '../transport/subjects.ts';
import type { Subjects } from '../transport/subjects.ts';
import { lookupTask, parseTaskKey } from './task.ts';
import { SpanRecorder } from './span-recorder.ts';

/** Reads a value after an await, so the engine keeps it until then (a compare it cannot drop). */
let sink: unknown;
function keepAlive(v: unknown): void {
  if (v === sink) sink = undefined;
}

/** A call as it travels to `colony.<c>.call.<pid>`. */
export interface CallRequest {
  op: 'call';
  task: string;
  args: unknown[];
  /** Keep the result on the owner under this ref id (remotecall); absent: reply with it. */
  ref?: string;
  from: number;
}

/** Reply to a call or a value operation. */
export interface Reply {
  ok?: unknown;
  err?: ErrorData;
  done?: boolean;
  ready?: boolean;
}

interface Slot {
  id: string;
  state: 'running' | 'empty' | 'ready' | 'failed';
  value?: unknown;
  error?: ErrorData;
  bytes: number;
  /** Null while a fetch waits for a call that has not arrived yet (its args are still in transit). */
  actor: HostedActor | null;
  waiters: (() => void)[];
}

/**
 * Sync tasks that ran longer than this (on their last call, guarded or not) run under a SIGINT
 * watchdog, so interrupt() stops them. The first call of a task is always guarded. The watchdog
 * costs ~50 us a call, so fast tasks run without it.
 */
export const GUARD_AFTER_MS = 2;
/** A served call's reply is kept this long for repeats of the call (see Requester `resend`). */
const CALL_MEMORY_MS = 60_000;
/** ...within this many bytes of replies in all. */
const CALL_MEMORY_BYTES = 64 * 1024 * 1024;
/** Room left in a message for headers and framing. */
const FRAME_ROOM = 16 * 1024;

const guardScript = new vm.Script('globalThis.__colonyRunGuarded()');

export interface ProcessNodeOptions {
  nc: NatsConnection;
  name: string;
  pid: number;
  host: ActorHost;
  /** Unique per process run; part of ref ids and msgIDs. */
  nonce: string;
  /** Run long synchronous tasks under a SIGINT watchdog (workers). @default false */
  guardSync?: boolean;
}

export class ProcessNode implements RefClient, RefBinder {
  readonly pid: number;
  readonly nc: NatsConnection;
  readonly s: Subjects;
  readonly host: ActorHost;
  readonly nonce: string;
  readonly requester: Requester;
  readonly blobs: BlobStore;
  /** The spans of the tasks this process runs, published for the dashboard. */
  readonly spans: SpanRecorder;
  private readonly maxInline: number;
  private readonly chunk: number;
  private readonly slots = new Map<string, Slot>();
  private readonly freed = new Set<string>();
  private readonly handles = new Map<string, WeakRef<RemoteRef>>();
  /** Ids of refs this process created and has not freed, by owner. */
  private readonly created = new Map<number, Set<string>>();
  private readonly gc = new FinalizationRegistry<string>((id) => this.autoFree(id));
  private readonly interrupters = new Set<(e: Error) => void>();
  private readonly guarded = new Set<string>();
  private readonly seen = new Set<string>();
  private subs: Subscription[] = [];
  /** Calls served, by reply subject: running (no reply yet) or answered (kept for repeats). */
  private readonly calls = new Map<string, { at: number; reply: Uint8Array | null }>();
  private callBytes = 0;
  private counter = 0;
  private readonly guardSync: boolean;
  /** Tasks running now. */
  running = 0;
  /** Tasks finished since start. */
  completed = 0;
  /** Name of the task started last, while any runs. */
  currentTask: string | null = null;
  /** Called as each task ends (the heartbeat thread counts them). */
  onTaskEnd: (() => void) | null = null;
  /** Called when a SIGINT stopped a guarded synchronous task. */
  onInterrupted: (() => void) | null = null;
  /** Called before a task that may block this thread for long starts (heartbeats show it). */
  onLongTask: ((key: string) => void) | null = null;

  constructor(opts: ProcessNodeOptions) {
    this.pid = opts.pid;
    this.nc = opts.nc;
    this.s = subjects(opts.name);
    this.host = opts.host;
    this.nonce = opts.nonce;
    this.guardSync = opts.guardSync ?? false;
    this.requester = new Requester(opts.nc);
    this.blobs = new BlobStore(opts.pid, opts.nonce);
    this.spans = new SpanRecorder(opts.nc, this.s.span(opts.pid), opts.pid);
    const maxPayload = opts.nc.info?.max_payload ?? 1024 * 1024;
    this.chunk = Math.max(64 * 1024, maxPayload - FRAME_ROOM);
    this.maxInline = this.chunk;
  }

  /** Starts serving calls and value operations for this pid. */
  serve(): void {
    this.subs.push(
      this.nc.subscribe(this.s.call(this.pid), { callback: (_e, m) => void this.onCall(m) }),
      this.nc.subscribe(this.s.ref(this.pid), { callback: (_e, m) => void this.onRef(m) }),
    );
  }

  async stop(): Promise<void> {
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    this.spans.flush();
    this.requester.close(new ProcessExitedError(this.pid, 'this process is shutting down'));
    this.gc.unregister(this);
  }

  // ---------------------------------------------------------------- wire

  /** Encodes a message; above the payload limit the bytes become a blob pulled in chunks. */
  pack(obj: unknown): Uint8Array {
    let encoded: ReturnType<typeof encodeParts>;
    try {
      encoded = encodeParts(obj);
    } catch (e) {
      if (e instanceof InvalidArgumentError) throw e;
      const circular = e instanceof RangeError && /call stack/i.test(e.message);
      throw new InvalidArgumentError('value', circular
        ? 'the value cannot be sent: it contains a circular reference'
        : `the value cannot be sent: ${(e as Error).message}`);
    }
    const { body, parts } = encoded;
    if (!parts.length && body.length <= this.maxInline) return body;
    return encode({ $blob: this.blobs.offer(frameOf(body, parts), this.chunk) });
  }

  /** Decodes a message, pulling it first if it is a blob. Ref ids are bound to this process. */
  async unpack<T>(data: Uint8Array): Promise<T> {
    const obj = decode<T & { $blob?: BlobMarker }>(data, this);
    if (obj && typeof obj === 'object' && (obj as { $blob?: BlobMarker }).$blob) {
      const m = (obj as { $blob: BlobMarker }).$blob;
      const bytes = await takeBlob(this.requester, this.s.ref(m.holder), m);
      return decodeFrame<T>(bytes, this);
    }
    return unescapeInline(obj);
  }

  private respond(msg: Msg, reply: Reply): Uint8Array | null {
    if (!msg.reply) return null;
    let data: Uint8Array;
    try {
      data = this.pack(reply);
    } catch (e) {
      const path = (e as { path?: (string | number)[] }).path;
      // The place is named from the result (`result.cb`), not from the reply around it.
      if (path?.[0] === 'ok') e = functionError(['result', ...path.slice(1)]);
      data = encode({ err: { ...toErrorData(e, this.pid), message: `the result could not be encoded: ${(e as Error).message}` } });
    }
    try {
      msg.respond(data);
    } catch {
      // The connection closed while the request ran: nobody can get the answer any more.
    }
    return data;
  }

  // ---------------------------------------------------------------- refs: handles

  /** A fresh ref id owned by `owner`. */
  newRefId(owner: number, empty = false): string {
    return `${owner}-${this.nonce}-${empty ? 'e' : ''}${++this.counter}`;
  }

  /** The canonical handle for `id` in this process. Handles this process created are freed when dropped. */
  refHandle(id: string): RemoteRef {
    const existing = this.handles.get(id)?.deref();
    if (existing) return existing;
    const ref = new RemoteRef(id, this);
    this.handles.set(id, new WeakRef(ref));
    if (id.includes(`-${this.nonce}-`)) {
      this.gc.register(ref, id, ref);
      let set = this.created.get(ref.where);
      if (!set) this.created.set(ref.where, (set = new Set()));
      set.add(id);
    }
    return ref;
  }

  /** Counts a ref made by an earlier driver as this process's own (a resumed driver). */
  adoptRef(id: string): void {
    const owner = Number.parseInt(id, 10);
    let set = this.created.get(owner);
    if (!set) this.created.set(owner, (set = new Set()));
    set.add(id);
  }

  /** Refs this process created on `owner` that are not freed. */
  refsOwnedBy(owner: number): string[] {
    return [...(this.created.get(owner) ?? [])];
  }

  private forget(id: string): void {
    this.handles.delete(id);
    this.created.get(Number.parseInt(id, 10))?.delete(id);
  }

  /** Waits for `op`, failing early if the call that computes the ref failed to reach its owner. */
  private withLaunch<T>(ref: RemoteRef, op: Promise<T>): Promise<T> {
    if (!ref.launch) return op;
    const failed = ref.launch.then(() => new Promise<never>(() => undefined));
    return Promise.race([op, failed]);
  }

  private autoFree(id: string): void {
    if (this.handles.get(id)?.deref()) return;
    this.forget(id);
    const owner = Number.parseInt(id, 10);
    if (owner === this.pid) void this.freeLocal(id, this.pid).catch(() => undefined);
    else if (!this.nc.isClosed()) this.requester.publishOnly(this.s.ref(owner), encode({ op: 'free', id, from: this.pid }));
  }

  // ---------------------------------------------------------------- refs: client side

  async refFetch(ref: RemoteRef): Promise<unknown> {
    let value: unknown;
    if (ref.where === this.pid) {
      value = await this.localValue(ref.id);
    } else {
      value = await this.withLaunch(ref, this.ask(ref.where, this.s.ref(ref.where), { op: 'fetch', id: ref.id, from: this.pid, call: !!ref.launch }));
    }
    ref.cached = { value };
    return value;
  }

  async refWait(ref: RemoteRef): Promise<void> {
    if (ref.where === this.pid) {
      const slot = this.slotFor(ref.id);
      await this.settled(slot);
      await slot.actor?.durable();
      if (slot.state === 'failed') throw fromErrorData(slot.error!, this.pid);
      return;
    }
    await this.withLaunch(ref, this.ask(ref.where, this.s.ref(ref.where), { op: 'wait', id: ref.id, from: this.pid, call: !!ref.launch }));
  }

  async refIsReady(ref: RemoteRef): Promise<boolean> {
    if (ref.where === this.pid) {
      const s = this.slots.get(ref.id);
      return !!s && (s.state === 'ready' || s.state === 'failed');
    }
    const reply = await this.requestReply(ref.where, this.s.ref(ref.where), { op: 'isready', id: ref.id, from: this.pid });
    if (reply.err) throw fromErrorData(reply.err, ref.where);
    return !!reply.ready;
  }

  async refPut(ref: RemoteRef, value: unknown): Promise<void> {
    if (ref.where === this.pid) {
      await this.putLocal(ref.id, value, this.pid);
      return;
    }
    await this.ask(ref.where, this.s.ref(ref.where), { op: 'put', id: ref.id, value, from: this.pid });
  }

  async refFree(ref: RemoteRef): Promise<void> {
    this.forget(ref.id);
    // Freed by hand: its collection later must not send a second free.
    this.gc.unregister(ref);
    if (ref.where === this.pid) {
      await this.freeLocal(ref.id, this.pid);
      return;
    }
    await this.ask(ref.where, this.s.ref(ref.where), { op: 'free', id: ref.id, from: this.pid });
  }

  /** Sends a request and returns `ok`, throwing the remote error if there is one. */
  async ask(pid: number, subject: string, payload: object): Promise<unknown> {
    const op = (payload as { op?: string }).op;
    const reply = await this.requestReply(pid, subject, payload, 0, op === 'fetch' || op === 'wait' || op === 'isready');
    if (reply.err) throw fromErrorData(reply.err, pid);
    return reply.ok;
  }

  /**
   * With `resend`, the request is published again while it waits (see Requester): for calls
   * (answered once, repeats from {@link ProcessNode.onCall}'s memory) and reads that may repeat.
   */
  async requestReply(pid: number, subject: string, payload: object, timeoutMs = 0, resend = false): Promise<Reply> {
    return this.sendPacked(pid, subject, this.pack(payload), payload, timeoutMs, resend);
  }

  /**
   * Sends encoded bytes and decodes the reply. `payload` is what they encode: holding it until the
   * reply keeps the RemoteRef handles inside it alive, so they are not freed while the callee uses them.
   */
  private async sendPacked(pid: number, subject: string, data: Uint8Array, payload: object, timeoutMs = 0, resend = false): Promise<Reply> {
    const msg = await this.requester.request(pid, subject, data, timeoutMs, { resend });
    keepAlive(payload);
    return this.unpack<Reply>(msg.data);
  }

  /**
   * Sends a call to `pid`. With `ref`, the result stays there under that id. Arguments that
   * cannot be sent (a function inside) throw here, synchronously, before anything is sent.
   */
  call(pid: number, taskKey: string, args: unknown[], ref?: string): Promise<Reply> {
    const req: CallRequest = { op: 'call', task: taskKey, args, from: this.pid };
    if (ref) req.ref = ref;
    if (pid === this.pid) return this.handleCall(req);
    return this.sendPacked(pid, this.s.call(pid), this.pack(req), req, 0, true);
  }

  // ---------------------------------------------------------------- refs: owner side

  /**
   * The slot of `id`. With `call`, the asker made a call that computes it: a fetch can overtake
   * a call whose arguments are still being pulled, so it waits in a placeholder the call adopts.
   */
  private slotFor(id: string, create = true, call = false): Slot {
    let slot = this.slots.get(id);
    if (slot) return slot;
    if (this.freed.has(id)) throw new InvalidArgumentError('ref', `RemoteRef ${id} was freed`);
    if (!create) throw new InvalidArgumentError('ref', `RemoteRef ${id} is not known on worker ${this.pid}`);
    // Only an id made by remoteRef(pid) (`...-e<n>`) names a ref that comes into being empty; any
    // other unknown id is a call's result whose call has not arrived yet (it may come from
    // another process, so it can overtake the call).
    if (call || !isEmptyRefId(id)) {
      slot = { id, state: 'running', bytes: 0, actor: null, waiters: [] };
      this.slots.set(id, slot);
      return slot;
    }
    // A ref made by RemoteRef(pid) comes into being on its first use.
    const actor = this.host.create('ref', id);
    actor.send(refEvents.created(Date.now(), { owner: this.pid, creator: 0, task: null }));
    slot = { id, state: 'empty', bytes: 0, actor, waiters: [] };
    this.slots.set(id, slot);
    return slot;
  }

  private settled(slot: Slot): Promise<void> {
    if (slot.state === 'ready' || slot.state === 'failed') return Promise.resolve();
    return new Promise((resolve) => slot.waiters.push(resolve));
  }

  private wake(slot: Slot): void {
    const w = slot.waiters;
    slot.waiters = [];
    for (const f of w) f();
  }

  private async localValue(id: string, call = false): Promise<unknown> {
    const slot = this.slotFor(id, true, call);
    await this.settled(slot);
    if (!this.slots.has(id)) throw new InvalidArgumentError('ref', `RemoteRef ${id} was freed`);
    // A fetch is a flush point: the ref's history is stored before its value is handed out.
    await slot.actor?.durable();
    if (slot.state === 'failed') throw fromErrorData(slot.error!, this.pid);
    return slot.value;
  }

  private async putLocal(id: string, value: unknown, from: number): Promise<void> {
    const slot = this.slotFor(id);
    if (slot.state !== 'empty' || !slot.actor) throw new InvalidArgumentError('ref', `RemoteRef ${id} already holds a value (put! on a full ref)`);
    slot.state = 'ready';
    slot.value = value;
    slot.actor.send(refEvents.put(Date.now(), 0, from));
    this.wake(slot);
    await slot.actor?.durable();
  }

  private async freeLocal(id: string, by: number): Promise<void> {
    const slot = this.slots.get(id);
    if (!slot) return;
    this.slots.delete(id);
    this.freed.add(id);
    if (this.freed.size > 100_000) this.freed.delete(this.freed.values().next().value!);
    slot.actor?.send(refEvents.freed(Date.now(), by));
    slot.value = undefined;
    slot.state = 'failed';
    slot.error = { name: 'Error', message: `RemoteRef ${id} was freed`, pid: this.pid };
    this.wake(slot);
    await slot.actor?.durable();
  }

  /** Values this process owns, by state. */
  refCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.slots.values()) out[s.state] = (out[s.state] ?? 0) + 1;
    return out;
  }

  // ---------------------------------------------------------------- serving

  private async onCall(msg: Msg): Promise<void> {
    // A repeat of a call (the caller resends while it waits: the first try or its reply may have
    // been lost with a server) runs nothing: it is answered with the first one's reply, if done.
    const key = msg.reply;
    if (key) {
      const seen = this.calls.get(key);
      if (seen) {
        try {
          if (seen.reply) msg.respond(seen.reply);
        } catch {
          /* the connection closed */
        }
        return;
      }
      this.calls.set(key, { at: Date.now(), reply: null });
    }
    let req: CallRequest;
    try {
      req = this.checkCall(await this.unpack<CallRequest>(msg.data));
    } catch (e) {
      const data = this.respond(msg, { err: toErrorData(e, this.pid) });
      if (key && data) this.remember(key, data);
      return;
    }
    const data = this.respond(msg, await this.handleCall(req));
    if (key && data) this.remember(key, data);
  }

  /** Keeps a call's reply for its repeats, for a while and within a byte budget. */
  private remember(key: string, data: Uint8Array): void {
    const entry = this.calls.get(key);
    if (!entry) return;
    entry.reply = data;
    entry.at = Date.now();
    this.callBytes += data.byteLength;
    // Entries are in arrival order: drop the old ones from the front (a running call stays).
    const old = entry.at - CALL_MEMORY_MS;
    for (const [k, e] of this.calls) {
      if (e.at > old && this.callBytes <= CALL_MEMORY_BYTES) break;
      if (!e.reply) {
        if (e.at > old) break;
        continue;
      }
      this.callBytes -= e.reply.byteLength;
      this.calls.delete(k);
    }
  }

  /** A call off the wire has the shape of a {@link CallRequest}, and its ref (if any) is ours. */
  private checkCall(req: unknown): CallRequest {
    const r = req as Partial<CallRequest> | null;
    if (!r || typeof r !== 'object') throw new InvalidArgumentError('call', `expected a call request, got ${r === null ? 'null' : typeof r}`);
    if (typeof r.task !== 'string') throw new InvalidArgumentError('task', `expected a task key, got ${typeof r.task}`);
    if (!Array.isArray(r.args)) throw new InvalidArgumentError('args', `expected an array of arguments, got ${typeof r.args}`);
    if (r.ref !== undefined) this.ownId(r.ref);
    return r as CallRequest;
  }

  /** A ref id named by a request to this process: a string id of a ref this process owns. */
  private ownId(id: unknown): string {
    if (typeof id !== 'string') throw new InvalidArgumentError('id', `expected a RemoteRef id, got ${id === null ? 'null' : typeof id}`);
    const owner = ownerOf(id);
    if (owner !== this.pid) throw new InvalidArgumentError('id', `RemoteRef ${id} is owned by pid ${owner}, not by pid ${this.pid}`);
    return id;
  }

  private async handleCall(req: CallRequest): Promise<Reply> {
    if (!req.ref) {
      try {
        return { ok: await this.execute(req.task, req.args) };
      } catch (e) {
        return { err: toErrorData(e, this.pid) };
      }
    }
    const id = req.ref;
    // A ref id is used once: a second call (or a put) under the same id would be a second history.
    const existing = this.slots.get(id);
    if ((existing && existing.actor) || this.freed.has(id)) {
      return { err: toErrorData(new InvalidArgumentError('ref', `RemoteRef ${id} already exists on pid ${this.pid}; each call needs a new ref id`), this.pid) };
    }
    const actor = this.host.create('ref', id);
    actor.send(refEvents.created(Date.now(), { owner: this.pid, creator: req.from, task: req.task }));
    // A fetch that overtook this call waits in a placeholder: adopt it, waiters and all.
    const waiting = this.slots.get(id);
    const slot: Slot = waiting && !waiting.actor ? Object.assign(waiting, { actor }) : { id, state: 'running', bytes: 0, actor, waiters: [] };
    this.slots.set(id, slot);
    try {
      slot.value = await this.execute(req.task, req.args);
      if (!this.slots.has(id)) return { done: true };
      slot.state = 'ready';
      record(actor, refEvents.ready(Date.now(), 0));
    } catch (e) {
      if (!this.slots.has(id)) return { done: true };
      slot.state = 'failed';
      slot.error = toErrorData(e, this.pid);
      record(actor, refEvents.failed(Date.now(), slot.error));
    }
    this.wake(slot);
    return { done: true };
  }

  private async onRef(msg: Msg): Promise<void> {
    let req: { op: string; id: string; value?: unknown; from?: number; i?: number; call?: boolean };
    try {
      req = await this.unpack(msg.data);
    } catch (e) {
      this.respond(msg, { err: toErrorData(e, this.pid) });
      return;
    }
    try {
      if (!req || typeof req !== 'object') throw new InvalidArgumentError('op', `expected a ref operation, got ${req === null ? 'null' : typeof req}`);
      if (req.op !== 'blob' && req.op !== 'blob-done') this.ownId(req.id);
      switch (req.op) {
        case 'blob':
          this.blobs.serve(msg, req.id, req.i ?? 0);
          return;
        case 'blob-done':
          this.blobs.release(req.id);
          return;
        case 'fetch':
          this.respond(msg, { ok: await this.localValue(req.id, req.call) });
          return;
        case 'wait': {
          const slot = this.slotFor(req.id, true, req.call);
          await this.settled(slot);
          await slot.actor?.durable();
          this.respond(msg, slot.state === 'failed' ? { err: slot.error } : { done: true });
          return;
        }
        case 'isready': {
          const s = this.slots.get(req.id);
          if (!s && this.freed.has(req.id)) throw new InvalidArgumentError('ref', `RemoteRef ${req.id} was freed`);
          this.respond(msg, { ready: !!s && (s.state === 'ready' || s.state === 'failed') });
          return;
        }
        case 'put':
          await this.putLocal(req.id, req.value, req.from ?? 0);
          this.respond(msg, { done: true });
          return;
        case 'free':
          await this.freeLocal(req.id, req.from ?? 0);
          this.respond(msg, { done: true });
          return;
        default:
          throw new InvalidArgumentError('op', `unknown ref operation '${req.op}'`);
      }
    } catch (e) {
      this.respond(msg, { err: toErrorData(e, this.pid) });
    }
  }

  // ---------------------------------------------------------------- running tasks

  /** Runs a task by key in this process. */
  async execute(key: string, args: unknown[]): Promise<unknown> {
    const fn = lookupTask(key);
    if (!fn) {
      const { module, name } = parseTaskKey(key);
      throw new TaskNotFoundError(module, name, this.pid);
    }
    this.running++;
    this.currentTask = key;
    let interrupt: ((e: Error) => void) | undefined;
    const t0 = performance.now();
    let result: unknown;
    let error: unknown;
    try {
      if (this.guardSync && (this.guarded.has(key) || !this.seen.has(key))) {
        result = this.runGuarded(key, fn, args);
      } else {
        result = fn(...args);
        // Fast before, long this time: its next call runs under the watchdog again.
        if (this.guardSync && performance.now() - t0 > GUARD_AFTER_MS) this.guarded.add(key);
      }
      if (result && typeof (result as Promise<unknown>).then === 'function') {
        const interrupted = new Promise<never>((_, reject) => {
          interrupt = reject;
          this.interrupters.add(reject);
        });
        result = await Promise.race([result, interrupted]);
      }
      return result;
    } catch (e) {
      error = e ?? new Error(String(e));
      throw e;
    } finally {
      this.spans.record(key, args, t0, performance.now(), error, result);
      if (interrupt) this.interrupters.delete(interrupt);
      this.running--;
      this.completed++;
      this.onTaskEnd?.();
      if (this.running === 0) this.currentTask = null;
    }
  }

  private runGuarded(key: string, fn: (...a: unknown[]) => unknown, args: unknown[]): unknown {
    this.onLongTask?.(key);
    const g = globalThis as { __colonyRunGuarded?: () => unknown };
    g.__colonyRunGuarded = () => fn(...args);
    const t0 = performance.now();
    try {
      return guardScript.runInThisContext({ breakOnSigint: true });
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED') {
        this.onInterrupted?.();
        throw new InterruptException(this.pid);
      }
      throw e;
    } finally {
      g.__colonyRunGuarded = undefined;
      this.seen.add(key);
      if (performance.now() - t0 > GUARD_AFTER_MS) this.guarded.add(key);
      else this.guarded.delete(key);
    }
  }

  /** Interrupts the tasks running now (async ones at once; long sync ones through SIGINT). */
  interruptRunning(): number {
    const n = this.interrupters.size;
    for (const reject of this.interrupters) reject(new InterruptException(this.pid));
    this.interrupters.clear();
    return n;
  }
}


/**
 * Sends an event to a ref actor whose earlier append may have failed: the failure is already
 * recorded and reported by `durable()` and the next flush, so it must not also escape here.
 */
function record(actor: HostedActor, ev: Parameters<HostedActor['send']>[0]): void {
  try {
    actor.send(ev);
  } catch {
    /* reported by durable() */
  }
}
