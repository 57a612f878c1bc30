/**
 * The ClusterManager contract (Julia's): `launch` starts workers and reports each as it starts;
 * `manage` is told about every worker's lifecycle. Everything else has a default.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * One launched worker (or `count` workers of one scheduler job), as Julia's WorkerConfig.
 * Fields are grouped by who uses them.
 */
export interface WorkerConfig {
  // --- matching a registration to its launch (set by the manager from LaunchParams)
  /** Token the worker registers with; one config may register `count` workers. */
  launchToken: string;
  /** The scheduler's job id (qsub, sbatch...), when there is one. */
  schedulerJobId?: string;

  // --- Julia's fields
  /** The worker's output, when the manager has it. */
  io?: NodeJS.ReadableStream | null;
  host?: string;
  port?: number;
  /** Workers this config stands for; `'auto'` means one per core. @default 1 */
  count?: number | 'auto';
  exename?: string;
  exeflags?: string[];
  /** Anything the manager wants back in `manage`. */
  userdata?: unknown;
  tunnel?: boolean;
  bindAddr?: string;
  sshflags?: string[];
  maxParallel?: number;

  // --- local processes
  process?: ChildProcess;
  ospid?: number;
}

/** Everything a manager needs to start workers of one cluster. */
export interface LaunchParams {
  /** Cluster name. */
  cluster: string;
  /** NATS URL(s) the workers connect to. */
  nats: string;
  /** Credentials; pass them in the environment, never on the command line. */
  env: Record<string, string>;
  /** Workers requested. */
  count: number;
  /** The node executable. */
  exename: string;
  /** Flags for node before the script (the TypeScript loader among them). */
  exeflags: string[];
  /** Milliseconds a worker waits without a driver before it exits. */
  graceMs: number;
  /** A fresh launch token: one per config handed to `launched`. */
  newToken(): string;
  /** The argv that starts one worker registering with `token` (no shell). */
  workerArgv(token: string): string[];
}

export type ManageOp = 'register' | 'deregister' | 'interrupt' | 'finalize';

export interface ClusterManager {
  /** A short name used in events and errors: `local`, `ssh`, `sge`... */
  readonly name: string;
  /**
   * Starts `params.count` workers and calls `launched` for each config as soon as it starts, so a
   * slow scheduler never blocks the driver. Resolves when every launch was handed off.
   */
  launch(params: LaunchParams, launched: (c: WorkerConfig) => void, signal: AbortSignal): Promise<void>;
  /** Told about `register`, `deregister`, `interrupt` and `finalize` of each worker. */
  manage(pid: number, config: WorkerConfig, op: ManageOp): Promise<void>;
  /** Forcibly stops a worker that did not exit when asked. */
  kill?(pid: number, config: WorkerConfig): Promise<void>;
}

/**
 * The script that runs `colony <command>`, of the copy of the runtime that runs here: the
 * compiled one (dist/) or the sources, so a worker runs the same copy as its driver.
 */
export const COLONY_BIN = fileURLToPath(new URL('../runtime/cli/colony.mjs', import.meta.url));

/** The package's root (the folder of package.json), whether the sources or dist/ run. */
export const COLONY_ROOT = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '..' : '../..', import.meta.url));
