/**
 * Starting a job's runner (runtime/jobs/job-runner.mjs) by the job's class:
 *
 * - `local`: a detached process on this host;
 * - `ssh`: `ssh [user@]host sh -c '...'`: the remote shell writes the config from stdin into a
 *   0600 file and starts the runner under `setsid`, detached, then the session ends;
 * - `ec2`: `RunInstances` whose user-data writes the config file and runs the runner.
 *
 * The config (with the NATS credentials) travels on stdin, in a 0600 file or in the user-data,
 * never on a command line. Every runner outlives the manager and reports over NATS.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { NatsConnection } from '@nats-io/transport-node';
import type { JobSpec } from '../../actors/job.ts';
import type { EC2ManagerOptions } from '../../adapters/ec2-manager.ts';
import { shellQuote } from '../../adapters/shell-scheduler.ts';
import { LaunchError } from '../transport/errors.ts';

/** The runner's entry point (plain JavaScript: it needs no TypeScript loader). */
export const RUNNER_BIN = fileURLToPath(new URL('./job-runner.mjs', import.meta.url));

/** What a runner is told. */
export interface RunnerConfig {
  url: string;
  user?: string;
  password?: string;
  cluster: string;
  id: string;
  run: number;
  spec: JobSpec;
  /** The host the job reports it ran on. */
  host: string;
  logLimit: number;
}

/** `jobs.ssh` in colony.yaml. */
export interface SshJobOptions {
  /** Flags for `ssh` (`[-F, /etc/colony/ssh_config]`, `[-i, key]`). */
  sshflags?: string[];
  /** Node on the remote host. @default 'node' */
  exename?: string;
  /** The runner on the remote host. @default this install's runtime/jobs/job-runner.mjs */
  runner?: string;
}

/** `jobs.ec2` in colony.yaml: the EC2Manager's options that apply to a job's instance. */
export type Ec2JobOptions = Partial<Pick<EC2ManagerOptions, 'region'>> & Pick<
  EC2ManagerOptions,
  'imageId' | 'instanceType' | 'subnetId' | 'keyName' | 'securityGroupIds' | 'tags' | 'userData' | 'natsUrl' | 'exename' | 'colonyDir' | 'endpoint' | 'credentials' | 'client'
>;

/** The package's root (the folder of package.json), whether the sources or dist/ run. */
const COLONY_ROOT = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../..' : '../../..', import.meta.url));

