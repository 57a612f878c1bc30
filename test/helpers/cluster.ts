/**
 * Test helper: a real cluster (embedded nats-server and real worker processes) in a fresh state
 * dir, removed again on close.
 *
 * With `COLONY_TEST_NATS_URL` set, clusters run on that server instead, each under a unique name
 * (tests about the embedded server skip themselves then).
 *
 * @example
 * ```ts
 * await using tc = await startCluster({ workers: 2, tasks: true });
 * expect(await tc.cluster.remotecallFetch(whoami, 2)).toBe(2);
 * ```
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from '../../runtime/index.ts';
import type { StartOptions } from '../../runtime/index.ts';
import { uniqueName } from './nats.ts';

/** The module of test tasks, test/fixtures/tasks.ts. */
export const TASKS_URL = new URL('../fixtures/tasks.ts', import.meta.url);

/** Whether the suite runs against an external server (`COLONY_TEST_NATS_URL`). */
export const externalNats = Boolean(process.env.COLONY_TEST_NATS_URL);

export interface TestClusterOptions extends StartOptions {
  /** Load test/fixtures/tasks.ts everywhere after start. @default false */
  tasks?: boolean;
}

export interface TestCluster {
  cluster: Cluster;
  /** The fresh directory passed as `stateDir`. */
  stateDir: string;
  /** `<stateDir>/<name>`: cluster.json, credentials.json and the NATS store. */
  clusterDir: string;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Fresh temp dir for one test: `colony-cluster-*`. */
export function tempDir(prefix = 'colony-cluster-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/**
 * Starts a cluster with `workerOutput: 'ignore'`, a fresh state dir and a short grace period
 * (so the workers of a crashed test do not linger), plus whatever `opts` say.
 */
export async function startCluster(opts: TestClusterOptions = {}): Promise<TestCluster> {
  const { tasks, ...start } = opts;
  const stateDir = await tempDir();
  const external = process.env.COLONY_TEST_NATS_URL;
  const options: StartOptions = {
    stateDir,
    workerOutput: 'ignore',
    graceMs: 10_000,
    ...(external && !start.nats ? { nats: external, name: uniqueName('c') } : {}),
    ...start,
  };
  let cluster: Cluster;
  try {
    cluster = await Cluster.start(options);
  } catch (e) {
    await rm(stateDir, { recursive: true, force: true });
    throw e;
  }
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      try {
        await cluster.close();
      } finally {
        await rm(stateDir, { recursive: true, force: true });
      }
    })());
  try {
    if (tasks) await cluster.everywhere(TASKS_URL);
  } catch (e) {
    await close();
    throw e;
  }
  return { cluster, stateDir, clusterDir: join(stateDir, cluster.name), close, [Symbol.asyncDispose]: close };
}
