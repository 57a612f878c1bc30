/** The process layer: a process's calls and values, workers and their registry, tasks, and the interfaces capabilities take. */
export { ProcessNode } from './process-node.ts';
export type { CallRequest, ProcessNodeOptions, Reply } from './process-node.ts';
export { WorkerRegistry } from './worker-registry.ts';
export type { RegistryOptions, WorkerInfo } from './worker-registry.ts';
export { DEFAULT_GRACE_MS, runWorker } from './worker-main.ts';
export type { Registration, WorkerOptions } from './worker-main.ts';
export { myid, setMyid } from './myid.ts';
export { builtinTask, isTask, lookupTask, parseTaskKey, registerTasks, task } from './task.ts';
export type { Task } from './task.ts';
export { RemoteRef } from './remote-ref.ts';
export { ensureTypeScriptLoader, importModule, isTypeScriptModule } from './import-module.ts';
export { hostCapabilities } from './capability.ts';
export type { Capability } from './capability.ts';
export type { Calls, ClusterContext, Workers } from './context.ts';
