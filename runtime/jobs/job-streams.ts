/**
 * The job manager's subjects and streams (see docs/jobs.md):
 *
 * | subject | where | what |
 * |---|---|---|
 * | `colony.c.jobs.submit.<queue>` | work-queue stream `COLONY_c_JOBS` | submissions `{ id, spec }` |
 * | `colony.c.jobs.cancel.<id>` | `COLONY_c_JOBS` | cancel requests `{ by }` |
 * | `colony.c.jobs.report.<id>` | `COLONY_c_JOBS` | runner reports: started, step, exited |
 * | `colony.c.jobs.log.<id>.<run>.out\|err\|eof` | stream `COLONY_c_JOBLOGS` (size-limited) | the job's output |
 * | `colony.c.jobs.runner.<id>` | core NATS | cancel and ping a job's runner |
 * | KV `colony_c_jobruns`, key `<id>.<run>` | | the runner that claimed a run |
 *
 * Everything the manager consumes is in one work-queue stream, so a manager that is down loses
 * nothing: submissions, cancels and reports wait there until it is back.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, jetstreamManager } from '@nats-io/jetstream';
import type { JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';

const NS_PER_MS = 1_000_000;

/** @default bytes of output kept over all jobs (the oldest go first) */
export const DEFAULT_LOG_STREAM_BYTES = 1024 ** 3;
/** @default bytes of output stored per run; the rest is counted and dropped */
export const DEFAULT_LOG_LIMIT = 8 * 1024 * 1024;

export function jobNames(c: string) {
  const p = `colony.${c}.jobs`;
  return {
    stream: `COLONY_${c}_JOBS`,
    logStream: `COLONY_${c}_JOBLOGS`,
    runsBucket: `colony_${c}_jobruns`,
    consumer: 'job-manager',
    submit: (queue: string) => `${p}.submit.${queue}`,
    cancel: (id: string) => `${p}.cancel.${id}`,
    report: (id: string) => `${p}.report.${id}`,
    /** Output of a job: all runs, or one run. */
    log: (id: string, run?: number) => (run === undefined ? `${p}.log.${id}.>` : `${p}.log.${id}.${run}.*`),
    runner: (id: string) => `${p}.runner.${id}`,
    prefix: p,
  };
}
export type JobNames = ReturnType<typeof jobNames>;

/** Creates the job streams, the run-claim bucket and the manager's consumer when missing (`freshConsumer`: anew). */
export async function ensureJobStreams(nc: NatsConnection, c: string, opts: { logStreamBytes?: number; replicas?: number; freshConsumer?: boolean } = {}): Promise<JetStreamManager> {
  const n = jobNames(c);
  const jsm = await jetstreamManager(nc);
  const replicas = opts.replicas ?? 1;
  await addOrKeep(jsm, {
    name: n.stream,
    subjects: [`${n.prefix}.submit.>`, `${n.prefix}.cancel.*`, `${n.prefix}.report.*`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: 2 * 60_000 * NS_PER_MS,
  });
  await addOrKeep(jsm, {
    name: n.logStream,
    subjects: [`${n.prefix}.log.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_bytes: opts.logStreamBytes ?? DEFAULT_LOG_STREAM_BYTES,
    max_age: 7 * 24 * 3600_000 * NS_PER_MS,
    num_replicas: replicas,
    duplicate_window: 2 * 60_000 * NS_PER_MS,
  });
  await new Kvm(nc).create(n.runsBucket, { history: 1, storage: StorageType.File, replicas, ttl: 7 * 24 * 3600_000 });
  if (opts.freshConsumer) {
    // Messages delivered to a manager that died stay unacked until their ack wait ends. A new
    // consumer gets everything still in the work queue at once; whatever was recorded already
    // is recognised and dropped.
    await jsm.consumers.delete(n.stream, n.consumer).catch(() => undefined);
  }
  try {
    await jsm.consumers.info(n.stream, n.consumer);
  } catch {
    await jsm.consumers.add(n.stream, {
      durable_name: n.consumer, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: 30_000 * NS_PER_MS, max_ack_pending: 20_000,
    });
  }
  return jsm;
}

async function addOrKeep(jsm: JetStreamManager, config: Parameters<JetStreamManager['streams']['add']>[0]): Promise<void> {
  try {
    await jsm.streams.info(config.name!);
  } catch {
    await jsm.streams.add(config);
  }
}
