/**
 * Request/reply over one muxed inbox, without per-request timers. Each request is tracked per
 * target pid, so when a process dies every request pending on it rejects at once with
 * {@link ProcessExitedError}, however long it has been waiting.
 *
 * Core NATS delivers at most once: a request or a reply that is on its way through a server when
 * that server dies is gone. A request made with `resend` is published again, with the same reply
 * subject, while it waits (after 2 s, then less and less often) and at once when this connection
 * reconnects; the receiver answers a repeat from what it remembers of the first (ProcessNode
 * keeps the replies of recent calls), so a resent call still runs once.
 */
import { createInbox } from '@nats-io/transport-node';
import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import { NatsUnreachableError } from './connection.ts';
import { ProcessExitedError, TimeoutError } from './errors.ts';

interface Pending {
  pid: number;
  keep503: boolean;
  resolve: (m: Msg) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
  /** A request published again while it waits. */
  resend?: { subject: string; data: Uint8Array; headers?: MsgHdrs; next: number; every: number; noResponders?: number };
}

/**
 * A `resend` request that finds nobody on its subject ("no responders") tries again for this
 * long: its target may be reconnecting to another server. A target that really exited is failed
 * sooner by `failPid` when its exit is known.
 */
export const NO_RESPONDERS_GRACE_MS = 3_000;
const NO_RESPONDERS_RETRY_MS = 250;

/** A waiting `resend` request is first published again after this long, then at doubling intervals. */
export const RESEND_FIRST_MS = 2_000;
const RESEND_MAX_MS = 15_000;

/** The requesters of each connection, so that a connection lost for good fails them all at once. */
const byConnection = new WeakMap<NatsConnection, Set<Requester>>();

/**
 * Rejects every request pending on `nc`, in every requester, with `err`: the connection is gone
 * for good (an embedded server that cannot come back).
 */
export function failRequests(nc: NatsConnection, err: Error): void {
  for (const r of byConnection.get(nc) ?? []) r.failAll(err);
}

export class Requester {
  private readonly prefix: string;
  private readonly sub: Subscription;
  private readonly pending = new Map<number, Pending>();
  private readonly byPid = new Map<number, Set<number>>();
  private next = 1;
  private readonly resending = new Set<number>();
  private unarmed: (() => void)[] = [];
  private resendTimer: NodeJS.Timeout | null = null;
  private closed: Error | null = null;

  constructor(private readonly nc: NatsConnection) {
    this.prefix = createInbox();
    this.sub = nc.subscribe(`${this.prefix}.*`, { callback: (_err, msg) => this.onReply(msg) });
    let set = byConnection.get(nc);
    if (!set) byConnection.set(nc, (set = new Set()));
    set.add(this);
    // A closed connection answers nothing more: nothing may wait on it forever.
    void nc.closed().then((e) => this.close(new NatsUnreachableError(nc.getServer(), e ?? new Error('the connection was closed'))));
    void (async () => {
      for await (const st of nc.status()) if (st.type === 'reconnect') this.resendAll(true);
    })().catch(() => undefined);
  }

  /** Sends `data` to `subject` on behalf of target `pid` and resolves with the reply message. */
  request(pid: number, subject: string, data: Uint8Array, timeoutMs = 0, opts: { headers?: MsgHdrs; keep503?: boolean; resend?: boolean } = {}): Promise<Msg> {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.next++;
    return new Promise<Msg>((resolve, reject) => {
      const p: Pending = { pid, resolve, reject, keep503: !!opts.keep503 };
      if (opts.resend) {
        p.resend = { subject, data, headers: opts.headers, next: Date.now() + RESEND_FIRST_MS, every: RESEND_FIRST_MS };
        this.resending.add(id);
        this.resendTimer ??= setInterval(() => this.resendAll(false), NO_RESPONDERS_RETRY_MS).unref();
      }
      if (timeoutMs > 0) this.arm(id, p, pid, subject, timeoutMs);
      this.pending.set(id, p);
      let set = this.byPid.get(pid);
      if (!set) this.byPid.set(pid, (set = new Set()));
      set.add(id);
      try {
        this.nc.publish(subject, data, { reply: `${this.prefix}.${id}`, headers: opts.headers });
      } catch (e) {
        this.settle(id, undefined, e as Error);
      }
    });
  }

  /** A message that wants no reply. */
  publishOnly(subject: string, data: Uint8Array): void {
    this.nc.publish(subject, data);
  }

  /** Rejects everything pending on `pid` (it exited or was lost). */
  failPid(pid: number, err: Error): void {
    const set = this.byPid.get(pid);
    if (!set) return;
    for (const id of [...set]) this.settle(id, undefined, err);
  }


  /** Rejects everything pending; the requester stays usable. */
  failAll(err: Error): void {
    for (const id of [...this.pending.keys()]) this.settle(id, undefined, err);
  }

  close(err: Error = new Error('connection closed')): void {
    this.failAll(err);
    if (this.closed) return;
    this.closed = err;
    byConnection.get(this.nc)?.delete(this);
    this.sub.unsubscribe();
  }

  private onReply(msg: Msg): void {
    const id = Number(msg.subject.slice(this.prefix.length + 1));
    const p = this.pending.get(id);
    if (!p) return;
    // 503: no process is subscribed to the subject, so the target is gone (or never existed).
    if (!p.keep503 && msg.data.length === 0 && msg.headers?.code === 503) {
      const r = p.resend;
      if (r) {
        const now = Date.now();
        r.noResponders ??= now;
        if (now - r.noResponders < NO_RESPONDERS_GRACE_MS) {
          r.next = now + NO_RESPONDERS_RETRY_MS;
          r.every = RESEND_FIRST_MS / 2;
          return;
        }
      }
      this.settle(id, undefined, new ProcessExitedError(p.pid, 'no process answers on its subject'));
      return;
    }
    this.settle(id, msg);
  }

  /**
   * A timeout counts from when this thread is free again, not from the request: a burst of
   * requests made in one synchronous stretch (tens of thousands of appends) is sent only after
   * it, and their replies are read only after it. So timers are armed after the burst, and one
   * that fires lets the replies read meanwhile settle first.
   */
  private arm(id: number, p: Pending, pid: number, subject: string, timeoutMs: number): void {
    this.unarmed.push(() => {
      if (!this.pending.has(id)) return;
      p.timer = setTimeout(() => setImmediate(() => this.settle(id, undefined, new TimeoutError(`no reply from pid ${pid} on ${subject} within ${timeoutMs} ms`))), timeoutMs);
    });
    if (this.unarmed.length === 1) {
      setImmediate(() => {
        const arms = this.unarmed;
        this.unarmed = [];
        for (const a of arms) a();
      });
    }
  }

  /** Publishes the waiting `resend` requests that are due again (all of them after a reconnect). */
  private resendAll(all: boolean): void {
    const now = Date.now();
    for (const id of this.resending) {
      const r = this.pending.get(id)?.resend;
      if (!r || (!all && now < r.next)) continue;
      r.every = Math.min(RESEND_MAX_MS, r.every * 2);
      r.next = now + r.every;
      try {
        this.nc.publish(r.subject, r.data, { reply: `${this.prefix}.${id}`, headers: r.headers });
      } catch {
        /* closed: close() rejects what is pending */
      }
    }
  }

  private settle(id: number, msg: Msg | undefined, err?: Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (p.resend) {
      this.resending.delete(id);
      if (this.resending.size === 0 && this.resendTimer) {
        clearInterval(this.resendTimer);
        this.resendTimer = null;
      }
    }
    this.byPid.get(p.pid)?.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(msg!);
  }
}
