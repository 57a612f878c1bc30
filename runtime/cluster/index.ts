/** The Cluster facade: start, connect, processes, calls, refs, loops, arrays and the log in one object. */
export { Cluster } from './cluster.ts';
export type { AddprocsOptions, ClusterOptions, StartOptions } from './cluster.ts';
