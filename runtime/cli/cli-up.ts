/**
 * `colony up`: starts a cluster and brings workers in through a manager set up in the site's
 * colony.yaml (or on the command line), then keeps the cluster up until Ctrl-C, which removes
 * the workers: their scheduler jobs end and leave the queue.
 *
 *   colony up --manager sge --count 4
 *   colony up --manager slurm --set partition=batch --set time=01:00:00
 *   colony up --manager ssh --set 'machines=[node1, node2]' --count 8
 *   colony up --pool sge          an elastic pool from colony.yaml's pools.sge: no workers until work waits
 *
 * Drivers attach with `Cluster.connect({ nats, name })`, or observe it with `colony status`.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import type { ClusterManager } from '../../adapters/cluster-manager.ts';
import { loadSiteConfig, managerFromConfig, managerName, siteCount } from '../../adapters/site-config.ts';
import { Cluster } from '../cluster/cluster.ts';
import type { Pool } from '../pool/index.ts';
import { DEFAULT_STATE_DIR } from '../transport/cluster-files.ts';
import { InvalidArgumentError } from '../transport/errors.ts';

export const UP_USAGE = `usage: colony up [--manager NAME] [--count N] [--config FILE] [--set KEY=VALUE]...
                 [--name C] [--nats URL] [--state-dir DIR]
       colony up --pool NAME [--config FILE] [--name C] [--nats URL] [--state-dir DIR]
  Start a cluster (an embedded NATS unless --nats) and add N workers through a manager:
  local, ssh, sge, slurm, condor, scyld or ec2. The manager's options come from the site file
  (--config, $COLONY_CONFIG, ./colony.yaml or ~/.config/colony/colony.yaml), then from --set
  (values are YAML: --set walltime=600 --set 'machines=[a, b]'). Ctrl-C removes the workers.
  With --pool, the site file's pools.NAME (a manager and a policy) runs as an elastic pool: it
  grows through the manager while attached drivers have work waiting, and retires idle workers.
`;

/** A cluster that `colony up` brought up. */
export interface Up {
  cluster: Cluster;
  manager: ClusterManager;
  pids: number[];
  /** With --pool: the elastic pool. */
  pool?: Pool;
  /** Removes the workers (cancelling what is left at the scheduler) and stops the cluster. */
  close(): Promise<void>;
}

/** Parses `args`, starts the cluster and adds the workers; resolves once they have all registered. */
export async function bringUp(args: string[], log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<Up> {
  const { values } = parseArgs({
    args,
    options: {
      manager: { type: 'string', short: 'm' },
      pool: { type: 'string', short: 'p' },
      count: { type: 'string', short: 'n' },
      config: { type: 'string', short: 'c' },
      set: { type: 'string', multiple: true },
      name: { type: 'string' },
      nats: { type: 'string' },
      'state-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(UP_USAGE);
    throw new UpHelpShown();
  }
  const site = await loadSiteConfig(values.config);
  if (values.pool !== undefined) {
    if (values.manager || values.count || values.set) throw new InvalidArgumentError('pool', '--pool takes its manager and policy from the site file; drop --manager, --count and --set');
    if (!site.pools[values.pool]) {
      throw new InvalidArgumentError('pool', `no pool '${values.pool}' in ${site.source ?? 'the site config (no colony.yaml found)'}${Object.keys(site.pools).length ? `; pools: ${Object.keys(site.pools).join(', ')}` : ''}`);
    }
    const stateDir = values['state-dir'] ?? DEFAULT_STATE_DIR;
    const cluster = await Cluster.start({ name: values.name, nats: values.nats, stateDir, workers: 0 });
    let pool: Pool;
    try {
      pool = await cluster.pool(values.pool, {}, { config: site.source ?? undefined });
    } catch (e) {
      await cluster.close();
      throw e;
    }
    const p = pool.status().policy;
    log(`colony: cluster '${cluster.name}' at ${cluster.url} (site config ${site.source}): pool ${pool.id} through ${pool.manager.name}, min ${p.min}, max ${p.max}, maxQueued ${p.maxQueued}`);
    if (!values.nats) log(`colony: credentials in ${join(stateDir, cluster.name, 'credentials.json')}; Ctrl-C stops the cluster and retires the pool's workers`);
    let closing: Promise<void> | null = null;
    return { cluster, manager: pool.manager, pids: [], pool, close: () => (closing ??= cluster.close()) };
  }
  const name = managerName(values.manager ?? site.default ?? 'local');
  const overrides: Record<string, unknown> = {};
  for (const kv of values.set ?? []) {
    const i = kv.indexOf('=');
    if (i < 1) throw new InvalidArgumentError('set', `expected KEY=VALUE, got '${kv}'`);
    overrides[kv.slice(0, i)] = parseYaml(kv.slice(i + 1));
  }
  const count = values.count !== undefined ? Number(values.count) : (siteCount(name, site) ?? 1);
  if (!Number.isInteger(count) || count < 1) throw new InvalidArgumentError('count', `must be a whole number >= 1, got '${values.count}'`);
  const manager = await managerFromConfig(name, site, overrides);
  const stateDir = values['state-dir'] ?? DEFAULT_STATE_DIR;
  const cluster = await Cluster.start({ name: values.name, nats: values.nats, stateDir, workers: 0 });
  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      try {
        await cluster.close();
      } finally {
        await (manager as { close?: () => Promise<void> }).close?.();
      }
    })());
  log(`colony: cluster '${cluster.name}' at ${cluster.url}${site.source ? ` (site config ${site.source})` : ''}: adding ${count} worker(s) through ${manager.name}...`);
  let pids: number[];
  try {
    pids = await cluster.addprocs(manager, { count });
  } catch (e) {
    await close();
    throw e;
  }
  log(`colony: up: ${pids.length} worker(s) through ${manager.name}, pids ${pids.join(', ')}`);
  if (!values.nats) log(`colony: credentials in ${join(stateDir, cluster.name, 'credentials.json')}; Ctrl-C stops the cluster and removes its workers`);
  return { cluster, manager, pids, close };
}

class UpHelpShown extends Error {}

/** `colony up ARGS`: brings the cluster up and keeps it up until SIGINT or SIGTERM. */
export async function up(args: string[]): Promise<void> {
  let u: Up;
  try {
    u = await bringUp(args);
  } catch (e) {
    if (e instanceof UpHelpShown) return;
    throw e;
  }
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  process.stderr.write('colony: stopping: removing the workers...\n');
  await u.close();
}
