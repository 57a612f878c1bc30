/**
 * EC2Manager: one EC2 instance per worker, through `@aws-sdk/client-ec2` (the JobManager seed's
 * EC2 job class). `RunInstances` carries user-data that starts the worker; the manager counts its
 * instances by polling `DescribeInstances` (as the seed does, instead of tracking them locally)
 * and calls `TerminateInstances` when a worker is finalized or a launch is cancelled.
 *
 * The instance must reach the cluster's NATS (`natsUrl`) and have node and Colony installed at
 * `exename` and `colonyDir` (bake them into the AMI, or install them in `userData`). The user-data
 * holds the NATS credentials: anyone who may read the instance's user-data may read them, so give
 * workers a NATS user of their own (see deploy/).
 *
 * @example
 * const ec2 = new EC2Manager({ region: 'eu-west-1', imageId: 'ami-0abc', instanceType: 'c7g.large',
 *   subnetId: 'subnet-1', keyName: 'ops', tags: { team: 'climate' }, natsUrl: 'tls://nats.example.org:4222' });
 * await cluster.addprocs(ec2, { count: 4 });
 */
import { join, relative } from 'node:path';
import type { EC2Client, Instance } from '@aws-sdk/client-ec2';
import { InvalidArgumentError, LaunchError } from '../runtime/transport/errors.ts';
import { AdapterManager } from './adapter-manager.ts';
import type { AdapterManagerOptions, Launch, Unit } from './adapter-manager.ts';
import { announceSubject } from './adapter-actor.ts';
import { COLONY_BIN, COLONY_ROOT } from './cluster-manager.ts';
import { JOB_WORKER_BIN, shellQuote } from './shell-scheduler.ts';

export interface EC2ManagerOptions extends AdapterManagerOptions {
  region: string;
  imageId: string;
  /** @default 't3.micro' */
  instanceType?: string;
  subnetId?: string;
  keyName?: string;
  securityGroupIds?: string[];
  /** Tags on every instance, beside Colony's own (`colony:cluster`, `colony:adapter`, `Name`). */
  tags?: Record<string, string>;
  /** Shell lines run by the instance before the worker starts (install node and Colony...). */
  userData?: string;
  /** The NATS URL as the instances reach it. @default the cluster's URL */
  natsUrl?: string;
  /** Node on the instance. @default 'node' */
  exename?: string;
  /** Where Colony is installed on the instance. @default this install's directory */
  colonyDir?: string;
  /** An EC2 API endpoint other than AWS's (a local test endpoint). */
  endpoint?: string;
  /** Static credentials; by default the SDK's own chain (environment, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** A ready client (takes precedence over region, endpoint and credentials). */
  client?: EC2Client;
  /** DescribeInstances period while an instance starts or stops. @default 1000 */
  pollMs?: number;
  /** DescribeInstances period while every instance runs. @default 10000 */
  idlePollMs?: number;
}


const STATE_PENDING = new Set(['pending']);
const STATE_RUNNING = new Set(['running']);
const STATE_ENDED = new Set(['shutting-down', 'terminated', 'stopping', 'stopped']);

export class EC2Manager extends AdapterManager {
  readonly name = 'ec2';
  private clientP: Promise<EC2Client> | null = null;
  private sdk: typeof import('@aws-sdk/client-ec2') | null = null;

  constructor(readonly options: EC2ManagerOptions) {
    super('ec2', options);
    if (!options?.region && !options?.client) throw new InvalidArgumentError('region', 'EC2Manager needs a region');
    if (!options?.imageId) throw new InvalidArgumentError('imageId', 'EC2Manager needs an imageId');
    // Start loading the SDK now (about a second); the first launch would wait for it otherwise.
    this.client().catch(() => undefined);
  }

  /** The SDK loads on first use: it is large, and most programs never start an instance. */
  private async client(): Promise<EC2Client> {
    this.clientP ??= (async () => {
      this.sdk = await import('@aws-sdk/client-ec2');
      if (this.options.client) return this.options.client;
      return new this.sdk.EC2Client({
        region: this.options.region,
        ...(this.options.endpoint ? { endpoint: this.options.endpoint } : {}),
        ...(this.options.credentials ? { credentials: this.options.credentials } : {}),
      });
    })();
    return this.clientP;
  }

  /** The instance's user-data: the user's lines, the credentials, then the announcing worker. */
  userDataScript(launch: Launch, token: string): string {
    const p = launch.params;
    const argv = p.workerArgv(token).slice(2);
    const natsAt = argv.indexOf('--nats');
    if (natsAt >= 0 && this.options.natsUrl) argv[natsAt + 1] = this.options.natsUrl;
    const dir = this.options.colonyDir;
    const bin = (f: string) => (dir ? join(dir, relative(COLONY_ROOT, f)) : f);
    const own = p.workerArgv(token)[1] === COLONY_BIN;
    const entry = own
      ? [this.options.exename ?? 'node', bin(JOB_WORKER_BIN), '--announce', announceSubject(p.cluster, this.id), '--', ...argv]
      : [this.options.exename ?? 'node', ...p.workerArgv(token).slice(1).map((a, i) => (i === 0 ? bin(a) : a))];
    return [
      '#!/bin/bash',
      `# Colony worker instance (adapter ${this.id}, cluster ${p.cluster}).`,
      this.options.userData ?? '',
      'umask 077',
      ...Object.entries(p.env).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
      `exec ${entry.map(shellQuote).join(' ')}`,
      '',
    ].join('\n');
  }

