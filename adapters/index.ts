// Cluster managers: the contract and its implementations.
export { COLONY_BIN } from './cluster-manager.ts';
export type { ClusterManager, LaunchParams, ManageOp, WorkerConfig } from './cluster-manager.ts';
export { LocalManager } from './local-manager.ts';
export type { LocalManagerOptions } from './local-manager.ts';
