/**
 * The job manager (seed 003): watches the job queues, grants jobs within the limits, starts each
 * granted job's runner by its class, and records what the runners report. It is the single
 * writer of every `job.<id>` actor.
 *
 * Crash safety. Everything it consumes (submissions, cancels, runner reports) waits in the
 * work-queue stream COLONY_<c>_JOBS until it has been recorded; a start is decided once, by
 * storing `job.granted`, before the runner is spawned; and a runner claims its run in the KV
 * bucket before it starts the command. So a manager killed at any moment, restarted, replays the
 * job actors and carries on: a granted job's runner is started again (a second runner of the
 * same run finds the claim and exits), a running job is adopted when its runner reports, and no
 * job is lost or run twice.
 *
 * @example
 * const manager = await JobManager.start({ nats: url, name: 'prod', limits: { perClass: { local: 4 } } });
 * // ... jobs are submitted with Jobs.submit or `colony jobs submit`
 * await manager.close();   // the runners keep running; a new manager adopts them
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { fold, jobEvents, jobMachine, retriesLeft, countJob, emptyCounts, grantable } from '../../actors/index.ts';
import type { Envelope, GrantCandidate, JobContext, JobLimits } from '../../actors/index.ts';
import { ActorHost, HostedActor } from '../log/actor-host.ts';
import { Journal } from '../log/journal.ts';
import { byActor } from '../log/replay.ts';
import { connectNats } from '../transport/connection.ts';
import { DeterminismViolationError, InvalidArgumentError } from '../transport/errors.ts';
import { checkClusterName } from '../transport/subjects.ts';
import { validateJobSpec } from './job-spec.ts';
import { DEFAULT_LOG_LIMIT, ensureJobStreams, jobNames } from './job-streams.ts';
import type { JobNames } from './job-streams.ts';
import { Ec2Jobs, LocalRunnerHost, startSshRunner } from './job-runner.ts';
import type { Ec2JobOptions, RunnerConfig, SshJobOptions } from './job-runner.ts';

/** Options of {@link JobManager.start}: `jobs:` in colony.yaml, plus where NATS is. */
export interface JobManagerOptions {
  nats: string;
  /** Cluster name. @default 'default' */
  name?: string;
  user?: string;
  password?: string;
  limits?: JobLimits;
  ssh?: SshJobOptions;
  ec2?: Ec2JobOptions;
  /** Bytes of output stored per run. @default 8 MiB */
  logLimit?: number;
  /** Bytes of output kept over all jobs. @default 1 GiB */
  logStreamBytes?: number;
  /** Where diagnostics go. @default stderr */
  log?: (line: string) => void;
}

interface Report {
  type: 'started' | 'step' | 'exited';
  run: number;
  /** The runner's clock when it happened. */
  at?: number;
  ospid?: number;
  host?: string;
  step?: string;
  /** Steps reported before this one in the run. */
  index?: number;
  code?: number | null;
  signal?: string | null;
  result?: unknown;
  reason?: string | null;
  stderrTail?: string;
  cancelledBy?: string | null;
}

const DEC = new TextDecoder();
const TRACE = !!process.env.COLONY_JOBS_TRACE;
const ENC = new TextEncoder();

export class JobManager {
  private readonly names: JobNames;
  private readonly host: ActorHost;
  /** Live (not final) jobs. */
  private readonly actors = new Map<string, HostedActor>();
  /** Every job id this manager knows, to drop a submission delivered twice. */
  private readonly known = new Set<string>();
  /** Queued jobs in queue order (a retried job goes to the back). */
  private readonly queue = new Set<string>();
  /** Granted or running jobs, for the limits. */
  private readonly active = new Map<string, Omit<GrantCandidate, 'id'>>();
  /** Cancels asked of jobs whose runner has not reported yet. */
  private readonly pendingCancel = new Map<string, string>();
  /** ec2 jobs' instances. */
  private readonly instances = new Map<string, Promise<string | null>>();
  private readonly ec2: Ec2Jobs | null;
  private readonly machineHost = hostname();
  private readonly localHost: LocalRunnerHost;
  private messages: ConsumerMessages | null = null;
  private loop: Promise<void> | null = null;
  /** Running jobs found in the log at start whose runner has not answered yet. */
  private readonly suspects = new Set<string>();
  /** The stream sequence up to which reports sent before this start are read. */
  private backlogEnd = 0;
  private granting = false;
  private grantAgain = false;
  private closed = false;
  private readonly log: (line: string) => void;

