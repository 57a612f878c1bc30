/** Elastic pools: the controller, and pools set up in the site file. */
import { loadSiteConfig, managerFromConfig } from '../../adapters/site-config.ts';
import { InvalidArgumentError } from '../transport/errors.ts';
import { Pool } from './pool.ts';
import type { PoolHost, PoolOptions } from './pool.ts';

export { Pool, parsePolicy } from './pool.ts';
export type { PoolHost, PoolOptions, PoolStatus } from './pool.ts';
export { PoolDecisionMismatchError, formatWhatif, readPolicyFile, verifyPool, whatif } from './whatif.ts';
export type { RunFigures, WhatifOptions, WhatifPolicy, WhatifReport } from './whatif.ts';

/**
 * The pool `pools.<name>` of the site file (`config`, or the usual places): its manager with
 * its options over `managers.<manager>`, its policy, then `policy` on top. The pool closes the
 * manager it made when it closes.
 */
export async function poolFromSite(host: PoolHost, name: string, policy: Record<string, unknown> = {}, opts: PoolOptions & { config?: string } = {}): Promise<Pool> {
  const { config, ...rest } = opts;
  const site = await loadSiteConfig(config);
  const entry = site.pools[name];
  if (!entry) {
    const known = Object.keys(site.pools);
    throw new InvalidArgumentError('pool', `no pool '${name}' in ${site.source ?? 'the site config (no colony.yaml found)'}${known.length ? `; pools: ${known.join(', ')}` : ''}`);
  }
  const manager = await managerFromConfig(entry.manager, site, entry.options);
  return Pool.start(host, manager, { ...entry.policy, ...policy }, { id: rest.id ?? `${name}-${Date.now().toString(36)}`, ownsManager: true, ...rest });
}
