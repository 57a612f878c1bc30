/**
 * The narrow interfaces a capability (parallel loops, arrays, and later pools, jobs and the
 * dashboard) takes instead of the Cluster class: making calls, hosting actors through this
 * process's node, and knowing the workers. The Cluster facade implements them.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { ClusterManager } from '../../adapters/cluster-manager.ts';
import type { Journal } from '../log/journal.ts';
import type { ProcessNode } from './process-node.ts';
import type { RemoteRef } from './remote-ref.ts';
import type { Task } from './task.ts';
import type { WorkDemand } from './work-demand.ts';
import type { WorkerRegistry } from './worker-registry.ts';

/** Making calls. */
export interface Calls {
  remotecall<A extends unknown[], R>(f: Task<A, R>, pid: number, ...args: A): RemoteRef<Awaited<R>>;
  remotecallFetch<A extends unknown[], R>(f: Task<A, R>, pid: number, ...args: A): Promise<Awaited<R>>;
  /** An empty ref owned by `pid`, to `put` a value into. */
  remoteRef<T = unknown>(pid: number): RemoteRef<T>;
}

/** Knowing the workers. */
export interface Workers {
  /** Worker pids; `[1]` when there are none. */
  workers(): number[];
  /** Every live pid, the driver's included. */
  procs(): number[];
  /** Joins, ends and losses of workers. */
  readonly registry: WorkerRegistry;
}

/** What a capability's driver side works through. */
export interface ClusterContext extends Calls, Workers {
  readonly name: string;
  readonly nc: NatsConnection;
  readonly journal: Journal;
  /** This process: its pid, its calls and the actors it hosts (`node.host`). */
  readonly node: ProcessNode;
  /** Demand for pool workers and the pools' draining workers (absent: no pools in this process). */
  readonly demand?: WorkDemand;
}

/** Starting and removing workers through a manager (what a pool takes). */
export interface Launches {
  /** Resolves with the new pids once they have all registered; `signal` cancels what is queued. */
  addprocs(manager: ClusterManager, opts: { count: number; signal?: AbortSignal }): Promise<number[]>;
  rmprocs(pids: number | number[]): Promise<void>;
}
