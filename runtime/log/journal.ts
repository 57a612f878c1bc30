/**
 * The journal: the event stream, the state bucket, and appends with one writer per actor.
 *
 * Appends carry `expect.lastSubjectSequence` (a stale writer is rejected) and a `msgID` (a retry
 * is never stored twice). They are pipelined: `append` returns at once and the ack is awaited in
 * the background; `flush()` is the durability point and reports any append that was lost.
 */
import { createInbox, headers } from '@nats-io/transport-node';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { ConsumerConfig, ConsumerInfo, JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { KV } from '@nats-io/kv';
import type { ActorKind, Envelope } from '../../actors/index.ts';
import { decode, encode } from '../transport/codec.ts';
import { decodeEnvelope } from './event-decode.ts';
import { InvalidArgumentError, JournalAppendError, JournalConflictError, TimeoutError } from '../transport/errors.ts';
import { Requester } from '../transport/requester.ts';
import { subjects } from '../transport/subjects.ts';
import type { Subjects } from '../transport/subjects.ts';

/** Retention of the event stream. */
export interface RetentionOptions {
  /** Oldest event kept, in milliseconds. @default 7 days */
  maxAgeMs?: number;
  /** Bytes kept; the oldest events go first. @default 1 GiB */
  maxBytes?: number;
  /** Stream replicas: 1 on an embedded server, 3 on a cluster. @default 1 */
  replicas?: number;
}

export const DEFAULT_MAX_AGE_MS = 7 * 24 * 3600_000;
export const DEFAULT_MAX_BYTES = 1024 ** 3;

const NS_PER_MS = 1_000_000;

/** Options of a journal's writer. */
export interface JournalOptions {
  /**
   * How long an append rides out a leader election or a reconnect (retrying with the same msgID)
   * before it is reported lost with JournalAppendError. @default 30000
   */
  electionWindowMs?: number;
}

export const DEFAULT_ELECTION_WINDOW_MS = 30_000;
/**
 * One try of an append waits this long for its ack before it is sent again (its ack, or the try
 * itself, went down with a server), plus a little per append in flight: when tens of thousands
 * are pipelined, the last ack comes seconds after the first.
 */
const ACK_TIMEOUT_MS = 2_000;
const ACK_MS_PER_INFLIGHT = 1;
const MIN_ACK_TIMEOUT_MS = 500;
/** How long the look-up of a subject's last message may take. */
const LOOKUP_TIMEOUT_MS = 2_000;
/** Backoff between retries: 100 ms doubling to 1 s, with jitter. */
const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 1_000;
const RECONNECTED = 'reconnected while waiting for the ack';

function backoff(attempt: number): number {
  const d = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
  return d / 2 + Math.random() * (d / 2);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A JetStream API error that says the stream cannot take writes right now (no leader, an election,
 * a cluster not yet formed): worth retrying, unlike a refused message.
 */
export function isUnavailable(err: { code?: number; err_code?: number; description?: string }): boolean {
  if (err.code === 503) return true;
  if (err.err_code !== undefined && UNAVAILABLE_CODES.has(err.err_code)) return true;
  return /temporarily unavailable|no leader|offline|not leader|no suitable peers/i.test(err.description ?? '');
}
/** A thrown NATS or JetStream error that an election or a reconnect explains. */
function isTransient(e: unknown): boolean {
  const err = e as { name?: string; message?: string; status?: number; apiError?: () => { code?: number; err_code?: number; description?: string } };
  if (err?.name === 'TimeoutError' || err?.name === 'NoRespondersError' || err?.status === 503) return true;
  if (typeof err?.apiError === 'function' && isUnavailable(err.apiError())) return true;
  return /no responders|timeout|temporarily unavailable|no leader|offline|disconnect|reconnect/i.test(err?.message ?? '');
}
/** JSClusterNotAvailErr, JSClusterNotLeaderErr, JSClusterNoPeersErr, JSStreamOfflineErr. */
const UNAVAILABLE_CODES = new Set([10008, 10009, 10005, 10118]);

const UTF8 = new TextDecoder();
const ENCODER = new TextEncoder();

export class Journal {
  readonly subjects: Subjects;
  private failures: Error[] = [];
  private acks: Requester | null = null;
  private inflight = 0;
  /** Flushes waiting for `inflight` to reach 0. */
  private drained: (() => void)[] = [];
  /** Tries of appends sent again (an election, a reconnect, a lost ack) since the journal opened. */
  retries = 0;
  /**
   * Appends found stored by an earlier try whose ack was lost: by the server's duplicate check
   * (`duplicate`), or by the subject's last message carrying their msgID (`lastMessage`).
   */
  readonly recovered = { duplicate: 0, lastMessage: 0 };
  /** How long an append rides out an election or a reconnect; see {@link JournalOptions}. */
  readonly electionWindowMs: number;

  private constructor(
    readonly nc: NatsConnection,
    readonly name: string,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    readonly kv: KV,
    opts: JournalOptions,
  ) {
    this.subjects = subjects(name);
    this.electionWindowMs = checkWindow(opts.electionWindowMs);
  }

  /** Opens the journal of cluster `name`, creating its stream and bucket when missing. */
  static async open(nc: NatsConnection, name: string, opts: RetentionOptions = {}, jopts: JournalOptions = {}): Promise<Journal> {
    checkWindow(jopts.electionWindowMs);
    const s = subjects(name);
    const jsm = await jetstreamManager(nc);
    const config = {
      name: s.eventsStream,
      subjects: [`${s.evtPrefix}.>`],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: opts.replicas ?? 1,
      max_age: (opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS) * NS_PER_MS,
      max_bytes: opts.maxBytes ?? DEFAULT_MAX_BYTES,
      allow_direct: true,
      duplicate_window: 2 * 60_000 * NS_PER_MS,
    };
    try {
      await jsm.streams.info(s.eventsStream);
      // Only an explicit retention changes an existing stream.
      if (opts.maxAgeMs !== undefined || opts.maxBytes !== undefined) {
        await jsm.streams.update(s.eventsStream, {
          ...(opts.maxAgeMs !== undefined ? { max_age: config.max_age } : {}),
          ...(opts.maxBytes !== undefined ? { max_bytes: config.max_bytes } : {}),
        });
      }
    } catch (e) {
      if (!isNotFound(e)) throw e;
      await jsm.streams.add(config);
    }
    const kv = await new Kvm(nc).create(s.stateBucket, { history: 1, storage: StorageType.File, replicas: opts.replicas ?? 1 });
    return new Journal(nc, name, jetstream(nc), jsm, kv, jopts);
  }

  /** Opens the journal of a cluster that exists already (workers, observers): creates nothing. */
  static async attach(nc: NatsConnection, name: string, jopts: JournalOptions = {}): Promise<Journal> {
    checkWindow(jopts.electionWindowMs);
    const s = subjects(name);
    const jsm = await jetstreamManager(nc);
    const kv = await new Kvm(nc).open(s.stateBucket);
    return new Journal(nc, name, jetstream(nc), jsm, kv, jopts);
  }

  /**
   * Appends one envelope. `expectLast` is the stream sequence of the actor's previous event (0 for
   * its first). Resolves with the stream sequence of this one.
   *
   * A leader election or a reconnect is ridden out: "no responders", a lost or late ack and the
   * JetStream API's "temporarily unavailable" errors are retried with capped, jittered backoff for
   * `electionWindowMs`, every try with the same msgID. A try that was stored but whose ack was lost
   * is recognised, not stored twice: the retry comes back as a duplicate of our msgID, or (when the
   * server no longer remembers it) the expected sequence fails and the subject's last message
   * carries our msgID. Only after the window is the append reported lost (JournalAppendError).
   */
  async append(env: Envelope, expectLast: number, writer: string): Promise<number> {
    // A plain publish on one muxed ack inbox: nats.js js.publish() costs a timer, a request and an
    // Error (for async traces) per call, which capped appends at ~8k/s here.
    this.acks ??= this.ackRequester();
    const subject = this.subjects.evt(env.kind, env.id);
    const msgId = `${env.kind}.${env.id}.${env.seq}.${writer}`;
    const h = headers();
    h.set('Nats-Msg-Id', msgId);
    h.set('Nats-Expected-Last-Subject-Sequence', String(expectLast));
    const data = encode(env);
    const what = () => `${env.kind}/${env.id}: append of event #${env.seq} '${env.type}'`;
    const deadline = Date.now() + this.electionWindowMs;
    let lastErr = '';
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        // An attempt that failed at once (no responders, no leader) waits before the next; one
        // that timed out has waited already, and one cut short by a reconnect goes again now.
        if (!lastErr.startsWith('no ack') && lastErr !== RECONNECTED) await sleep(Math.min(left, backoff(attempt)));
        this.retries++;
      }
      let reply: Msg;
      // The ack may wait behind every other append in flight: allow for them.
      const wait = ACK_TIMEOUT_MS + this.inflight * ACK_MS_PER_INFLIGHT;
      const timeout = this.electionWindowMs === 0 ? wait : Math.max(MIN_ACK_TIMEOUT_MS, Math.min(wait, deadline - Date.now()));
      try {
        reply = await this.acks.request(0, subject, data, timeout, { headers: h, keep503: true });
      } catch (e) {
        if (e instanceof TimeoutError) lastErr = `no ack within ${Math.round(timeout / 100) / 10} s`;
        else if ((e as Error)?.message === RECONNECTED) lastErr = RECONNECTED;
        else throw new JournalAppendError(`${what()} failed: ${(e as Error).message}`, { cause: e });
        continue;
      }
      if (reply.data.length === 0 && reply.headers?.code === 503) {
        lastErr = 'no JetStream responders (is the stream up? a leader election?)';
        continue;
      }
      const ack = JSON.parse(UTF8.decode(reply.data)) as { seq?: number; duplicate?: boolean; error?: { code: number; err_code?: number; description: string } };
      if (ack.error) {
        if (ack.error.err_code === 10071) {
          // After a try whose ack we never saw, the event may be stored already: ours if the
          // subject's last message carries our msgID.
          const mine = attempt > 0 ? await this.storedSeq(subject, msgId).catch(() => null) : null;
          if (mine) {
            this.recovered.lastMessage++;
            return mine;
          }
          throw new JournalConflictError(`${env.kind}/${env.id}: another writer appended first (event #${env.seq} '${env.type}' refused: ${ack.error.description})`);
        }
        if (isUnavailable(ack.error)) {
          lastErr = ack.error.description;
          continue;
        }
        throw new JournalAppendError(`${what()} failed: ${ack.error.description}`);
      }
      // A duplicate on the first try means this msgID was stored by someone else: a second writer.
      // On a retry it is our own earlier try, whose ack was lost.
      if (ack.duplicate && attempt === 0) {
        throw new JournalConflictError(`${env.kind}/${env.id}: event #${env.seq} was already stored by this writer id (a second writer?)`);
      }
      if (ack.duplicate) this.recovered.duplicate++;
      return ack.seq!;
    }
    // The window is over. The last try may still have landed: look before calling it lost.
    const mine = await this.storedSeq(subject, msgId).catch(() => null);
    if (mine) return mine;
    throw new JournalAppendError(`${what()} failed: ${lastErr}; retried for ${Math.round(this.electionWindowMs / 1000)} s (electionWindowMs)`);
  }

  /** The stream sequence of the last message on `subject` if it carries `msgId`, else null. */
  private async storedSeq(subject: string, msgId: string): Promise<number | null> {
    // A direct get (the stream has allow_direct, so any replica answers), on the ack inbox with a
    // short timeout: the window is over, or a retry is under way.
    const m = await this.acks!.request(0, `$JS.API.DIRECT.GET.${this.subjects.eventsStream}`, ENCODER.encode(JSON.stringify({ last_by_subj: subject })), LOOKUP_TIMEOUT_MS, { keep503: true });
    if (m.headers?.code || !m.headers) return null;
    return m.headers.get('Nats-Msg-Id') === msgId ? Number(m.headers.get('Nats-Sequence')) || null : null;
  }

  /**
   * The ack inbox. A reconnect (our server died, or we were moved) may have lost the acks of the
   * appends in flight: they are cut short and sent again at once, with their msgIDs.
   */
  private ackRequester(): Requester {
    const r = new Requester(this.nc);
    void (async () => {
      for await (const st of this.nc.status()) if (st.type === 'reconnect') r.failPid(0, new Error(RECONNECTED));
    })().catch(() => undefined);
    return r;
  }

  /** Tracks a background append so `flush()` waits for it and reports its failure. */
  track<T>(p: Promise<T>): Promise<T> {
    // A count, not a set of promises: appends are the hottest path of all.
    this.inflight++;
    return p.then(
      (v) => {
        this.settled();
        return v;
      },
      (e) => {
        this.failures.push(e as Error);
        this.settled();
        throw e;
      },
    );
  }

  private settled(): void {
    if (--this.inflight > 0) return;
    const waiting = this.drained;
    this.drained = [];
    for (const wake of waiting) wake();
  }

  /** Waits until no append of this process is in flight; failures are left for `flush()` to report. */
  async settle(): Promise<void> {
    while (this.inflight > 0) await new Promise<void>((r) => this.drained.push(r));
  }

  /** Waits for every pending append; throws if any was lost since the last flush. */
  async flush(): Promise<void> {
    while (this.inflight > 0) await new Promise<void>((r) => this.drained.push(r));
    if (this.failures.length) {
      const f = this.failures;
      this.failures = [];
      throw new JournalAppendError(`${f.length} event append(s) failed; first: ${f[0]!.message}`, { cause: f[0] });
    }
  }

  /** Appends waiting for their ack. */
  get pending(): number {
    return this.inflight;
  }

  /** The last stored envelope of an actor, or null. */
  async last(kind: ActorKind, id: string): Promise<Envelope | null> {
    const m = await this.jsm.direct.getMessage(this.subjects.eventsStream, { last_by_subj: this.subjects.evt(kind, id) });
    if (!m) return null;
    return { ...decode<Envelope>(m.data), streamSeq: m.seq };
  }

  /**
   * Stored envelopes whose subject matches `filter` (a tail under `colony.<c>.evt.`), in stream
   * order, starting at stream sequence `fromSeq` or at time `since`.
   */
  async read(filter: string, opts: { fromSeq?: number; since?: Date } = {}): Promise<Envelope[]> {
    const out: Envelope[] = [];
    for await (const batch of this.batches(filter, opts)) for (const env of batch) out.push(env);
    return out;
  }

  /** Like `read`, as an async iterator that ends at the current end of the stream. */
  async *iterate(filter: string, opts: { fromSeq?: number; since?: Date } = {}): AsyncGenerator<Envelope> {
    for await (const batch of this.batches(filter, opts)) yield* batch;
  }

  /**
   * The envelopes of `iterate`, in the batches they arrive in. Replay reads through this: an
   * async generator costs a promise per item, which is a fifth of the read time at 60k events.
   *
   * It reads with plain pull requests on an ephemeral consumer into one subscription callback,
   * two requests in flight, rather than with nats.js's ordered consumer: `fetch()` wraps each
   * message in a JsMsg and an async iterator and parses its reply subject in full, and waits a
   * round trip per batch; that capped reads at ~65k events/s here. The order checks of an ordered
   * consumer stay: each message must carry the next delivery sequence, and on a gap (or a
   * consumer lost under us) the read restarts after the last stream sequence it got.
   */
  async *batches(filter: string, opts: { fromSeq?: number; since?: Date } = {}): AsyncGenerator<Envelope[]> {
    let start: { fromSeq?: number; since?: Date } = opts;
    for (let restarts = 0; ; restarts++) {
      const read = new PullRead(this, filter, start);
      try {
        let batch: Envelope[] | null;
        while ((batch = await read.next())) {
          restarts = 0;
          yield batch;
        }
        if (!read.broken) return;
        if (restarts >= 3) throw new Error(`reading ${filter} from the event stream: ${read.broken}, three times in a row`);
        start = read.lastSeq ? { fromSeq: read.lastSeq + 1 } : opts;
      } finally {
        read.close();
      }
    }
  }

  /**
   * @internal Creates an ephemeral pull consumer for `PullRead`. nats-server < 2.12 may place an
   * ephemeral consumer of a replicated stream on a peer that is down (nats-server#7165), and the
   * create times out; during an election it is "temporarily unavailable": retry for the election
   * window, each time with a fresh copy of the config.
   */
  async pullConsumer(config: Partial<ConsumerConfig>): Promise<ConsumerInfo> {
    return this.retryTransient(() => this.jsm.consumers.add(this.subjects.eventsStream, { ...config }));
  }

  /** Runs `op` again on errors an election or a reconnect explains, for the election window. */
  private async retryTransient<T>(op: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.electionWindowMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await op();
      } catch (e) {
        const left = deadline - Date.now();
        if (left <= 0 || !isTransient(e)) throw e;
        await sleep(Math.min(left, backoff(attempt)));
      }
    }
  }

  /**
   * The keys of the state bucket matching `filter`. Listing them creates a consumer, which can
   * time out while a replica is down (nats-server#7165 on 2.9) or during an election: retried
   * like the event reads.
   */
  async stateKeys(filter = '>'): Promise<string[]> {
    return this.retryTransient(async () => {
      const out: string[] = [];
      for await (const k of await this.kv.keys(filter)) out.push(k);
      return out;
    });
  }

  /** Latest snapshot of an actor from the state bucket. */
  async snapshot(kind: ActorKind, id: string): Promise<StoredSnapshot | null> {
    const e = await this.kv.get(`${kind}.${id}`);
    if (!e || e.operation !== 'PUT' || e.length === 0) return null;
    return decode<StoredSnapshot>(e.value);
  }

  /** Stores an actor's snapshot; an election of the bucket's leader is ridden out like appends. */
  async putSnapshot(kind: ActorKind, id: string, snap: StoredSnapshot): Promise<void> {
    const data = encode(snap);
    await this.retryTransient(() => this.kv.put(`${kind}.${id}`, data));
  }
}

