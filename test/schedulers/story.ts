/**
 * What the real-scheduler tests share: a cluster with the adapter tasks loaded, a manager that
 * keeps the LaunchParams it was given (to look for the password where it must not be), and checks
 * on processes and queues.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { AdapterManager } from '../../adapters/adapter-manager.ts';
import type { LaunchParams, WorkerConfig } from '../../adapters/cluster-manager.ts';
import type { Cluster } from '../../runtime/index.ts';
import type { Envelope } from '../../actors/index.ts';

export const ADAPTER_TASKS = new URL('../fixtures/adapter-tasks.ts', import.meta.url);

/** Wraps `launch` to keep the params (and the configs handed to the driver). */
export function spy<M extends AdapterManager>(manager: M): M & { params: LaunchParams | null; configs: WorkerConfig[] } {
  const m = manager as M & { params: LaunchParams | null; configs: WorkerConfig[] };
  m.params = null;
  m.configs = [];
  const launch = manager.launch.bind(manager);
  m.launch = (params, launched, signal) => {
    m.params = params;
    return launch(params, (c) => {
      m.configs.push(c);
      launched(c);
    }, signal);
  };
  return m;
}

/** Pids of every process whose command line contains `needle`. */
export function processesWith(needle: string): number[] {
  const hits: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(needle)) hits.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return hits;
}

/** The adapter actor's stored events. */
export async function adapterEvents(cluster: Cluster, id: string): Promise<Envelope[]> {
  return cluster.events.history(`adapter.${id}`);
}
