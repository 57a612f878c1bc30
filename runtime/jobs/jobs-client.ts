/**
 * Jobs: the client of the job manager. It submits job files, reads jobs from the log, waits for
 * them (pushed: it subscribes to the job's events), cancels them and reads their output.
 *
 * @example
 * const jobs = await Jobs.connect({ nats: url, name: 'prod' });   // or Jobs.connect() next to `colony jobs serve`
 * const id = await jobs.submit('name: hello\ncommand: [echo, hi]\n');
 * const job = await jobs.wait(id);          // { state: 'succeeded', result, steps, ... }
 * for await (const chunk of jobs.logs(id)) process.stdout.write(chunk.data);
 * await jobs.close();
 */
import { headers } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { JOB_FINAL_STATES, fold, jobMachine } from '../../actors/index.ts';
import type { Envelope, JobClass, JobContext, JobSpec } from '../../actors/index.ts';
import { byActor } from '../log/replay.ts';
import { decode } from '../transport/codec.ts';
import { ColonyError, JournalAppendError, TimeoutError } from '../transport/errors.ts';
import { connectNats } from '../transport/connection.ts';
import { Journal } from '../log/journal.ts';
import { DEFAULT_STATE_DIR, alive, clusterDir, readState } from '../transport/cluster-files.ts';
import { newJobId, parseJobSpec, validateJobSpec } from './job-spec.ts';
import { ensureJobStreams, jobNames } from './job-streams.ts';
import type { JobNames } from './job-streams.ts';

/** A job as the log tells it: its actor's context, with its name, class, queue and state. */
export interface JobInfo extends Omit<JobContext, 'spec'> {
  id: string;
  name: string;
  class: JobClass;
  queue: string;
  state: 'queued' | 'granted' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  spec: JobSpec;
}

/** One piece of a job's output. */
export interface LogChunk {
  run: number;
  stream: 'out' | 'err';
  data: Uint8Array;
}

export interface JobsConnectOptions {
  /** Without it: the embedded NATS of `colony jobs serve` started from this directory. */
  nats?: string;
  /** @default 'default' */
  name?: string;
  user?: string;
  password?: string;
  /** @default '.colony' */
  stateDir?: string;
}

const ENC = new TextEncoder();
const FINAL = new Set<string>(JOB_FINAL_STATES);

export class Jobs {
  private readonly names: JobNames;

  private constructor(
    readonly nc: NatsConnection,
    readonly journal: Journal,
    readonly name: string,
    private readonly closeAll: () => Promise<void>,
  ) {
    this.names = jobNames(name);
  }

  /** Connects to the cluster's NATS (or to the embedded one of `colony jobs serve` run from this directory). */
  static async connect(opts: JobsConnectOptions = {}): Promise<Jobs> {
    const name = opts.name ?? 'default';
    let { nats: url, user, password } = opts;
    if (!url) {
      const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
      const state = await readState(stateDir, name);
      if (!state || !alive(state.natsPid)) {
        throw new ColonyError(`no job manager '${name}' runs from ${clusterDir(stateDir, name)}: start one with \`colony jobs serve\`, or pass { nats, name }`);
      }
      url = state.url;
      ({ user, password } = state.credentials ?? {});
    }
    const nc = await connectNats({ url, user, password }, `colony-jobs-client-${name}`);
    try {
      const journal = await Journal.open(nc, name);
      await ensureJobStreams(nc, name);
      return new Jobs(nc, journal, name, () => nc.close());
    } catch (e) {
      await nc.close();
      throw e;
    }
  }

  /** @internal A client over a connection someone else opened (the CLI's observer target). */
  static async attach(nc: NatsConnection, journal: Journal, close: () => Promise<void>): Promise<Jobs> {
    await ensureJobStreams(nc, journal.name);
    return new Jobs(nc, journal, journal.name, close);
  }

  /**
   * Validates a job (YAML text or a spec object) and queues it; resolves with its id once the
   * submission is stored. A bad job throws JobSpecError and nothing is queued.
   * @param file names the job in errors
   */
  async submit(job: string | Partial<JobSpec> | Record<string, unknown>, file?: string): Promise<string> {
    const spec = typeof job === 'string' ? parseJobSpec(job, file) : validateJobSpec(job, file);
    const id = newJobId(spec.name);
    const h = headers();
    h.set('Nats-Msg-Id', `submit.${id}`);
    const m = await this.nc.request(this.names.submit(spec.queue), ENC.encode(JSON.stringify({ id, spec })), { timeout: 10_000, headers: h });
    const ack = m.data.length ? (JSON.parse(new TextDecoder().decode(m.data)) as { error?: { description: string } }) : { error: { description: 'no job stream (has a manager ever run on this cluster?)' } };
    if (ack.error) throw new JournalAppendError(`submitting ${spec.name}: ${ack.error.description}`);
    return id;
  }