/** What the state bucket holds per actor: the machine state after `seq` events. */
export interface StoredSnapshot {
  kind: ActorKind;
  id: string;
  value: unknown;
  context: unknown;
  status: string;
  /** Actor-local sequence of the last event folded in. */
  seq: number;
  /** Stream sequence of that event. */
  streamSeq: number;
  at: number;
  type: string;
}

function checkWindow(ms: number | undefined): number {
  if (ms === undefined) return DEFAULT_ELECTION_WINDOW_MS;
  if (!Number.isFinite(ms) || ms < 0) throw new InvalidArgumentError('electionWindowMs', `must be a number of milliseconds >= 0, got ${String(ms)}`);
  return ms;
}

function isNotFound(e: unknown): boolean {
  const m = (e as Error)?.message ?? '';
  return /not found|10059/i.test(m);
}

/** Messages asked for per pull request; two requests are in flight while reading. */
const PULL_BATCH = 4096;
/** Without a message for this long while some are asked for, the read checks its consumer. */
const STALL_MS = 3000;
/** How long a pull request may wait on the server, in ns (the read ends at the end anyway). */
const PULL_EXPIRES_NS = 30_000 * NS_PER_MS;

/**
 * One pass of `Journal.batches`: an ephemeral pull consumer read to the end of the stream.
 * Messages are decoded in the subscription callback and handed out in arrays; pull requests are
 * sent while fewer than two batches are asked for and not yet handed out, which also bounds what
 * is buffered when the reader is slower than the stream.
 */
