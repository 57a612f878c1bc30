/**
 * Site configuration: one YAML file, `colony.yaml`, with per-manager defaults, so an
 * administrator sets up a site without code (seed 002: "how many compute nodes, how many
 * processors per node, which queue... packaged so an administrator can easily do this").
 *
 * ```yaml
 * default: sge                 # the manager `colony up` uses without --manager
 * managers:
 *   sge:
 *     queue: all.q
 *     walltime: "04:00:00"
 *     coresPerNode: 8          # becomes -pe smp 8 (peName sets the PE)
 *     count: 16                # workers `colony up` starts without --count
 *     jobDir: /shared/colony/jobs
 *   slurm: { partition: batch, time: "04:00:00", coresPerNode: 8 }
 *   ssh: { machines: [node1, "alice@node2:2222"], sshflags: [-i, /etc/colony/id_ed25519] }
 *   ec2: { region: eu-west-1, imageId: ami-0abc, instanceType: c7g.large }
 *
 * pools:                       # elastic pools: `colony up --pool sge`, `cluster.pool('sge')`
 *   sge: { manager: sge, min: 0, max: 16, spawnIntervalMs: 30000, maxQueued: 2, idleMs: 300000 }
 *   short: { manager: slurm, max: 4, options: { time: "00:30:00" } }   # options: the manager's, over managers.slurm
 * ```
 *
 * The file is found at `$COLONY_CONFIG`, else `./colony.yaml`, else `~/.config/colony/colony.yaml`.
 *
 * @example
 * const site = await loadSiteConfig();
 * const manager = await managerFromConfig('sge', site, { walltime: 600 });
 * await cluster.addprocs(manager, { count: siteCount('sge', site) ?? 4 });
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { ColonyError, InvalidArgumentError } from '../runtime/transport/errors.ts';
import type { ClusterManager } from './cluster-manager.ts';
import { PolicyError, checkPolicy } from '../actors/pool-policy.ts';
import type { PoolPolicy } from '../actors/pool-policy.ts';

/** The YAML parser, loaded on first use: every program that imports 'colony' would pay ~40 ms for it. */
let yamlModule: typeof import('yaml') | null = null;
const yaml = () => (yamlModule ??= createRequire(import.meta.url)('yaml') as typeof import('yaml'));

/** A malformed or invalid colony.yaml: names the file, and the line or the field. */
export class SiteConfigError extends ColonyError {}

export interface SiteConfig {
  /** Where it was read from (null: no file, all defaults). */
  source: string | null;
  /** The manager `colony up` uses without `--manager`. */
  default: string | null;
  /** Options per manager name. */
  managers: Record<string, Record<string, unknown>>;
  /** Elastic pools by name: a manager, its options over `managers.<manager>`, and a checked policy. */
  pools: Record<string, SitePool>;
}

export interface SitePool {
  manager: string;
  options: Record<string, unknown>;
  /** The policy fields the file sets (checked; defaults are filled in when the pool starts). */
  policy: Partial<PoolPolicy>;
}

/** Options every manager entry may carry besides its constructor's. */
const COMMON = ['count', 'coresPerNode', 'peName', 'id', 'exitGraceMs'];
const SHELL = ['jobDir', 'workDir', 'jobName', 'exename', 'prologue', 'env', 'pollMs', 'idlePollMs', 'keepJobDirs'];
const REMOTE = ['exename', 'exeflags', 'dir', 'maxParallel', 'env', 'output'];

/** The managers a site can configure, with the options each takes. */
export const MANAGER_OPTIONS: Record<string, string[]> = {
  local: ['env', 'output'],
  sge: [...SHELL, 'queue', 'walltime', 'resources', 'pe', 'qsubFlags'],
  slurm: [...SHELL, 'partition', 'time', 'cpusPerTask', 'memory', 'account', 'sbatchFlags'],
  condor: [...SHELL, 'universe', 'requestCpus', 'requestMemory', 'requirements', 'submit', 'condorSubmitFlags'],
  scyld: [...REMOTE, 'nodes'],
  ssh: [...REMOTE, 'machines', 'sshflags'],
  ec2: ['region', 'imageId', 'instanceType', 'subnetId', 'keyName', 'securityGroupIds', 'tags', 'userData', 'natsUrl', 'exename', 'colonyDir', 'endpoint', 'pollMs', 'idlePollMs'],
};

/** Aliases users type for the same manager. */
const ALIASES: Record<string, string> = { htcondor: 'condor', gridengine: 'sge', qsub: 'sge', sbatch: 'slurm', bpsh: 'scyld' };