  /** The job as recorded, or null when no manager has queued it (yet). */
  async get(id: string): Promise<JobInfo | null> {
    await this.journal.settle();
    const events = await this.journal.read(`job.${id}`);
    return events.length ? infoOf(events) : null;
  }

  /** Every job in the log, oldest first. */
  async list(): Promise<JobInfo[]> {
    const events = await this.journal.read('job.*');
    return [...byActor(events).values()].map(infoOf);
  }

  /**
   * Resolves with the job once it has ended (succeeded, failed or cancelled). It waits on the
   * job's events as they are appended; nothing is polled.
   */
  async wait(id: string, opts: { timeoutMs?: number } = {}): Promise<JobInfo> {
    const sub = this.nc.subscribe(this.journal.subjects.evt('job', id));
    try {
      const now = await this.get(id);
      if (now && FINAL.has(now.state)) return now;
      const timer = opts.timeoutMs ? setTimeout(() => sub.unsubscribe(), opts.timeoutMs) : null;
      try {
        for await (const m of sub) {
          const env = decode<Envelope>(m.data);
          if (FINAL.has(env.to)) return (await this.get(id))!;
        }
      } finally {
        if (timer) clearTimeout(timer);
      }
      throw new TimeoutError(`job ${id} did not end within ${opts.timeoutMs} ms`);
    } finally {
      sub.unsubscribe();
    }
  }

  /**
   * Cancels a job: a queued one at once, a running one by stopping its process wherever it
   * runs. Resolves with the job once it has ended (it may have ended otherwise first).
   */
  async cancel(id: string, opts: { by?: string; timeoutMs?: number } = {}): Promise<JobInfo> {
    const job = await this.get(id);
    if (!job) throw new ColonyError(`no job ${id} in the log of cluster '${this.name}'`);
    if (FINAL.has(job.state)) return job;
    const h = headers();
    h.set('Nats-Msg-Id', `cancel.${id}.${Date.now()}`);
    const by = opts.by ?? process.env.USER ?? 'someone';
    await this.nc.request(this.names.cancel(id), ENC.encode(JSON.stringify({ by })), { timeout: 10_000, headers: h });
    return this.wait(id, { timeoutMs: opts.timeoutMs ?? 60_000 });
  }

  /**
   * A job's stored output, all runs in order. With `follow`, it goes on with new output until
   * the job has ended.
   */
  async *logs(id: string, opts: { follow?: boolean } = {}): AsyncGenerator<LogChunk> {
    const js = jetstream(this.nc);
    const consumer = await js.consumers.get(this.names.logStream, { filter_subjects: this.names.log(id) });
    const pending = (await consumer.info()).num_pending;
    if (!opts.follow && pending === 0) return;
    const messages = await consumer.consume();
    try {
      for await (const m of messages) {
        const parts = m.subject.split('.');
        const stream = parts.at(-1)!;
        const run = Number(parts.at(-2));
        if (stream === 'eof') {
          // The run's output is complete; the job ends with it unless it is retried.
          if (opts.follow && (await this.runEnd(id, run))) return;
        } else {
          yield { run, stream: stream as 'out' | 'err', data: m.data };
        }
        if (!opts.follow && m.info.pending === 0) return;
      }
    } finally {
      await messages.close();
    }
  }

  /** Waits for run `run` of a job to be recorded as over: true when the job ended with it, false when it is retried. */
  private async runEnd(id: string, run: number): Promise<boolean> {
    const sub = this.nc.subscribe(this.journal.subjects.evt('job', id));
    try {
      const over = (j: JobInfo | null) => !!j && (j.run > run || (j.state !== 'running' && j.state !== 'granted'));
      let j = await this.get(id);
      if (!over(j)) {
        for await (const m of sub) {
          const env = decode<Envelope>(m.data);
          if (FINAL.has(env.to) || env.type === 'job.retrying') break;
        }
        j = await this.get(id);
      }
      return !!j && FINAL.has(j.state) && j.run === run;
    } finally {
      sub.unsubscribe();
    }
  }

  async close(): Promise<void> {
    await this.closeAll();
  }
}

/** Folds a job's events into a JobInfo. */
export function infoOf(events: Envelope[]): JobInfo {
  const r = fold(jobMachine, events);
  const c = r.snapshot.context as JobContext;
  const spec = c.spec!;
  return {
    id: events[0]!.id, name: spec.name, class: spec.class, queue: spec.queue, state: r.snapshot.value as JobInfo['state'],
    run: c.run, host: c.host, ospid: c.ospid, steps: c.steps, code: c.code, result: c.result, reason: c.reason, stderrTail: c.stderrTail,
    cancelledBy: c.cancelledBy, queuedAt: c.queuedAt, grantedAt: c.grantedAt, startedAt: c.startedAt, endedAt: c.endedAt, spec,
  };
}