class PullRead {
  lastSeq = 0;
  /** Why the read stopped early (a gap, a lost consumer): then it is restarted after `lastSeq`. */
  broken: string | null = null;
  private buffer: Envelope[] = [];
  private wake: (() => void) | null = null;
  private error: Error | null = null;
  private ended = false;
  private closed = false;
  private sub: Subscription | null = null;
  private consumer: Promise<string | null>;
  private nextSubject = '';
  private ackPrefix = '';
  private inbox = createInbox();
  /** Messages asked for and not yet received; `pending` is what the server says is left after the last one. */
  private asked = 0;
  private pending = 0;
  private delivered = 0;

  constructor(private readonly journal: Journal, filter: string, opts: { fromSeq?: number; since?: Date }) {
    const deliver = opts.fromSeq
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: opts.fromSeq }
      : opts.since
        ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: opts.since.toISOString() }
        : { deliver_policy: DeliverPolicy.All };
    this.consumer = this.start(filter, deliver).catch((e) => {
      this.fail(e as Error);
      return null;
    });
  }

  private async start(filter: string, deliver: Partial<ConsumerConfig>): Promise<string | null> {
    const j = this.journal;
    // The configuration nats.js gives an ordered consumer. No filter for '>', the stream's own
    // subject: nats-server 2.9 delivers ~1000 times slower (0.8 ms a message) to a consumer with a
    // wildcard filter that starts in mid-stream, which a `--since` or a restart here does.
    const info = await j.pullConsumer({
      ...deliver, ...(filter === '>' ? {} : { filter_subject: j.subjects.evtFilter(filter) }), ack_policy: AckPolicy.None, max_deliver: 1, mem_storage: true, num_replicas: 1,
      inactive_threshold: 5 * 60_000 * NS_PER_MS,
    });
    const name = info.name;
    if (this.closed) return name;
    this.pending = info.num_pending;
    this.nextSubject = `$JS.API.CONSUMER.MSG.NEXT.${j.subjects.eventsStream}.${name}`;
    this.ackPrefix = `$JS.ACK.${j.subjects.eventsStream}.${name}.`;
    this.sub = j.nc.subscribe(this.inbox, { callback: (err, m) => (err ? this.fail(err) : this.onMsg(m)) });
    if (this.pending === 0) this.end();
    else {
      this.ask();
      this.watch(name);
    }
    return name;
  }

  /**
   * A pull request can vanish without an answer: sent to a consumer deleted in the meantime (the
   * JetStream API swallows it), or lost in a reconnect. When messages are asked for and none came
   * for a while, look at the consumer: gone, restart; there, ask again for what it still holds.
   */
  private watch(name: string): void {
    let seen = this.delivered;
    const timer = setInterval(() => {
      if (this.ended) return clearInterval(timer);
      if (this.delivered !== seen || this.asked <= 0) {
        seen = this.delivered;
        return;
      }
      const j = this.journal;
      j.jsm.consumers.info(j.subjects.eventsStream, name).then((info) => {
        if (this.ended || this.delivered !== seen) return;
        this.pending = info.num_pending;
        this.asked = 0;
        if (this.pending === 0) this.end();
        else this.ask();
      }, (e) => {
        if (isNotFound(e)) this.restart('the consumer was lost');
      });
    }, STALL_MS);
    timer.unref();
  }

  /** Keeps two batches asked for, never more than the server holds. */
  private ask(): void {
    while (!this.ended && this.asked < PULL_BATCH && this.buffer.length < 2 * PULL_BATCH) {
      const n = Math.min(PULL_BATCH, this.pending - this.asked);
      if (n <= 0) return;
      this.asked += n;
      this.journal.nc.publish(this.nextSubject, JSON.stringify({ batch: n, expires: PULL_EXPIRES_NS, no_wait: true }), { reply: this.inbox });
    }
  }

  private onMsg(m: Msg): void {
    if (this.ended) return;
    const reply = m.reply;
    if (!reply) {
      // A status: 404/408 end a request early (nothing left now, e.g. aged out); 409 is trouble.
      const code = m.headers?.code ?? 0;
      if (code === 404 || code === 408) return this.end();
      // The consumer went away under us (deleted, or dropped after a long pause): start a new one.
      if (code === 503 || (code === 409 && /deleted/i.test(m.headers?.description ?? ''))) return this.restart('the consumer was lost');
      if (code >= 400) return this.fail(new Error(`reading the event stream: ${code} ${m.headers?.description ?? ''}`));
      return;
    }
    // $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>, or with <domain>.<hash>
    // after ACK and a random token at the end on newer servers.
    let seq: number, dseq: number;
    if (reply.startsWith(this.ackPrefix)) {
      // The common form, read in place: a split per message cost as much as decoding it.
      seq = digits(reply, reply.indexOf('.', this.ackPrefix.length) + 1);
      dseq = digits(reply, afterDigits);
      this.pending = digits(reply, reply.indexOf('.', afterDigits) + 1);
    } else {
      const t = reply.split('.');
      const k = t.length === 9 ? 4 : 6;
      seq = Number(t[k + 1]);
      dseq = Number(t[k + 2]);
      this.pending = Number(t[k + 4]);
    }
    if (dseq !== this.delivered + 1) return this.restart(`a gap in the delivery sequence (${this.delivered} then ${dseq})`);
    this.delivered = dseq;
    this.asked--;
    let env: Envelope;
    try {
      env = decodeEnvelope(m.data);
    } catch (e) {
      return this.fail(new Error(`event #${seq} of the stream does not decode: ${(e as Error).message}`));
    }
    env.streamSeq = seq;
    this.lastSeq = seq;
    this.buffer.push(env);
    if (this.pending === 0) this.end();
    else this.ask();
    this.signal();
  }

  private signal(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private end(): void {
    this.ended = true;
    this.signal();
  }

  private restart(why: string): void {
    this.broken = why;
    this.end();
  }

  private fail(e: Error): void {
    this.error ??= e;
    this.end();
  }

  /** The envelopes received since the last call; null at the end. */
  async next(): Promise<Envelope[] | null> {
    for (;;) {
      if (this.buffer.length) {
        const b = this.buffer;
        this.buffer = [];
        this.ask();
        return b;
      }
      if (this.error) throw this.error;
      if (this.ended) return null;
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  close(): void {
    this.closed = true;
    this.ended = true;
    this.sub?.unsubscribe();
    const j = this.journal;
    void this.consumer.then(async (name) => {
      if (name) await j.jsm.consumers.delete(j.subjects.eventsStream, name).catch(() => undefined);
    });
  }
}

/** The decimal number at `i` in `s`; `afterDigits` is then the index after the dot that ends it. */
function digits(s: string, i: number): number {
  let n = 0;
  for (let c = s.charCodeAt(i); c >= 48 && c <= 57; c = s.charCodeAt(++i)) n = n * 10 + (c - 48);
  afterDigits = i + 1;
  return n;
}
let afterDigits = 0;
