// Colony's public API: the one curated list docs/api.md documents.
export { Cluster } from './cluster/index.ts';
export type { AddprocsOptions, ClusterOptions, StartOptions } from './cluster/index.ts';
export { myid, RemoteRef, task } from './process/index.ts';
export type { Task, WorkerInfo } from './process/index.ts';
export { DArray, SharedArray, localindexes, localpart, sdata } from './arrays/index.ts';
export type {
  ArrayReducer, ChunkInfo, CreateOptions, DArrayConstructors, DArrayOptions, ElementOf, Range, Ranges, SharedArrayOptions,
  TypedArray, TypedArrayConstructor,
} from './arrays/index.ts';
export { progressBar } from './parallel/index.ts';
export type { LoopOptions, LoopRange, PmapOptions, ProgressBarOptions, Reducer } from './parallel/index.ts';
export {
  ColonyError, DeterminismViolationError, InterruptException, InvalidArgumentError, JournalAppendError,
  JournalConflictError, LaunchError, ProcessExitedError, RemoteException, TaskNotFoundError, TimeoutError,
} from './transport/errors.ts';
export { NatsServerMissingError, NatsUnreachableError } from './transport/index.ts';
export type { EventLog, HistoryOptions, RefSummary, ResumeReport, RetentionOptions } from './log/index.ts';
export { LocalManager } from '../adapters/index.ts';
export type { ClusterManager, LaunchParams, ManageOp, WorkerConfig } from '../adapters/index.ts';
export type { Envelope, ActorKind, PoolDecision, PoolPolicy } from '../actors/index.ts';
export type { Pool, PoolOptions, PoolStatus } from './pool/index.ts';
export { PoolDecisionMismatchError, formatWhatif, readPolicyFile, verifyPool, whatif } from './pool/index.ts';
export type { RunFigures, WhatifOptions, WhatifPolicy, WhatifReport } from './pool/index.ts';
// Cluster managers (issue 6): batch schedulers, ssh, Scyld, EC2, and the site file.
export {
  EC2Manager, HTCondorManager, SGEManager, SSHManager, SchedulerCommandError, ScyldManager, SiteConfigError, SlurmManager,
  loadSiteConfig, managerFromConfig,
} from '../adapters/index.ts';
export type {
  EC2ManagerOptions, HTCondorManagerOptions, Machine, SGEManagerOptions, SSHManagerOptions, ScyldManagerOptions, SiteConfig,
  SlurmManagerOptions,
} from '../adapters/index.ts';
// The job manager (seed 003).
export { JobManager, JobSpecError, Jobs } from './jobs/index.ts';
export type { JobInfo, JobManagerOptions, JobsConnectOptions, LogChunk } from './jobs/index.ts';
export type { JobClass, JobLimits, JobSpec } from '../actors/index.ts';
