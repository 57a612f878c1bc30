/**
 * Request/reply over one muxed inbox, without per-request timers. Each request is tracked per
 * target pid, so when a process dies every request pending on it rejects at once with
 * {@link ProcessExitedError}, however long it has been waiting.
 */
import { createInbox } from '@nats-io/transport-node';
import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import { ProcessExitedError, TimeoutError } from './errors.ts';

interface Pending {
  pid: number;
  keep503: boolean;
  resolve: (m: Msg) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

export class Requester {
  private readonly prefix: string;
  private readonly sub: Subscription;
  private readonly pending = new Map<number, Pending>();
  private readonly byPid = new Map<number, Set<number>>();
  private next = 1;

  constructor(private readonly nc: NatsConnection) {
    this.prefix = createInbox();
    this.sub = nc.subscribe(`${this.prefix}.*`, { callback: (_err, msg) => this.onReply(msg) });
  }

  /** Sends `data` to `subject` on behalf of target `pid` and resolves with the reply message. */
  request(pid: number, subject: string, data: Uint8Array, timeoutMs = 0, opts: { headers?: MsgHdrs; keep503?: boolean } = {}): Promise<Msg> {
    const id = this.next++;
    return new Promise<Msg>((resolve, reject) => {
      const p: Pending = { pid, resolve, reject, keep503: !!opts.keep503 };
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => this.settle(id, undefined, new TimeoutError(`no reply from pid ${pid} on ${subject} within ${timeoutMs} ms`)), timeoutMs);
      }
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


  close(err: Error = new Error('connection closed')): void {
    for (const id of [...this.pending.keys()]) this.settle(id, undefined, err);
    this.sub.unsubscribe();
  }

  private onReply(msg: Msg): void {
    const id = Number(msg.subject.slice(this.prefix.length + 1));
    const p = this.pending.get(id);
    if (!p) return;
    // 503: no process is subscribed to the subject, so the target is gone (or never existed).
    if (!p.keep503 && msg.data.length === 0 && msg.headers?.code === 503) {
      this.settle(id, undefined, new ProcessExitedError(p.pid, 'no process answers on its subject'));
      return;
    }
    this.settle(id, msg);
  }

  private settle(id: number, msg: Msg | undefined, err?: Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.byPid.get(p.pid)?.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(msg!);
  }
}