  private constructor(
    readonly nc: NatsConnection,
    readonly journal: Journal,
    readonly name: string,
    private readonly opts: JobManagerOptions,
  ) {
    this.names = jobNames(name);
    this.host = new ActorHost(journal, `jobs-${randomBytes(6).toString('hex')}`);
    this.ec2 = opts.ec2 ? new Ec2Jobs(opts.ec2, name) : null;
    this.localHost = new LocalRunnerHost(nc, { url: opts.nats, user: opts.user, password: opts.password, cluster: name }, this.machineHost.replace(/[^A-Za-z0-9_-]/g, '_'));
    this.log = opts.log ?? ((l) => process.stderr.write(`colony jobs: ${l}\n`));
  }

  /** Connects, replays the job actors, and starts consuming the job queues. */
  static async start(opts: JobManagerOptions): Promise<JobManager> {
    if (!opts?.nats) throw new InvalidArgumentError('nats', 'JobManager.start needs the NATS URL');
    const name = checkClusterName(opts.name ?? 'default');
    checkLimits(opts.limits ?? {});
    const nc = await connectNats({ url: opts.nats, user: opts.user, password: opts.password }, `colony-jobs-${name}`);
    try {
      const journal = await Journal.open(nc, name);
      await ensureJobStreams(nc, name, { logStreamBytes: opts.logStreamBytes, freshConsumer: true });
      const m = new JobManager(nc, journal, name, opts);
      await m.replay();
      await m.consume();
      await m.findLostRunners();
      m.grant();
      return m;
    } catch (e) {
      await nc.close();
      throw e;
    }
  }

  /** The limits in force. */
  get limits(): JobLimits {
    return this.opts.limits ?? {};
  }

  /** Rebuilds every live job from the log and resumes it: queued ones wait, granted ones start. */
  private async replay(): Promise<void> {
    const events = await this.journal.read('job.*');
    for (const [, list] of byActor(events)) {
      const first = list[0]!;
      this.known.add(first.id);
      const r = fold(jobMachine, list);
      if (r.mismatch) {
        const m = r.mismatch;
        throw new DeterminismViolationError({ kind: 'job', id: first.id, seq: m.envelope.seq, type: m.envelope.type, recorded: m.expectedTo, replayed: m.replayedTo, accepted: m.accepted });
      }
      if (r.snapshot.status !== 'active') continue;
      const last = list.at(-1) as Envelope;
      const actor = new HostedActor(this.host, 'job', first.id, jobMachine, r.snapshot, last.seq, last.streamSeq ?? 0);
      this.actors.set(first.id, actor);
      const c = actor.context as unknown as JobContext;
      if (actor.state === 'queued') this.queue.add(first.id);
      else {
        this.active.set(first.id, this.slot(c));
        // The start was decided before the crash; whether its runner got going is for the claim to say.
        if (actor.state === 'granted') void this.launch(actor);
        else this.suspects.add(first.id);
      }
    }
    if (this.actors.size) this.log(`resumed ${this.actors.size} live job(s): ${this.queue.size} queued, ${this.active.size} granted or running`);
  }

  private async consume(): Promise<void> {
    const js = jetstream(this.nc);
    const consumer = await js.consumers.get(this.names.stream, this.names.consumer);
    this.messages = await consumer.consume({ max_messages: 256 });
    const messages = this.messages;
    this.loop = (async () => {
      for await (const m of messages) {
        try {
          await this.handle(m);
        } catch (e) {
          this.log(`${m.subject}: ${(e as Error).message}`);
          m.nak(1000);
        }
      }
    })();
  }

