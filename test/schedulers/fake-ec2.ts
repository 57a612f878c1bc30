/**
 * A FAKE EC2 endpoint for tests: it speaks enough of EC2's query API (form-encoded POST,
 * version 2016-11-15 XML answers and error documents) for the real `@aws-sdk/client-ec2` to run
 * RunInstances, DescribeInstances and TerminateInstances against it. An "instance" is a local
 * process group running the instance's user-data with bash. EC2 cannot be had here.
 *
 * Instances go pending -> running at once (their user-data starts), running -> terminated when
 * their user-data exits (as with InstanceInitiatedShutdownBehavior=terminate) or on
 * TerminateInstances (SIGTERM to the process group, SIGKILL 5 s later).
 *
 * @example
 * await using ec2 = await startFakeEC2();
 * const client = new EC2Client({ region: 'us-east-1', endpoint: ec2.url, credentials: FAKE_CREDENTIALS });
 *
 * Run standalone: node --import tsx test/schedulers/fake-ec2.ts [--port 8787]
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync, closeSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Credentials the SDK signs with; the fake checks that a signature is there, not that it is right. */
export const FAKE_CREDENTIALS = { accessKeyId: 'AKIAFAKEFAKEFAKE', secretAccessKey: 'fake/secret' };

const XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/';
const STATES = { pending: 0, running: 16, 'shutting-down': 32, terminated: 48 } as const;
type StateName = keyof typeof STATES;

export interface FakeInstance {
  id: string;
  imageId: string;
  instanceType: string;
  subnetId: string | null;
  keyName: string | null;
  tags: Record<string, string>;
  userData: string;
  state: StateName;
  launchTime: Date;
  process: ChildProcess | null;
  exitCode: number | null;
  reservationId: string;
  /** The user-data's output. */
  log: string;
  /** Calls seen, for tests. */
}