export function managerName(name: string): string {
  const n = ALIASES[name.toLowerCase()] ?? name.toLowerCase();
  if (!MANAGER_OPTIONS[n]) throw new InvalidArgumentError('manager', `unknown manager '${name}'; choose from ${Object.keys(MANAGER_OPTIONS).join(', ')}`);
  return n;
}

/** Where the site file is looked for, in order. */
export function siteConfigPaths(cwd = process.cwd()): string[] {
  return [process.env.COLONY_CONFIG, join(cwd, 'colony.yaml'), join(homedir(), '.config', 'colony', 'colony.yaml')].filter((p): p is string => Boolean(p));
}

/** Reads the site file (`path`, or the first that exists); no file gives an empty config. */
export async function loadSiteConfig(path?: string): Promise<SiteConfig> {
  const file = path ? resolve(path) : siteConfigPaths().find((p) => existsSync(p));
  if (!file) return { source: null, default: null, managers: {}, pools: {} };
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new SiteConfigError(`cannot read site config ${file}: ${(e as Error).message}`, { cause: e });
  }
  return parseSiteConfig(text, file);
}

/** Parses and checks a site file's text; errors name the file and the line or field. */
export function parseSiteConfig(text: string, source = 'colony.yaml'): SiteConfig {
  let doc: unknown;
  try {
    doc = yaml().parse(text, { prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    const line = e instanceof yaml().YAMLParseError && e.linePos ? ` (line ${e.linePos[0].line}, column ${e.linePos[0].col})` : '';
    throw new SiteConfigError(`${source}: malformed YAML${line}: ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
  if (doc === null || doc === undefined) return { source, default: null, managers: {}, pools: {} };
  if (!isRecord(doc)) throw new SiteConfigError(`${source}: expected a mapping with 'managers' (and 'default', 'jobs', 'pools'), got ${typeof doc}`);
  for (const k of Object.keys(doc)) {
    // `jobs:` belongs to the job manager (runtime/jobs/jobs-config.ts), which checks it.
    if (k !== 'managers' && k !== 'default' && k !== 'jobs' && k !== 'pools') throw new SiteConfigError(`${source}: unknown key '${k}' (expected 'managers', 'default', 'jobs' and 'pools')`);
  }
  const managers: Record<string, Record<string, unknown>> = {};
  const raw = doc.managers ?? {};
  if (!isRecord(raw)) throw new SiteConfigError(`${source}: 'managers' must be a mapping of manager name to options`);
  for (const [name, opts] of Object.entries(raw)) {
    let n: string;
    try {
      n = managerName(name);
    } catch (e) {
      throw new SiteConfigError(`${source}: managers.${name}: ${(e as Error).message.replace(/^manager: /, '')}`);
    }
    if (opts !== null && !isRecord(opts)) throw new SiteConfigError(`${source}: managers.${name} must be a mapping of options`);
    for (const k of Object.keys(opts ?? {})) {
      if (!COMMON.includes(k) && !MANAGER_OPTIONS[n]!.includes(k)) {
        throw new SiteConfigError(`${source}: managers.${name}.${k}: unknown option; ${n} takes ${[...MANAGER_OPTIONS[n]!, ...COMMON].join(', ')}`);
      }
    }
    const count = (opts as Record<string, unknown> | null)?.count;
    if (count !== undefined && !(Number.isInteger(count) && (count as number) >= 1)) {
      throw new SiteConfigError(`${source}: managers.${name}.count must be a whole number >= 1, got ${JSON.stringify(count)}`);
    }
    managers[n] = { ...(opts ?? {}) };
  }
  let def: string | null = null;
  if (doc.default !== undefined && doc.default !== null) {
    if (typeof doc.default !== 'string') throw new SiteConfigError(`${source}: 'default' must be a manager name`);
    def = managerName(doc.default);
  }
  return { source, default: def, managers, pools: parsePools(text, source, doc.pools) };
}

/** The `pools:` section: each names a manager and a policy; a bad field is refused with its line. */
function parsePools(text: string, source: string, raw: unknown): Record<string, SitePool> {
  if (raw === undefined || raw === null) return {};
  if (!isRecord(raw)) throw new SiteConfigError(`${source}: 'pools' must be a mapping of pool name to manager and policy`);
  const lines = new (yaml().LineCounter)();
  const doc = yaml().parseDocument(text, { lineCounter: lines });
  const lineOf = (...path: string[]): string => {
    const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
    const off = node?.range?.[0] ?? (doc.getIn(path.slice(0, -1), true) as { range?: [number] } | undefined)?.range?.[0];
    return off === undefined ? '' : ` (${source} line ${lines.linePos(off).line})`;
  };
  const pools: Record<string, SitePool> = {};
  for (const [name, entry] of Object.entries(raw)) {
    if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new SiteConfigError(`${source}: pools.${name}: a pool name must match /^[A-Za-z0-9_-]+$/${lineOf('pools', name)}`);
    if (!isRecord(entry)) throw new SiteConfigError(`${source}: pools.${name} must be a mapping with 'manager' and policy fields${lineOf('pools', name)}`);
    const { manager, options, ...policy } = entry;
    if (typeof manager !== 'string') throw new SiteConfigError(`${source}: pools.${name}.manager: required, the name of a manager${lineOf('pools', name)}`);
    let m: string;
    try {
      m = managerName(manager);
    } catch (e) {
      throw new SiteConfigError(`${source}: pools.${name}.manager: ${(e as Error).message.replace(/^manager: /, '')}${lineOf('pools', name, 'manager')}`);
    }
    if (options !== undefined && !isRecord(options)) throw new SiteConfigError(`${source}: pools.${name}.options must be a mapping of ${m} options${lineOf('pools', name, 'options')}`);
    for (const k of Object.keys(options ?? {})) {
      if (!COMMON.includes(k) && !MANAGER_OPTIONS[m]!.includes(k)) {
        throw new SiteConfigError(`${source}: pools.${name}.options.${k}: unknown option; ${m} takes ${[...MANAGER_OPTIONS[m]!, ...COMMON].join(', ')}${lineOf('pools', name, 'options', k)}`);
      }
    }
    try {
      checkPolicy(policy, (field) => lineOf('pools', name, field));
    } catch (e) {
      if (e instanceof PolicyError) throw new SiteConfigError(`${source}: pools.${name}.${e.field}: ${e.detail}`);
      throw e;
    }
    pools[name] = { manager: m, options: { ...(options ?? {}) }, policy: { ...policy } as Partial<PoolPolicy> };
  }
  return pools;
}

/** Workers `colony up` starts for `name` when no count is given. */
export function siteCount(name: string, site: SiteConfig): number | undefined {
  return site.managers[managerName(name)]?.count as number | undefined;
}

/**
 * The options of manager `name`: the site's defaults, then `overrides`; `coresPerNode` becomes
 * each scheduler's own request (`-pe <peName|smp> N`, `--cpus-per-task`, `request_cpus`).
 */
export function managerOptions(name: string, site: SiteConfig, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const n = managerName(name);
  const { count: _count, coresPerNode, peName, ...opts } = { ...site.managers[n], ...overrides } as Record<string, unknown>;
  if (coresPerNode !== undefined) {
    if (!(Number.isInteger(coresPerNode) && (coresPerNode as number) >= 1)) throw new InvalidArgumentError('coresPerNode', `must be a whole number >= 1, got ${JSON.stringify(coresPerNode)}`);
    if (n === 'sge' && opts.pe === undefined && (coresPerNode as number) > 1) opts.pe = { name: (peName as string) ?? 'smp', slots: coresPerNode };
    if (n === 'slurm' && opts.cpusPerTask === undefined) opts.cpusPerTask = coresPerNode;
    if (n === 'condor' && opts.requestCpus === undefined) opts.requestCpus = coresPerNode;
  }
  return opts;
}

/** Builds manager `name` from the site's defaults and `overrides`. */
export async function managerFromConfig(name: string, site: SiteConfig, overrides: Record<string, unknown> = {}): Promise<ClusterManager> {
  const n = managerName(name);
  const o = managerOptions(n, site, overrides) as never;
  switch (n) {
    case 'local':
      return new (await import('./local-manager.ts')).LocalManager(o);
    case 'sge':
      return new (await import('./sge-manager.ts')).SGEManager(o);
    case 'slurm':
      return new (await import('./slurm-manager.ts')).SlurmManager(o);
    case 'condor':
      return new (await import('./htcondor-manager.ts')).HTCondorManager(o);
    case 'scyld':
      return new (await import('./scyld-manager.ts')).ScyldManager(o);
    case 'ssh':
      return new (await import('./ssh-manager.ts')).SSHManager(o);
    case 'ec2':
      return new (await import('./ec2-manager.ts')).EC2Manager(o);
    default:
      throw new InvalidArgumentError('manager', `unknown manager '${name}'`);
  }
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