  /**
   * A running job from the log whose runner answers no ping, once every report sent before this
   * start has been read, lost its runner (its host died): the run failed.
   */
  private async findLostRunners(): Promise<void> {
    if (!this.suspects.size) return;
    await Promise.all([...this.suspects].map(async (id) => {
      if (await this.askRunner(id, { op: 'ping' })) this.suspects.delete(id);
    }));
    if (!this.suspects.size) return;
    const info = await jetstreamManager(this.nc).then((jsm) => jsm.streams.info(this.names.stream));
    this.backlogEnd = info.state.messages === 0 ? 0 : info.state.last_seq;
    if (this.backlogEnd === 0) this.failLost();
  }

  private failLost(): void {
    for (const id of this.suspects) {
      const actor = this.actors.get(id);
      if (!actor || actor.state !== 'running') continue;
      const c = actor.context as unknown as JobContext;
      const end = { code: null, reason: 'runner lost: no runner answered for this run when the manager restarted', stderrTail: '' };
      this.log(`job ${id}: ${end.reason}`);
      this.end(actor, retriesLeft(c) ? jobEvents.retrying(Date.now(), end) : jobEvents.failed(Date.now(), end));
    }
    this.suspects.clear();
  }

  private async handle(m: JsMsg): Promise<void> {
    if (this.backlogEnd && m.seq >= this.backlogEnd) {
      const end = this.backlogEnd;
      this.backlogEnd = 0;
      // After this message: everything sent before the start has been read.
      queueMicrotask(() => void this.journal.settle().then(() => end && this.failLost()));
    }
    const tail = m.subject.slice(this.names.prefix.length + 1);
    const kind = tail.slice(0, tail.indexOf('.'));
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(DEC.decode(m.data)) as Record<string, unknown>;
    } catch {
      this.log(`dropped a message on ${m.subject} that is not JSON`);
      return m.ack();
    }
    if (TRACE) this.log(`<- ${tail} ${JSON.stringify(body).slice(0, 120)}`);
    if (kind === 'submit') return this.onSubmit(m, body);
    const id = tail.slice(kind.length + 1);
    if (kind === 'cancel') return this.onCancel(m, id, String(body.by ?? 'someone'));
    if (kind === 'report') return this.onReport(m, id, body as unknown as Report);
    m.ack();
  }

  private onSubmit(m: JsMsg, body: Record<string, unknown>): void {
    const id = String(body.id ?? '');
    if (!/^[A-Za-z0-9_-]+$/.test(id) || this.known.has(id)) return m.ack();
    let spec;
    try {
      spec = validateJobSpec(body.spec, `submission ${id}`);
    } catch (e) {
      this.log(`dropped a submission that is not a job: ${(e as Error).message}`);
      return m.ack();
    }
    this.known.add(id);
    const actor = this.host.create('job', id, jobMachine);
    actor.send(jobEvents.queued(Date.now(), spec));
    this.actors.set(id, actor);
    this.queue.add(id);
    this.ackWhenStored(m, actor);
    this.grant();
  }

  private async onCancel(m: JsMsg, id: string, by: string): Promise<void> {
    const actor = this.actors.get(id);
    if (!actor) return m.ack();
    if (actor.state === 'queued') {
      this.queue.delete(id);
      this.end(actor, jobEvents.cancelled(Date.now(), by));
      return this.ackWhenStored(m, actor);
    }
    this.pendingCancel.set(id, by);
    if (!(await this.askRunner(id, { op: 'cancel', by })) && actor.state === 'running') {
      // Nobody runs it any more (its host is gone): it is over.
      this.pendingCancel.delete(id);
      this.end(actor, jobEvents.cancelled(Date.now(), by));
    }
    this.ackWhenStored(m, actor);
  }

  private async onReport(m: JsMsg, id: string, r: Report): Promise<void> {
    const actor = this.actors.get(id);
    const c = actor?.context as unknown as JobContext | undefined;
    // A report of an ended job, or of an older run, or one that was recorded already.
    if (!actor || !c || r.run !== c.run) return m.ack();
    // The runner's time, kept in order with what is recorded already (another host's clock may lag).
    const floor = Math.max(c.grantedAt ?? 0, c.startedAt ?? 0);
    const now = Math.max(typeof r.at === 'number' ? r.at : Date.now(), floor);
    if (r.type === 'started') {
      if (actor.state !== 'granted') return m.ack();
      let host = r.host ?? this.machineHost;
      if (c.spec?.class === 'ec2') host = (await this.instances.get(id)) ?? host;
      actor.send(jobEvents.started(now, { host, ospid: r.ospid ?? 0, run: r.run }));
      const by = this.pendingCancel.get(id);
      if (by) void this.askRunner(id, { op: 'cancel', by });
    } else if (r.type === 'step') {
      // A report delivered twice (a manager restart) is recognised by its step count.
      if (actor.state !== 'running' || (r.index !== undefined && r.index !== c.steps.length)) return m.ack();
      actor.send(jobEvents.stepCompleted(now, String(r.step)));
    } else if (r.type === 'exited') {
      if (actor.state !== 'running' && actor.state !== 'granted') return m.ack();
      const by = r.cancelledBy ?? (this.pendingCancel.has(id) && r.reason === 'cancelled' ? this.pendingCancel.get(id)! : null);
      const end = { code: r.code ?? null, reason: r.reason ?? '', stderrTail: r.stderrTail ?? '' };
      if (by) this.end(actor, jobEvents.cancelled(now, by));
      else if (!r.reason && r.code === 0 && actor.state === 'running') this.end(actor, jobEvents.succeeded(now, 0, r.result ?? null));
      else if (retriesLeft(c)) this.end(actor, jobEvents.retrying(now, { ...end, reason: end.reason || `exit code ${end.code}` }));
      else this.end(actor, jobEvents.failed(now, { ...end, reason: end.reason || `exit code ${end.code}` }));
    }
    this.ackWhenStored(m, actor);
  }

  /** Records the end of a run: final, or back in the queue for a retry. Frees its slot. */
  private end(actor: HostedActor, event: Parameters<HostedActor['send']>[0]): void {
    actor.send(event);
    const id = actor.id;
    this.active.delete(id);
    this.pendingCancel.delete(id);
    const inst = this.instances.get(id);
    if (inst) {
      this.instances.delete(id);
      // Once EC2 has it shutting down, it no longer counts: grant again.
      void inst.then((i) => (i ? this.ec2?.terminate(i) : undefined)).then(() => this.grant(), (e) => this.log(`job ${id}: cannot terminate its instance: ${(e as Error).message}`));
    }
    if (actor.state === 'queued') this.queue.add(id);
    else if (actor.done) this.actors.delete(id);
    this.grant();
  }

  private ackWhenStored(m: JsMsg, actor: HostedActor): void {
    actor.durable().then(() => m.ack(), (e) => {
      this.log(`job ${actor.id}: ${(e as Error).message}`);
      m.nak(1000);
    });
  }

  /** Sends a request to a job's runner; false when no runner answers. */
  private async askRunner(id: string, req: Record<string, unknown>): Promise<boolean> {
    try {
      await this.nc.request(this.names.runner(id), ENC.encode(JSON.stringify(req)), { timeout: 5000 });
      return true;
    } catch {
      return false;
    }
  }

  private slot(c: JobContext): Omit<GrantCandidate, 'id'> {
    const spec = c.spec!;
    return { class: spec.class, host: this.hostOf(spec), queue: spec.queue };
  }

  private hostOf(spec: JobContext['spec'] & object): string | null {
    return spec.class === 'local' ? this.machineHost : spec.class === 'ssh' ? spec.host : null;
  }

  /** Grants what fits, now; a call while a grant is under way runs it once more after. */
  private grant(): void {
    if (this.closed) return;
    if (this.granting) {
      this.grantAgain = true;
      return;
    }
    this.granting = true;
    void this.grantRound().catch((e) => this.log(`grant: ${(e as Error).message}`)).finally(() => {
      this.granting = false;
      if (this.grantAgain) {
        this.grantAgain = false;
        this.grant();
      }
    });
  }

  private async grantRound(): Promise<void> {
    if (this.queue.size === 0) return;
    const limits = this.limits;
    const candidates: GrantCandidate[] = [];
    for (const id of this.queue) candidates.push({ id, ...this.slot(this.actors.get(id)!.context as unknown as JobContext) });
    const counts = emptyCounts();
    for (const slot of this.active.values()) countJob(counts, slot);
    if (this.ec2 && limits.perClass?.ec2 !== undefined && candidates.some((j) => j.class === 'ec2')) {
      // The instance count comes from EC2; jobs granted but not yet given an instance count too.
      let counted: number;
      try {
        counted = await this.ec2.count();
      } catch (e) {
        // EC2 cannot be asked: hold the ec2 jobs (the next grant asks again), never the others.
        this.log(`DescribeInstances failed, ec2 jobs wait: ${(e as Error).message}`);
        counted = Infinity;
      }
      let starting = 0;
      for (const [id, slot] of this.active) if (slot.class === 'ec2' && !this.instances.has(id)) starting++;
      counts.perClass.ec2 = Math.max(counts.perClass.ec2 ?? 0, counted + starting);
    }
    for (const id of grantable(candidates, counts, limits)) {
      const actor = this.actors.get(id)!;
      const c = actor.context as unknown as JobContext;
      this.queue.delete(id);
      this.active.set(id, this.slot(c));
      actor.send(jobEvents.granted(Date.now(), this.hostOf(c.spec!)));
      void this.launch(actor);
    }
  }

  /** Starts the runner of a granted job, once its grant is stored. */
  private async launch(actor: HostedActor): Promise<void> {
    const c = actor.context as unknown as JobContext;
    const spec = c.spec!;
    try {
      await actor.durable();
      const cfg: RunnerConfig = {
        url: this.opts.nats, user: this.opts.user, password: this.opts.password, cluster: this.name, id: actor.id, run: c.run, spec,
        host: spec.class === 'ssh' ? spec.host! : this.machineHost, logLimit: this.opts.logLimit ?? DEFAULT_LOG_LIMIT,
      };
      if (spec.class === 'local') await this.localHost.start(cfg);
      else if (spec.class === 'ssh') await startSshRunner(cfg, this.opts.ssh ?? {});
      else {
        if (!this.ec2) throw new InvalidArgumentError('ec2', 'this manager has no ec2 options (jobs.ec2 in colony.yaml): it cannot start ec2 jobs');
        const inst = this.ec2.start({ ...cfg, host: 'ec2' });
        this.instances.set(actor.id, inst.catch(() => null));
        await inst;
      }
    } catch (e) {
      if (this.closed || actor.state !== 'granted' || (actor.context as unknown as JobContext).run !== c.run) return;
      const err = e as Error & { stderr?: string; code?: number | null };
      const end = { code: typeof err.code === 'number' ? err.code : null, reason: err.message, stderrTail: err.stderr ?? '' };
      this.end(actor, retriesLeft(c) ? jobEvents.retrying(Date.now(), end) : jobEvents.failed(Date.now(), end));
    }
  }

  /** Stops consuming and disconnects. Runners keep running; the next manager adopts them. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.messages?.close();
    await this.loop?.catch(() => undefined);
    await this.journal.settle();
    await this.nc.drain();
  }
}

function checkLimits(l: JobLimits): void {
  const check = (field: string, v: unknown) => {
    if (!Number.isInteger(v) || (v as number) < 0) throw new InvalidArgumentError(field, `must be a whole number >= 0, got ${JSON.stringify(v)}`);
  };
  if (l.total !== undefined) check('limits.total', l.total);
  for (const [group, o] of Object.entries({ perClass: l.perClass, perHost: l.perHost, perQueue: l.perQueue })) {
    if (o === undefined) continue;
    if (typeof o !== 'object' || o === null) throw new InvalidArgumentError(`limits.${group}`, 'must be a mapping of name to a number');
    for (const [k, v] of Object.entries(o)) {
      if (group === 'perClass' && !['local', 'ssh', 'ec2'].includes(k)) throw new InvalidArgumentError(`limits.perClass.${k}`, 'unknown class; choose from local, ssh, ec2');
      check(`limits.${group}.${k}`, v);
    }
  }
}
