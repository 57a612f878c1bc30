/** The job manager (seed 003): job files, the manager, its runners and the client. */
export { JobSpecError, parseJobSpec, validateJobSpec } from './job-spec.ts';
export { JobManager } from './job-manager.ts';
export type { JobManagerOptions } from './job-manager.ts';
export { Jobs } from './jobs-client.ts';
export type { JobInfo, JobsConnectOptions, LogChunk } from './jobs-client.ts';
export { loadJobsConfig, parseJobsConfig } from './jobs-config.ts';
export type { JobsConfig } from './jobs-config.ts';
export type { Ec2JobOptions, SshJobOptions } from './job-runner.ts';