async function configFile(cfg: RunnerConfig): Promise<string> {
  const dir = join(tmpdir(), `colony-jobs-${process.getuid?.() ?? 'u'}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `${cfg.id}.${cfg.run}.${randomBytes(4).toString('hex')}.json`);
  await writeFile(file, JSON.stringify(cfg), { mode: 0o600, flag: 'wx' });
  return file;
}

/** Starts a local runner, detached. Resolves once it is spawned, with its pid. */
export async function startLocalRunner(cfg: RunnerConfig): Promise<number> {
  const file = await configFile(cfg);
  // $COLONY_JOBS_RUNNER_LOG: a directory for the runners' own diagnostics (one file per run).
  const logDir = process.env.COLONY_JOBS_RUNNER_LOG;
  const out = logDir ? openSync(join(logDir, `${cfg.id}.${cfg.run}.log`), 'a', 0o600) : 'ignore';
  const child = spawn(process.execPath, [RUNNER_BIN, file], { detached: true, stdio: ['ignore', out, out] });
  if (typeof out === 'number') closeSync(out);
  return new Promise((resolve, reject) => {
    child.once('error', (e) => reject(new LaunchError('local', `cannot start the job runner: ${e.message}`, { cause: e })));
    child.once('spawn', () => {
      child.unref();
      resolve(child.pid!);
    });
  });
}

/**
 * The runner host of this machine: one long-lived runner process (`job-runner.mjs --host`) per
 * host and cluster that runs the local jobs it is sent, so a local job costs a process spawn,
 * not a node start. It is detached and outlives the manager; a restarted manager sends to the
 * same one. Started on first need, again if it has gone (it exits after a minute idle).
 */
export class LocalRunnerHost {
  private starting: Promise<void> | null = null;
  readonly subject: string;

  constructor(
    private readonly nc: NatsConnection,
    private readonly conn: { url: string; user?: string; password?: string; cluster: string },
    readonly hostKey: string,
  ) {
    this.subject = `colony.${conn.cluster}.jobs.host.${hostKey}`;
  }

  /** Hands a run to the host, starting the host first if none answers. */
  async start(cfg: RunnerConfig): Promise<void> {
    const { url: _u, user: _n, password: _p, ...job } = cfg;
    const data = new TextEncoder().encode(JSON.stringify(job));
    let last: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await this.nc.request(this.subject, data, { timeout: 10_000 });
        return;
      } catch (e) {
        // No responders: no host yet (or it went idle). A timeout: ask again; the claim keeps it to one run.
        last = e;
        if (/no responders|503/i.test(String((e as Error).message) + String((e as { code?: string }).code))) await this.spawnHost();
      }
    }
    throw new LaunchError('local', `the runner host did not take job ${cfg.id}: ${(last as Error)?.message}`, { cause: last });
  }

  private spawnHost(): Promise<void> {
    this.starting ??= (async () => {
      const ready = this.nc.subscribe(`${this.subject}.ready`, { max: 1 });
      try {
        const file = await configFile({ ...this.conn, hostKey: this.hostKey, id: 'host', run: 0 } as unknown as RunnerConfig);
        const logDir = process.env.COLONY_JOBS_RUNNER_LOG;
        const out = logDir ? openSync(join(logDir, `host-${this.hostKey}.log`), 'a', 0o600) : 'ignore';
        const child = spawn(process.execPath, [RUNNER_BIN, '--host', file], { detached: true, stdio: ['ignore', out, out] });
        if (typeof out === 'number') closeSync(out);
        child.once('error', () => ready.unsubscribe());
        child.unref();
        const timer = setTimeout(() => ready.unsubscribe(), 30_000);
        for await (const _ of ready) break;
        clearTimeout(timer);
      } finally {
        ready.unsubscribe();
        this.starting = null;
      }
    })();
    return this.starting;
  }
}

/** `[user@]host[:port]` as ssh's target and flags. */
export function sshTarget(host: string): { target: string; flags: string[] } {
  const m = /^(.*?)(?::(\d+))?$/.exec(host)!;
  return { target: m[1]!, flags: m[2] ? ['-p', m[2]] : [] };
}

/** The remote script: config from stdin into a private file, then the runner under setsid. */
export function sshScript(opts: SshJobOptions): string {
  const runner = [opts.exename ?? 'node', opts.runner ?? RUNNER_BIN].map(shellQuote).join(' ');
  return [
    'umask 077',
    'f=$(mktemp "${TMPDIR:-/tmp}/colony-job.XXXXXX") || exit 70',
    'cat > "$f" || exit 71',
    `setsid ${runner} "$f" </dev/null >/dev/null 2>&1 &`,
    'echo "colony-runner:$!"',
  ].join('\n');
}

/** Starts a runner on `cfg.spec.host` over the system ssh; resolves with its remote pid. */
export async function startSshRunner(cfg: RunnerConfig, opts: SshJobOptions): Promise<number> {
  const { target, flags } = sshTarget(cfg.spec.host!);
  const argv = [...(opts.sshflags ?? []), ...flags, '-o', 'BatchMode=yes', target, `sh -c ${shellQuote(sshScript(opts))}`];
  const child = spawn('ssh', argv, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4096)));
  child.stdin.on('error', () => undefined);
  child.stdin.end(JSON.stringify(cfg));
  const code = await new Promise<number | null>((resolve) => {
    child.once('error', (e) => {
      err += e.message;
      resolve(null);
    });
    child.once('close', (c) => resolve(c));
  });
  const m = /colony-runner:(\d+)/.exec(out);
  if (code !== 0 || !m) {
    throw new LaunchError('ssh', `ssh to ${cfg.spec.host} could not start the job runner (exit code ${code})`, { code, stderr: err.trim() });
  }
  return Number(m[1]);
}

/** The user-data of a job's instance: the user's lines, the config file, then the runner. */
export function ec2UserData(cfg: RunnerConfig, opts: Ec2JobOptions): string {
  const runner = opts.colonyDir ? join(opts.colonyDir, relative(COLONY_ROOT, RUNNER_BIN)) : RUNNER_BIN;
  const json = JSON.stringify({ ...cfg, url: opts.natsUrl ?? cfg.url });
  return [
    '#!/bin/bash',
    `# Colony job ${cfg.id} run ${cfg.run} (cluster ${cfg.cluster}).`,
    opts.userData ?? '',
    'umask 077',
    'f=$(mktemp)',
    "cat > \"$f\" <<'COLONY_JOB_CONFIG'",
    json,
    'COLONY_JOB_CONFIG',
    `exec ${shellQuote(opts.exename ?? 'node')} ${shellQuote(runner)} "$f"`,
    '',
  ].join('\n');
}

