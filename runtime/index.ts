// Colony's public API: the one curated list the README documents.
export { Cluster } from './cluster.ts';
export type { AddprocsOptions, ClusterOptions, StartOptions } from './cluster.ts';
export { task } from './task.ts';
export type { Task } from './task.ts';
export { myid } from './myid.ts';
export { RemoteRef } from './remote-ref.ts';
export { DArray } from './darray.ts';
export type { ArrayReducer, ChunkInfo, CreateOptions, DArrayConstructors, DArrayOptions, ElementOf } from './darray.ts';
export type { Range, Ranges, TypedArray, TypedArrayConstructor } from './darray-layout.ts';
export { SharedArray } from './shared-array.ts';
export type { SharedArrayOptions } from './shared-array.ts';
export { localindexes, localpart, sdata } from './local-part.ts';
export type { PmapOptions } from './pmap.ts';
export type { LoopOptions, LoopRange, Reducer } from './preduce.ts';
export { progressBar } from './progress-bar.ts';
export type { ProgressBarOptions } from './progress-bar.ts';
export {
  ColonyError, DeterminismViolationError, InterruptException, InvalidArgumentError, JournalAppendError,
  JournalConflictError, LaunchError, ProcessExitedError, RemoteException, TaskNotFoundError, TimeoutError,
} from './errors.ts';
export { NatsUnreachableError } from './connection.ts';
export { NatsServerMissingError } from './nats-server.ts';
export type { EventLog, HistoryOptions } from './event-log.ts';
export type { WorkerInfo } from './worker-registry.ts';
export type { RefSummary, ResumeReport } from './resume-report.ts';
export type { RetentionOptions } from './journal.ts';
export { LocalManager } from '../adapters/index.ts';
export type { ClusterManager, LaunchParams, ManageOp, WorkerConfig } from '../adapters/index.ts';
export type { Envelope, ActorKind } from '../actors/index.ts';
// Cluster managers (issue 6): batch schedulers, ssh, Scyld, EC2, and the site file.
export {
  EC2Manager, HTCondorManager, SGEManager, SSHManager, SchedulerCommandError, ScyldManager, SiteConfigError, SlurmManager,
  loadSiteConfig, managerFromConfig,
} from '../adapters/index.ts';
export type {
  EC2ManagerOptions, HTCondorManagerOptions, Machine, SGEManagerOptions, SSHManagerOptions, ScyldManagerOptions, SiteConfig,
  SlurmManagerOptions,
} from '../adapters/index.ts';