  protected describe(launch: Launch): string[] {
    return ['RunInstances', `ImageId=${this.options.imageId}`, `InstanceType=${this.options.instanceType ?? 't3.micro'}`, `Count=${launch.count}`];
  }

  protected async start(launch: Launch): Promise<void> {
    const ec2 = await this.client();
    const { RunInstancesCommand } = this.sdk!;
    const o = this.options;
    launch.data.handshake = launch.params.workerArgv(launch.tokens[0]!)[1] === COLONY_BIN;
    // One instance per worker: each user-data carries its own launch token.
    const results = await Promise.allSettled(launch.tokens.map(async (token) => {
      const tags = { Name: `colony-${launch.params.cluster}`, 'colony:cluster': launch.params.cluster, 'colony:adapter': this.id, ...o.tags };
      const out = await ec2.send(new RunInstancesCommand({
        ImageId: o.imageId,
        InstanceType: (o.instanceType ?? 't3.micro') as never,
        MinCount: 1,
        MaxCount: 1,
        SubnetId: o.subnetId,
        KeyName: o.keyName,
        SecurityGroupIds: o.securityGroupIds,
        InstanceInitiatedShutdownBehavior: 'terminate',
        UserData: Buffer.from(this.userDataScript(launch, token)).toString('base64'),
        TagSpecifications: [{ ResourceType: 'instance', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }],
      }));
      const id = out.Instances?.[0]?.InstanceId;
      if (!id) throw new LaunchError(this.name, `RunInstances returned no instance: ${JSON.stringify(out)}`);
      // Placed in token order: addUnits takes the next token.
      return { id, token };
    }));
    for (const r of results) {
      if (r.status === 'fulfilled') this.addUnits(launch, r.value.id, [{ id: r.value.id, task: null, token: r.value.token }]);
    }
    this.schedulePoll(0);
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed) throw this.sdkError(failed.reason);
  }

  protected async cancel(units: Unit[]): Promise<void> {
    const ec2 = await this.client();
    const { TerminateInstancesCommand } = this.sdk!;
    try {
      await ec2.send(new TerminateInstancesCommand({ InstanceIds: units.map((u) => u.id) }));
    } catch (e) {
      // An instance that is gone already is not an error.
      if (!/InvalidInstanceID\.NotFound/.test(String((e as Error).name ?? '') + String((e as Error).message))) throw this.sdkError(e);
    }
    this.schedulePoll(0);
  }

  /** An instance keeps running (and costing) after its worker exits: terminate it at once. */
  protected onRetire(unit: Unit): void {
    void this.cancelUnits([unit]);
  }

  protected pollPeriods(): { busy: number; idle: number } {
    return { busy: this.options.pollMs ?? 1000, idle: this.options.idlePollMs ?? 10_000 };
  }

  /** Counts the instances by asking EC2 (DescribeInstances), as the JobManager seed does. */
  protected async pollUnits(live: Unit[]): Promise<void> {
    try {
      const ec2 = await this.client();
      const { DescribeInstancesCommand } = this.sdk!;
      const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: live.map((u) => u.id) }));
      const seen = new Map<string, Instance>();
      for (const r of out.Reservations ?? []) for (const i of r.Instances ?? []) if (i.InstanceId) seen.set(i.InstanceId, i);
      for (const u of live) {
        const inst = seen.get(u.id);
        const state = inst?.State?.Name ?? 'terminated';
        if (STATE_ENDED.has(state) || !inst) {
          this.unitEnded(u, { code: null, reason: state, stderr: inst?.StateReason?.Message ?? '' });
        } else if (STATE_RUNNING.has(state) && u.state === 'queued' && !u.launch.data.handshake) {
          this.unitStarted(u, inst.PrivateDnsName || inst.PrivateIpAddress || null);
        } else if (!STATE_PENDING.has(state) && !STATE_RUNNING.has(state)) {
          console.error(`colony: ec2: instance ${u.id} is in an unknown state '${state}'`);
        }
      }
    } catch (e) {
      console.error(`colony: ec2: DescribeInstances failed: ${(e as Error).message}`);
    }
  }

  /** An SDK error as a LaunchError: its code (`InvalidAMIID.Malformed`) and message as stderr. */
  private sdkError(e: unknown): LaunchError {
    if (e instanceof LaunchError) return e;
    const x = e as Error & { Code?: string; $metadata?: { httpStatusCode?: number } };
    const code = x.$metadata?.httpStatusCode ?? null;
    return new LaunchError(this.name, `EC2 refused the request (${x.name})`, { code, stderr: `${x.name}: ${x.message}`, cause: e });
  }
}