export interface FakeEC2 {
  url: string;
  instances: Map<string, FakeInstance>;
  /** Every request's Action, in order. */
  calls: string[];
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startFakeEC2(opts: { port?: number; logDir?: string } = {}): Promise<FakeEC2> {
  const instances = new Map<string, FakeInstance>();
  const calls: string[] = [];
  const logDir = opts.logDir ?? mkdtempSync(join(tmpdir(), 'colony-fake-ec2-'));

  const server = createServer((req, res) => {
    void handle(req, res).catch((e) => sendError(res, 500, 'InternalError', (e as Error).message));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256')) {
      return sendError(res, 401, 'AuthFailure', 'AWS was not able to validate the provided access credentials');
    }
    const action = body.get('Action') ?? '';
    calls.push(action);
    switch (action) {
      case 'RunInstances':
        return runInstances(body, res);
      case 'DescribeInstances':
        return describeInstances(body, res);
      case 'TerminateInstances':
        return terminateInstances(body, res);
      default:
        return sendError(res, 400, 'InvalidAction', `The action ${action} is not valid for this web service.`);
    }
  }

  function runInstances(q: URLSearchParams, res: ServerResponse): void {
    const imageId = q.get('ImageId') ?? '';
    if (!/^ami-[0-9a-f]{8,17}$/.test(imageId)) {
      return sendError(res, 400, 'InvalidAMIID.Malformed', `Invalid id: "${imageId}" (expecting "ami-...")`);
    }
    const min = Number(q.get('MinCount') ?? 1);
    const max = Number(q.get('MaxCount') ?? min);
    if (!(min >= 1) || max < min) return sendError(res, 400, 'InvalidParameterValue', 'MinCount and MaxCount must be >= 1 and MinCount <= MaxCount');
    const tags: Record<string, string> = {};
    for (let i = 1; q.has(`TagSpecification.${i}.ResourceType`); i++) {
      for (let j = 1; q.has(`TagSpecification.${i}.Tag.${j}.Key`); j++) tags[q.get(`TagSpecification.${i}.Tag.${j}.Key`)!] = q.get(`TagSpecification.${i}.Tag.${j}.Value`) ?? '';
    }
    const userData = Buffer.from(q.get('UserData') ?? '', 'base64').toString('utf8');
    const reservationId = `r-${randomBytes(8).toString('hex').slice(0, 17)}`;
    const made: FakeInstance[] = [];
    for (let n = 0; n < max; n++) {
      const inst: FakeInstance = {
        id: `i-${randomBytes(9).toString('hex').slice(0, 17)}`, imageId, instanceType: q.get('InstanceType') ?? 'm1.small',
        subnetId: q.get('SubnetId'), keyName: q.get('KeyName'), tags, userData, state: 'pending', launchTime: new Date(),
        process: null, exitCode: null, reservationId, log: join(logDir, ''),
      };
      inst.log = join(logDir, `${inst.id}.log`);
      instances.set(inst.id, inst);
      made.push(inst);
      boot(inst);
    }
    send(res, 'RunInstancesResponse', `<reservationId>${reservationId}</reservationId><ownerId>123456789012</ownerId><groupSet/><instancesSet>${made.map((i) => instanceXml(i, 'pending')).join('')}</instancesSet>`);
  }

  /** The instance "boots": its user-data runs as a local process group. */
  function boot(inst: FakeInstance): void {
    const fd = openSync(inst.log, 'a');
    const child = spawn('/bin/bash', ['-c', inst.userData], { stdio: ['ignore', fd, fd], detached: true, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/' } });
    closeSync(fd);
    inst.process = child;
    inst.state = 'running';
    child.once('exit', (code) => {
      inst.exitCode = code;
      inst.state = 'terminated';
    });
  }

  function selected(q: URLSearchParams): FakeInstance[] | string {
    const ids: string[] = [];
    for (let i = 1; q.has(`InstanceId.${i}`); i++) ids.push(q.get(`InstanceId.${i}`)!);
    if (!ids.length) return [...instances.values()];
    const missing = ids.filter((id) => !instances.has(id));
    if (missing.length) return missing.join(', ');
    return ids.map((id) => instances.get(id)!);
  }

  function describeInstances(q: URLSearchParams, res: ServerResponse): void {
    const list = selected(q);
    if (typeof list === 'string') return sendError(res, 400, 'InvalidInstanceID.NotFound', `The instance IDs '${list}' do not exist`);
    const filters: { name: string; values: string[] }[] = [];
    for (let i = 1; q.has(`Filter.${i}.Name`); i++) {
      const values: string[] = [];
      for (let j = 1; q.has(`Filter.${i}.Value.${j}`); j++) values.push(q.get(`Filter.${i}.Value.${j}`)!);
      filters.push({ name: q.get(`Filter.${i}.Name`)!, values });
    }
    const match = (inst: FakeInstance) => filters.every((f) => {
      if (f.name === 'instance-state-name') return f.values.includes(inst.state);
      if (f.name.startsWith('tag:')) return f.values.includes(inst.tags[f.name.slice(4)] ?? '\0');
      return true;
    });
    const byRes = new Map<string, FakeInstance[]>();
    for (const inst of list.filter(match)) byRes.set(inst.reservationId, [...(byRes.get(inst.reservationId) ?? []), inst]);
    const items = [...byRes].map(([rid, insts]) => `<item><reservationId>${rid}</reservationId><ownerId>123456789012</ownerId><groupSet/><instancesSet>${insts.map((i) => instanceXml(i, i.state)).join('')}</instancesSet></item>`);
    send(res, 'DescribeInstancesResponse', `<reservationSet>${items.join('')}</reservationSet>`);
  }

  function terminateInstances(q: URLSearchParams, res: ServerResponse): void {
    const list = selected(q);
    if (typeof list === 'string') return sendError(res, 400, 'InvalidInstanceID.NotFound', `The instance IDs '${list}' do not exist`);
    const items = list.map((inst) => {
      const previous = inst.state;
      if (inst.state !== 'terminated') {
        inst.state = 'shutting-down';
        const pid = inst.process?.pid;
        if (pid) {
          try {
            process.kill(-pid, 'SIGTERM');
          } catch {
            inst.state = 'terminated';
          }
          setTimeout(() => {
            try {
              process.kill(-pid, 'SIGKILL');
            } catch {
              /* gone */
            }
          }, 5000).unref();
        }
      }
      return `<item><instanceId>${inst.id}</instanceId><currentState><code>${STATES[inst.state]}</code><name>${inst.state}</name></currentState><previousState><code>${STATES[previous]}</code><name>${previous}</name></previousState></item>`;
    });
    send(res, 'TerminateInstancesResponse', `<instancesSet>${items.join('')}</instancesSet>`);
  }

  function instanceXml(i: FakeInstance, state: StateName): string {
    const tags = Object.entries(i.tags).map(([k, v]) => `<item><key>${esc(k)}</key><value>${esc(v)}</value></item>`).join('');
    return `<item><instanceId>${i.id}</instanceId><imageId>${esc(i.imageId)}</imageId>` +
      `<instanceState><code>${STATES[state]}</code><name>${state}</name></instanceState>` +
      `<privateDnsName>ip-127-0-0-1.ec2.internal</privateDnsName><dnsName/><reason/>` +
      (i.keyName ? `<keyName>${esc(i.keyName)}</keyName>` : '') +
      `<amiLaunchIndex>0</amiLaunchIndex><instanceType>${esc(i.instanceType)}</instanceType>` +
      `<launchTime>${i.launchTime.toISOString()}</launchTime><placement><availabilityZone>us-east-1a</availabilityZone><tenancy>default</tenancy></placement>` +
      (i.subnetId ? `<subnetId>${esc(i.subnetId)}</subnetId>` : '') +
      `<privateIpAddress>127.0.0.1</privateIpAddress>` +
      (state === 'terminated' ? `<stateReason><code>Client.UserInitiatedShutdown</code><message>Client.UserInitiatedShutdown: User initiated shutdown</message></stateReason>` : '') +
      `<tagSet>${tags}</tagSet></item>`;
  }

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });

  let stopping: Promise<void> | null = null;
  const stop = () => (stopping ??= (async () => {
    for (const inst of instances.values()) {
      const pid = inst.process?.pid;
      if (pid && inst.state !== 'terminated') {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  })());
  return { url: `http://127.0.0.1:${port}`, instances, calls, stop, [Symbol.asyncDispose]: stop };
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function send(res: ServerResponse, root: string, inner: string): void {
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${XMLNS}"><requestId>${crypto.randomUUID()}</requestId>${inner}</${root}>`;
  res.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8' });
  res.end(xml);
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>${esc(message)}</Message></Error></Errors><RequestID>${crypto.randomUUID()}</RequestID></Response>`;
  res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8' });
  res.end(xml);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--port');
  const ec2 = await startFakeEC2({ port: i > 0 ? Number(process.argv[i + 1]) : 0 });
  console.log(`fake EC2 endpoint on ${ec2.url} (credentials ${FAKE_CREDENTIALS.accessKeyId} / ${FAKE_CREDENTIALS.secretAccessKey})`);
  process.once('SIGINT', () => void ec2.stop().then(() => process.exit(0)));
  process.once('SIGTERM', () => void ec2.stop().then(() => process.exit(0)));
}
