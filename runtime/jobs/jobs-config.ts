/**
 * `jobs:` in colony.yaml (or the file of `colony jobs serve --config FILE`):
 *
 * ```yaml
 * jobs:
 *   limits: { total: 16, perClass: { local: 4, ssh: 8, ec2: 2 }, perHost: { node1: 2 }, perQueue: { big: 1 } }
 *   ssh: { sshflags: [-i, /etc/colony/id_ed25519], exename: /usr/bin/node }
 *   ec2: { region: eu-west-1, imageId: ami-0abc, instanceType: c7g.large }
 *   logLimit: 8388608        # bytes of output stored per run
 * ```
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import type { JobLimits } from '../../actors/job-grants.ts';
import { siteConfigPaths, SiteConfigError } from '../../adapters/site-config.ts';
import type { Ec2JobOptions, SshJobOptions } from './job-runner.ts';

let yamlModule: typeof import('yaml') | null = null;
const yaml = () => (yamlModule ??= createRequire(import.meta.url)('yaml') as typeof import('yaml'));

export interface JobsConfig {
  source: string | null;
  limits: JobLimits;
  ssh: SshJobOptions;
  ec2: Ec2JobOptions | null;
  logLimit?: number;
}

const KEYS = ['limits', 'ssh', 'ec2', 'logLimit'];
const LIMIT_KEYS = ['total', 'perClass', 'perHost', 'perQueue'];
const SSH_KEYS = ['sshflags', 'exename', 'runner'];

/** Reads `jobs:` from `path`, or from the site file found the usual way; none gives no limits. */
export async function loadJobsConfig(path?: string): Promise<JobsConfig> {
  const file = path ? resolve(path) : siteConfigPaths().find((p) => existsSync(p));
  if (!file) return { source: null, limits: {}, ssh: {}, ec2: null };
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new SiteConfigError(`cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  return parseJobsConfig(text, file);
}

export function parseJobsConfig(text: string, source = 'colony.yaml'): JobsConfig {
  let doc: unknown;
  try {
    doc = yaml().parse(text, { prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    const y = yaml();
    const line = e instanceof y.YAMLParseError && e.linePos ? ` (line ${e.linePos[0].line}, column ${e.linePos[0].col})` : '';
    throw new SiteConfigError(`${source}: malformed YAML${line}: ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
  const jobs = (doc as Record<string, unknown> | null)?.jobs;
  if (jobs === undefined || jobs === null) return { source, limits: {}, ssh: {}, ec2: null };
  const rec = (v: unknown, field: string): Record<string, unknown> => {
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) throw new SiteConfigError(`${source}: ${field} must be a mapping`);
    return v as Record<string, unknown>;
  };
  const j = rec(jobs, 'jobs');
  for (const k of Object.keys(j)) if (!KEYS.includes(k)) throw new SiteConfigError(`${source}: jobs.${k}: unknown key; jobs has ${KEYS.join(', ')}`);
  const limits = rec(j.limits, 'jobs.limits');
  for (const k of Object.keys(limits)) if (!LIMIT_KEYS.includes(k)) throw new SiteConfigError(`${source}: jobs.limits.${k}: unknown limit; choose from ${LIMIT_KEYS.join(', ')}`);
  const ssh = rec(j.ssh, 'jobs.ssh');
  for (const k of Object.keys(ssh)) if (!SSH_KEYS.includes(k)) throw new SiteConfigError(`${source}: jobs.ssh.${k}: unknown option; choose from ${SSH_KEYS.join(', ')}`);
  const ec2 = j.ec2 === undefined || j.ec2 === null ? null : rec(j.ec2, 'jobs.ec2');
  if (ec2 && typeof ec2.imageId !== 'string') throw new SiteConfigError(`${source}: jobs.ec2.imageId is required (the AMI of the job instances)`);
  if (j.logLimit !== undefined && !(Number.isInteger(j.logLimit) && (j.logLimit as number) > 0)) throw new SiteConfigError(`${source}: jobs.logLimit must be a number of bytes > 0`);
  return { source, limits: limits as JobLimits, ssh: ssh as SshJobOptions, ec2: ec2 as Ec2JobOptions | null, logLimit: j.logLimit as number | undefined };
}
