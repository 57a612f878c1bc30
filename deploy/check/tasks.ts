/**
 * Tasks of the deployment check (deploy/check/check.ts). Workers load this module by the URL the
 * driver gives them, so the code must sit at the same path on the driver and in the worker
 * containers (COLONY_APP_DIR in deploy/compose.yaml).
 */
import { hostname } from 'node:os';
import { myid, task } from '../../runtime/index.ts';
import type { RemoteRef } from '../../runtime/index.ts';

/** Who runs this: pid and host name (the container's, in compose). */
export const hello = task(import.meta.url, function hello(): { pid: number; host: string } {
  return { pid: myid(), host: hostname() };
});

/** Fetches a value held by another process: a worker-to-worker request on `colony.<c>.ref.<pid>`. */
export const fetchFrom = task(import.meta.url, async function fetchFrom(ref: RemoteRef<{ pid: number; host: string }>) {
  return { by: myid(), value: await ref.fetch() };
});