/** EC2 calls the manager makes: start a job's instance, count the cluster's, terminate one. */
export class Ec2Jobs {
  private clientP: Promise<{ ec2: EC2Client; sdk: typeof import('@aws-sdk/client-ec2') }> | null = null;

  constructor(readonly opts: Ec2JobOptions, readonly cluster: string) {}

  private client() {
    this.clientP ??= (async () => {
      const sdk = await import('@aws-sdk/client-ec2');
      const ec2 = this.opts.client ?? new sdk.EC2Client({
        region: this.opts.region ?? 'us-east-1',
        ...(this.opts.endpoint ? { endpoint: this.opts.endpoint } : {}),
        ...(this.opts.credentials ? { credentials: this.opts.credentials } : {}),
      });
      return { ec2, sdk };
    })();
    return this.clientP;
  }

  /** Starts the job's instance; resolves with its id. */
  async start(cfg: RunnerConfig): Promise<string> {
    const { ec2, sdk } = await this.client();
    const tags = { Name: `colony-job-${cfg.id}`, 'colony:jobs': this.cluster, 'colony:job': cfg.id, ...this.opts.tags };
    try {
      const out = await ec2.send(new sdk.RunInstancesCommand({
        ImageId: this.opts.imageId,
        InstanceType: (this.opts.instanceType ?? 't3.micro') as never,
        MinCount: 1,
        MaxCount: 1,
        SubnetId: this.opts.subnetId,
        KeyName: this.opts.keyName,
        SecurityGroupIds: this.opts.securityGroupIds,
        InstanceInitiatedShutdownBehavior: 'terminate',
        UserData: Buffer.from(ec2UserData(cfg, this.opts)).toString('base64'),
        TagSpecifications: [{ ResourceType: 'instance', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }],
      }));
      const id = out.Instances?.[0]?.InstanceId;
      if (!id) throw new Error(`RunInstances returned no instance: ${JSON.stringify(out)}`);
      return id;
    } catch (e) {
      const x = e as Error & { $metadata?: { httpStatusCode?: number } };
      throw new LaunchError('ec2', `EC2 refused to start an instance for job ${cfg.id} (${x.name})`, { code: x.$metadata?.httpStatusCode ?? null, stderr: `${x.name}: ${x.message}`, cause: e });
    }
  }

  /** Instances of this cluster's jobs that are pending or running, as EC2 reports them. */
  async count(): Promise<number> {
    const { ec2, sdk } = await this.client();
    const out = await ec2.send(new sdk.DescribeInstancesCommand({
      Filters: [{ Name: 'tag:colony:jobs', Values: [this.cluster] }, { Name: 'instance-state-name', Values: ['pending', 'running'] }],
    }));
    let n = 0;
    for (const r of out.Reservations ?? []) n += r.Instances?.length ?? 0;
    return n;
  }

  async terminate(instanceId: string): Promise<void> {
    const { ec2, sdk } = await this.client();
    try {
      await ec2.send(new sdk.TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    } catch (e) {
      if (!/InvalidInstanceID\.NotFound/.test(`${(e as Error).name} ${(e as Error).message}`)) throw e;
    }
  }
}

export { COLONY_ROOT };
