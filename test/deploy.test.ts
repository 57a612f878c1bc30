/**
 * The production deployment (deploy/), without Docker: a real 3-node JetStream cluster started
 * from deploy/nats/nats.conf with certificates from deploy/certs/gen-certs.sh, then every role
 * of its `authorization` block tried for real, and a real Colony cluster run on it over TLS.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { connect, headers } from '@nats-io/transport-node';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import type { Envelope } from '../actors/index.ts';
import { decode, encode } from '../runtime/transport/codec.ts';
import { JournalConflictError } from '../runtime/transport/errors.ts';
import { Journal } from '../runtime/log/journal.ts';
import { connectNats } from '../runtime/transport/connection.ts';
import { DEPLOY_CONFIG, GEN_CERTS, startNatsCluster } from './helpers/nats-cluster.ts';
import type { Role, TestNatsCluster } from './helpers/nats-cluster.ts';
import { tempDir } from './helpers/cluster.ts';
import { processAlive, waitFor, waitForExit } from './helpers/wait.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const COLONY = join(ROOT, 'runtime/cli/colony.mjs');
const CHECK = join(ROOT, 'deploy/check/check.ts');
const NAME = 'prod';
const s = {
  evt: (kind: string, id: string) => `colony.${NAME}.evt.${kind}.${id}`,
  stream: `COLONY_${NAME}_EVENTS`,
  bucket: `KV_colony_${NAME}_state`,
};

/** The variables deploy/nats/nats.conf reads from the environment. */
function configVariables(conf: string): string[] {
  const body = conf.split('\n').map((l) => l.replace(/#.*$/, '')).join('\n');
  const vars = new Set<string>();
  // Unquoted $NAME is a variable; "$JS.API..." in quotes is a subject.
  for (const m of body.replace(/"[^"]*"/g, '').matchAll(/\$([A-Z][A-Z0-9_]*)/g)) vars.add(m[1]!);
  for (const own of ['DRIVER', 'WORKER', 'OBSERVER']) vars.delete(own); // defined in the config itself
  return [...vars].sort();
}

/** This process's environment for a Colony child, with TLS only from `tls` (runtime/transport/connection.ts). */
function colonyEnv(tls: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env, ...tls };
  for (const k of ['NODE_EXTRA_CA_CERTS', 'COLONY_NATS_CA', 'COLONY_NATS_CERT', 'COLONY_NATS_KEY']) if (!(k in tls)) delete env[k];
  return env;
}

/** `colony run deploy/check/check.ts` as the driver; resolves with its report. */
async function runCheck(url: string, name: string, creds: string, workers: number, env: NodeJS.ProcessEnv, diag: () => string): Promise<CheckReport> {
  const { stdout } = await promisify(execFile)(process.execPath, [COLONY, 'run', CHECK, '--nats', url, '--name', name, '--creds', creds, '--workers', String(workers), '--timeout', '30000'], { env, cwd: ROOT, timeout: 45_000 })
    .catch((e: { stdout?: string; stderr?: string; message: string }) => { throw new Error(`check failed: ${e.stdout ?? ''}${e.stderr ?? ''}${e.message}\n${diag()}`); });
  return JSON.parse(stdout.trim().split('\n').pop()!) as CheckReport;
}

interface CheckReport { ok: boolean; error?: string; workers: { pid: number; host: string }[]; peerFetch: { by: number; value: { pid: number } }; darraySum: number; events: number }

/** A worker process joining cluster `name` as user `worker`. */
function startWorker(url: string, name: string, creds: string, env: NodeJS.ProcessEnv, errs: string[]): ChildProcess {
  const p = spawn(process.execPath, [COLONY, 'worker', '--nats', url, '--name', name, '--creds', creds, '--grace', '20000'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  p.stderr!.on('data', (b: Buffer) => errs.push(b.toString()));
  return p;
}

async function writeCreds(dir: string, role: Role, password: string): Promise<string> {
  const file = join(dir, `${role}.json`);
  await writeFile(file, JSON.stringify({ user: role, password }), { mode: 0o600 });
  return file;
}

describe('deploy files', () => {
  const conf = readFileSync(DEPLOY_CONFIG, 'utf8');
  const vars = configVariables(conf);

  it('compose: three NATS nodes share the one config and set every variable it reads', () => {
    const compose = parse(readFileSync(join(ROOT, 'deploy/compose.yaml'), 'utf8'), { merge: true }) as {
      services: Record<string, { image: string; environment?: Record<string, unknown>; env_file?: string[]; volumes?: string[]; command?: string[]; entrypoint?: string[] }>;
    };
    // The passwords come from the env file gen-secrets.sh writes.
    const secretVars = ['COLONY_DRIVER_PASSWORD', 'COLONY_WORKER_PASSWORD', 'COLONY_OBSERVER_PASSWORD'];
    for (const n of ['nats-1', 'nats-2', 'nats-3']) {
      const svc = compose.services[n]!;
      expect(svc.image).toBe('nats:2.9-alpine');
      expect(svc.volumes).toContain('./nats/nats.conf:/etc/nats/colony/nats.conf:ro');
      expect(svc.env_file).toEqual(['${COLONY_SECRETS_DIR:-./secrets}/nats.env']);
      expect([...Object.keys(svc.environment ?? {}), ...secretVars].sort()).toEqual(vars);
      expect(svc.environment!.NATS_SERVER_NAME).toBe(n);
      const routes = [svc.environment!.NATS_ROUTE_1, svc.environment!.NATS_ROUTE_2];
      expect(routes.sort()).toEqual(['nats-1', 'nats-2', 'nats-3'].filter((o) => o !== n).map((o) => `nats-route://${o}:6222`));
    }
    const worker = compose.services.worker!;
    expect(worker.image).toBe('node:20-bookworm');
    expect(worker.command!.join(' ')).toMatch(/^--nats tls:\/\/nats-1:4222,tls:\/\/nats-2:4222,tls:\/\/nats-3:4222 --name \S+ --creds \S+$/);
    expect(worker.entrypoint).toEqual(['bash', 'deploy/worker-entrypoint.sh']);
    expect(worker.environment!.COLONY_NATS_CA).toBe('/run/secrets/colony-ca.pem');
  });

  it('k8s: the ConfigMap holds deploy/nats/nats.conf verbatim and the StatefulSet sets its variables', () => {
    const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy/k8s/nats.yaml'), 'utf8')).map((d) => d.toJS()) as {
      kind: string; data?: Record<string, string>;
      spec?: { replicas?: number; template: { spec: { containers: { env: { name: string }[]; envFrom?: unknown[] }[] } }; volumeClaimTemplates?: unknown[] };
    }[];
    // After editing nats.conf: node deploy/k8s/sync-config.mjs
    expect(docs.find((d) => d.kind === 'ConfigMap')!.data!['nats.conf']).toBe(conf);
    const sts = docs.find((d) => d.kind === 'StatefulSet')!;
    expect(sts.spec!.replicas).toBe(3);
    expect(sts.spec!.volumeClaimTemplates).toHaveLength(1);
    const c = sts.spec!.template.spec.containers[0]!;
    const set = [...c.env.map((e) => e.name), 'COLONY_DRIVER_PASSWORD', 'COLONY_OBSERVER_PASSWORD', 'COLONY_WORKER_PASSWORD'].sort();
    expect(set).toEqual(vars);
    expect(c.envFrom).toEqual([{ secretRef: { name: 'colony-nats-passwords' } }]);
    const workers = parseAllDocuments(readFileSync(join(ROOT, 'deploy/k8s/workers.yaml'), 'utf8')).map((d) => d.toJS());
    expect(workers.map((d: { kind: string }) => d.kind)).toEqual(['Deployment']);
  });

  it('gen-certs.sh is idempotent and keeps private keys private', async () => {
    const dir = await tempDir('colony-certs-');
    try {
      await promisify(execFile)('bash', [GEN_CERTS, dir]);
      const before = readFileSync(join(dir, 'server.pem'), 'utf8');
      const { stdout } = await promisify(execFile)('bash', [GEN_CERTS, dir]);
      expect(stdout).toBe(''); // nothing remade
      expect(readFileSync(join(dir, 'server.pem'), 'utf8')).toBe(before);
      for (const key of ['ca-key.pem', 'server-key.pem', 'client-key.pem']) expect(statSync(join(dir, key)).mode & 0o077).toBe(0);
      const { stdout: text } = await promisify(execFile)('openssl', ['x509', '-in', join(dir, 'server.pem'), '-noout', '-ext', 'subjectAltName']);
      for (const san of ['DNS:localhost', 'IP Address:127.0.0.1', 'DNS:nats-1', 'DNS:nats-2', 'DNS:nats-3']) expect(text).toContain(san);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const ignore = readFileSync(join(ROOT, 'deploy/.gitignore'), 'utf8');
    expect(ignore).toMatch(/^\*\.pem$/m);
    expect(ignore).toMatch(/^\/secrets\/$/m);
  });
});

/** A connection as one role, with the permission errors the server sent it. */
interface RoleConn {
  nc: NatsConnection;
  violations: string[];
}

describe('deploy - a real 3-node cluster from deploy/nats/nats.conf', () => {
  let c: TestNatsCluster;
  const conns: NatsConnection[] = [];
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    c = await startNatsCluster();
    await c.waitForMetaLeader();
  });
  afterAll(async () => {
    for (const child of children) if (child.pid && processAlive(child.pid)) child.kill('SIGKILL');
    await Promise.all(conns.map((nc) => nc.close().catch(() => undefined)));
    await c?.stop();
  });

  async function as(role: Role): Promise<RoleConn> {
    const nc = await connect({ servers: c.urls, user: role, pass: c.passwords[role], tls: { caFile: c.ca }, name: `deploy-test-${role}` });
    conns.push(nc);
    const violations: string[] = [];
    void (async () => {
      for await (const st of nc.status()) if (st.type === 'error') violations.push(st.error.message);
    })();
    return { nc, violations };
  }

  /** A plain publish is refused: the client hears of it, and the server logs it for this user. */
  async function publishDenied(conn: RoleConn, role: Role, subject: string): Promise<void> {
    conn.nc.publish(subject, new Uint8Array([1]));
    await conn.nc.flush();
    await waitFor(() => conn.violations.includes(`Permissions Violation for Publish to "${subject}"`), { message: `publish to ${subject} denied` });
    await serverLogged(role, 'Publish', subject);
  }

  async function subscribeDenied(conn: RoleConn, role: Role, subject: string): Promise<void> {
    const sub = conn.nc.subscribe(subject);
    const err = (await sub.closed) as Error | undefined;
    expect(err?.message).toBe(`Permissions Violation for Subscription to "${subject}"`);
    await serverLogged(role, 'Subscription', subject);
  }

  async function serverLogged(role: Role, what: 'Publish' | 'Subscription', subject: string): Promise<void> {
    await waitFor(async () => (await c.logs()).includes(`${what} Violation - User "${role}", Subject "${subject}"`), { message: `server log: ${what} violation by ${role} on ${subject}` });
  }

  /**
   * A request to a subscriber on another connection. That connection may sit on another node, and
   * interest crosses the routes a moment after its subscription: until then, "no responders".
   */
  function ask(nc: NatsConnection, subject: string, body: unknown): Promise<unknown> {
    return waitFor(async () => decode((await nc.request(subject, encode(body), { timeout: 2000 })).data) as object, { message: `a reply on ${subject}` });
  }

  function envelope(kind: Envelope['kind'], id: string, seq: number, type: string): Envelope {
    return { v: 1, kind, id, seq, at: Date.now(), type, from: seq === 1 ? null : 'a', to: 'a', data: {} } as Envelope;
  }

  it('the driver creates the event stream and the state bucket with 3 replicas', async () => {
    const d = await as('driver');
    const journal = await Journal.open(d.nc, NAME, { replicas: 3 });
    const jsm = await jetstreamManager(d.nc);
    for (const name of [s.stream, s.bucket]) {
      const info = await jsm.streams.info(name);
      expect(info.config.num_replicas).toBe(3);
      expect(info.cluster?.replicas ?? []).toHaveLength(2);
    }
    // The driver's own writes: a worker actor's event and snapshot.
    expect(await journal.append(envelope('worker', '2', 1, 'worker.registered'), 0, 'd1')).toBeGreaterThan(0);
    expect(d.violations).toEqual([]);
  });

  it('requires TLS: a plaintext client, a client that does not trust the CA and a wrong password are all refused', async () => {
    const node = c.nodes[0]!;
    const sock = tcpConnect({ host: '127.0.0.1', port: node.clientPort });
    let text = '';
    sock.on('data', (b) => { text += b.toString('latin1'); });
    await waitFor(() => text.includes('\r\n'), { message: 'INFO from the server' });
    expect(JSON.parse(text.slice(5, text.indexOf('\r\n'))).tls_required).toBe(true);
    sock.write(`CONNECT {"user":"driver","pass":"${c.passwords.driver}","verbose":false}\r\nPING\r\n`);
    await new Promise((r) => sock.once('close', r));
    expect(text).not.toContain('PONG');
    await expect(connect({ servers: c.urls, user: 'driver', pass: c.passwords.driver, reconnect: false })).rejects.toThrow(/certificate/);
    await expect(connect({ servers: c.urls, user: 'driver', pass: 'wrong', tls: { caFile: c.ca }, reconnect: false })).rejects.toThrow(/Authorization Violation/);
    const ok = await as('observer');
    expect(ok.nc.info?.tls_required).toBe(true);
  });

  it('a worker appends, reads its actors, serves and makes calls, but cannot manage streams or act as the driver', async () => {
    const d = await as('driver');
    const w = await as('worker');
    const peer = await as('worker');
    const journal = await Journal.attach(w.nc, NAME);

    // Appends with Nats-Msg-Id and Nats-Expected-Last-Subject-Sequence, like every worker append.
    const id = '7-deploy-1';
    const seq1 = await journal.append(envelope('ref', id, 1, 'ref.created'), 0, 'w7');
    const seq2 = await journal.append(envelope('ref', id, 2, 'ref.ready'), seq1, 'w7');
    await expect(journal.append(envelope('ref', id, 3, 'ref.freed'), seq1, 'w7b')).rejects.toBeInstanceOf(JournalConflictError);
    // Reads: the last event (direct get), a snapshot (KV put and get), the actor's events (ordered consumer).
    expect((await journal.last('ref', id))?.streamSeq).toBe(seq2);
    await journal.putSnapshot('ref', id, { kind: 'ref', id, value: 'ready', context: {}, status: 'active', seq: 2, streamSeq: seq2, at: 0, type: 'ref.ready' });
    expect((await journal.snapshot('ref', id))?.streamSeq).toBe(seq2);
    expect((await journal.read(`ref.${id}`)).map((e) => e.type)).toEqual(['ref.created', 'ref.ready']);

    // Its subjects: calls, values, control from the driver, and calls between workers.
    const served: string[] = [];
    const serve = (subject: string) => w.nc.subscribe(subject, { callback: (_e, m: Msg) => { served.push(subject); m.respond(encode({ ok: decode(m.data) })); } });
    for (const sub of [`colony.${NAME}.call.7`, `colony.${NAME}.ref.7`, `colony.${NAME}.ctl.7`, `colony.${NAME}.chunk.a1.0`]) serve(sub);
    const heard = { hb: 0, lost: 0 };
    w.nc.subscribe(`colony.${NAME}.hb.1`, { callback: () => { heard.hb++; } });
    w.nc.subscribe(`colony.${NAME}.evt.worker.*`, { callback: () => { heard.lost++; } });
    await w.nc.flush();
    expect(await ask(d.nc, `colony.${NAME}.call.7`, 21)).toEqual({ ok: 21 });
    expect(await ask(d.nc, `colony.${NAME}.ctl.7`, 'exit')).toEqual({ ok: 'exit' });
    expect(await ask(peer.nc, `colony.${NAME}.ref.7`, 'fetch')).toEqual({ ok: 'fetch' });
    expect(await ask(peer.nc, `colony.${NAME}.call.7`, 'spawn')).toEqual({ ok: 'spawn' });
    expect(await ask(peer.nc, `colony.${NAME}.chunk.a1.0`, 'read')).toEqual({ ok: 'read' });
    // Registration and heartbeats go to the driver.
    d.nc.subscribe(`colony.${NAME}.ctl.register`, { callback: (_e, m) => { m.respond(encode({ pid: 7 })); } });
    const hbs: string[] = [];
    d.nc.subscribe(`colony.${NAME}.hb.*`, { callback: (_e, m) => { hbs.push(m.subject); } });
    await d.nc.flush();
    expect(await ask(w.nc, `colony.${NAME}.ctl.register`, { token: 'join' })).toEqual({ pid: 7 });
    await waitFor(() => {
      // Heartbeats, like the real ones, go out again until heard.
      w.nc.publish(`colony.${NAME}.hb.7`, encode({ pid: 7 }));
      d.nc.publish(`colony.${NAME}.hb.1`, encode({ pid: 1 }));
      return hbs.includes(`colony.${NAME}.hb.7`) && heard.hb > 0;
    }, { intervalMs: 50, message: 'heartbeats both ways' });
    expect([...new Set(served)].sort()).toEqual([`colony.${NAME}.call.7`, `colony.${NAME}.chunk.a1.0`, `colony.${NAME}.ctl.7`, `colony.${NAME}.ref.7`]);
    expect(w.violations).toEqual([]);
    expect(peer.violations).toEqual([]);

    // What it may not do. JetStream administration is refused...
    const jsm = await jetstreamManager(w.nc);
    const refused = (op: string) => new RegExp(`Permissions Violation for Publish to "\\$JS\\.API\\.${op.replace(/\./g, '\\.')}`);
    await expect(jsm.streams.delete(s.stream)).rejects.toThrow(refused(`STREAM.DELETE.${s.stream}`));
    await expect(jsm.streams.purge(s.stream)).rejects.toThrow(refused(`STREAM.PURGE.${s.stream}`));
    await expect(jsm.streams.add({ name: 'ROGUE', subjects: ['rogue.>'] })).rejects.toThrow(refused('STREAM.CREATE.ROGUE'));
    await expect(jsm.streams.update(s.stream, { max_age: 1 })).rejects.toThrow(refused(`STREAM.UPDATE.${s.stream}`));
    await expect(jsm.streams.deleteMessage(s.stream, seq1)).rejects.toThrow(refused(`STREAM.MSG.DELETE.${s.stream}`));
    await expect(jsm.streams.delete(s.bucket)).rejects.toThrow(refused(`STREAM.DELETE.${s.bucket}`));
    // ...and so is acting for the driver or for another worker.
    await publishDenied(w, 'worker', `colony.${NAME}.hb.1`); // the driver's heartbeat
    await publishDenied(w, 'worker', `colony.${NAME}.ctl.8`); // exit/interrupt another worker
    await publishDenied(w, 'worker', `colony.${NAME}.evt.worker.8`); // a forged worker.lost
    await publishDenied(w, 'worker', `$KV.colony_${NAME}_state.worker.8`); // a forged worker snapshot
    await publishDenied(w, 'worker', `colony.${NAME}.jobs.submit`);
    await subscribeDenied(w, 'worker', `colony.${NAME}.ctl.register`); // steal registrations
    await subscribeDenied(w, 'worker', `colony.${NAME}.call.1`); // the driver's calls
    await subscribeDenied(w, 'worker', `colony.${NAME}.evt.>`); // the whole live log
    // The stream is intact.
    expect((await (await jetstreamManager(d.nc)).streams.info(s.stream)).state.messages).toBeGreaterThanOrEqual(3);
  });

  it('an observer reads events, snapshots and heartbeats but cannot append or write', async () => {
    const d = await as('driver');
    const o = await as('observer');
    const journal = await Journal.attach(o.nc, NAME);
    const all = await journal.read('>');
    expect(all.map((e) => e.type)).toEqual(expect.arrayContaining(['worker.registered', 'ref.created', 'ref.ready']));
    expect((await journal.snapshot('ref', '7-deploy-1'))?.type).toBe('ref.ready');
    expect((await journal.last('ref', '7-deploy-1'))?.type).toBe('ref.ready');
    const keys: string[] = [];
    for await (const k of await journal.kv.keys()) keys.push(k);
    expect(keys).toContain('ref.7-deploy-1');
    // Live: the log and heartbeats.
    const live: string[] = [];
    o.nc.subscribe(`colony.${NAME}.evt.>`, { callback: (_e, m) => { live.push(decode<Envelope>(m.data).type); } });
    o.nc.subscribe(`colony.${NAME}.hb.*`, { callback: (_e, m) => { live.push(m.subject); } });
    await o.nc.flush();
    // Once a heartbeat arrives, the earlier subscription to the log has crossed the routes too.
    await waitFor(() => {
      d.nc.publish(`colony.${NAME}.hb.1`, encode({ pid: 1 }));
      return live.includes(`colony.${NAME}.hb.1`);
    }, { intervalMs: 50, message: 'a live heartbeat' });
    const dj = await Journal.attach(d.nc, NAME);
    await dj.append(envelope('worker', '3', 1, 'worker.registered'), 0, 'd1');
    await waitFor(() => live.includes('worker.registered'), { message: 'a live event' });
    expect(o.violations).toEqual([]);

    // An append (with the journal's headers) is refused, and so is any write.
    const h = headers();
    h.set('Nats-Msg-Id', 'ref.9.1.o');
    h.set('Nats-Expected-Last-Subject-Sequence', '0');
    await expect(o.nc.request(s.evt('ref', '9'), encode(envelope('ref', '9', 1, 'ref.created')), { headers: h, timeout: 5000 }))
      .rejects.toThrow(`Permissions Violation for Publish to "${s.evt('ref', '9')}"`);
    await serverLogged('observer', 'Publish', s.evt('ref', '9'));
    await expect(journal.putSnapshot('ref', '9', { kind: 'ref', id: '9', value: 'x', context: {}, status: 'active', seq: 1, streamSeq: 1, at: 0, type: 'x' }))
      .rejects.toThrow(/Permissions Violation for Publish to "\$KV\.colony_prod_state\.ref\.9"/);
    const jsm = await jetstreamManager(o.nc);
    await expect(jsm.streams.delete(s.stream)).rejects.toThrow(/Permissions Violation/);
    await publishDenied(o, 'observer', `colony.${NAME}.call.2`);
    await publishDenied(o, 'observer', `colony.${NAME}.ctl.2`);
    await publishDenied(o, 'observer', `colony.${NAME}.hb.1`);
    await subscribeDenied(o, 'observer', `colony.${NAME}.call.2`); // calls carry arguments: not for observers
    await subscribeDenied(o, 'observer', `colony.${NAME}.ctl.register`);
  });

  it('runs a real Colony cluster over TLS (COLONY_NATS_CA): driver, two workers and an observer, each with its own user', async () => {
    const creds = (role: Role) => writeCreds(c.dir, role, c.passwords[role]);
    const env = colonyEnv({ COLONY_NATS_CA: c.ca });
    const name = 'tlsrun';
    const before = (await c.logs()).split('\n').filter((l) => l.includes('Violation')).length;
    const errs: string[] = [];
    const workerCreds = await creds('worker');
    const procs = [1, 2].map(() => startWorker(c.url, name, workerCreds, env, errs));
    children.push(...procs);
    const check = runCheck(c.url, name, await creds('driver'), 2, env, () => `workers: ${errs.join('')}`);
    void check.catch(() => undefined); // awaited below; this only keeps an early failure handled
    // An observer follows the log live once the driver has created it.
    const djsm = await jetstreamManager((await as('driver')).nc);
    await waitFor(() => djsm.streams.info(`COLONY_${name}_EVENTS`), { timeoutMs: 30_000, message: 'the driver creates the stream' });
    const follow = spawn(process.execPath, [COLONY, 'events', '--follow', '--nats', c.url, '--name', name, '--creds', await creds('observer')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(follow);
    let followed = '';
    follow.stdout!.on('data', (b: Buffer) => { followed += b.toString(); });
    follow.stderr!.on('data', (b: Buffer) => { followed += b.toString(); errs.push(b.toString()); });

    const report = await check;
    expect(report.ok).toBe(true);
    expect(report.workers.map((w) => w.pid).sort()).toEqual([2, 3]);
    expect(report.peerFetch.value.pid).not.toBe(report.peerFetch.by);
    expect(report.darraySum).toBe(2 * 2000);
    // The driver's close() sent both workers exit.
    for (const p of procs) await waitForExit(p.pid!, 15_000);
    // The observer followed it live; it may be stopped like any follower.
    await waitFor(() => followed.includes('worker.exited'), { message: `observer saw the workers exit; got:\n${followed}` });
    follow.kill('SIGTERM');
    await waitForExit(follow.pid!);
    expect(followed).toMatch(/worker\.registered/);
    const { stdout: status } = await promisify(execFile)(process.execPath, [COLONY, 'status', '--nats', c.url, '--name', name, '--creds', await creds('observer'), '--interval', '100'], { env });
    expect(status).toMatch(/^2 +\S+ +exited/m);
    // Nothing any of them did was refused.
    const violations = (await c.logs()).split('\n').filter((l) => l.includes('Violation'));
    expect(violations.slice(before)).toEqual([]);
    expect(errs.join('')).not.toMatch(/Violation/);
  });

  it('keeps the log readable and writable with one of the three nodes down', async () => {
    const jsm = await jetstreamManager((await as('driver')).nc);
    const info = await jsm.streams.info(s.stream);
    const metaLeader = await c.waitForMetaLeader();
    // A node that leads neither the stream nor the meta group: no election needed. The client
    // talks to the other two (a client of the stopped node reconnects, and a request in flight
    // then is lost: Journal.append retries those).
    const victim = c.nodes.find((n) => n.name !== info.cluster?.leader && n.name !== metaLeader)!;
    const d = await connect({ servers: c.nodes.filter((n) => n !== victim).map((n) => n.url), user: 'driver', pass: c.passwords.driver, tls: { caFile: c.ca }, ignoreClusterUpdates: true });
    conns.push(d);
    await victim.stop();
    const journal = await Journal.attach(d, NAME);
    const seq = await journal.append(envelope('worker', '9', 1, 'worker.registered'), 0, 'd2');
    expect((await journal.last('worker', '9'))?.streamSeq).toBe(seq);
    // nats-server before 2.12 may place an ephemeral consumer of an R3 stream on the offline peer
    // (nats-server#7165); that create times out after 5 s and the next one picks again.
    const events = await waitFor(() => journal.read('worker.9'), { timeoutMs: 30_000, message: 'a read with one node down' });
    expect(events.map((e) => e.type)).toEqual(['worker.registered']);
  });
});

describe('deploy - client certificates (`verify: true` in the tls block)', () => {
  it('a client without a certificate is refused; Colony presents COLONY_NATS_CERT and COLONY_NATS_KEY', async () => {
    const dir = await tempDir('colony-mtls-');
    let c: TestNatsCluster | undefined;
    let worker: ChildProcess | undefined;
    try {
      const conf = readFileSync(DEPLOY_CONFIG, 'utf8').replace(/^tls \{\n/m, 'tls {\n  verify: true\n');
      expect(conf).toContain('tls {\n  verify: true\n');
      await writeFile(join(dir, 'nats.conf'), conf);
      c = await startNatsCluster({ config: join(dir, 'nats.conf') });
      await c.waitForMetaLeader();
      await expect(connect({ servers: c.urls, user: 'observer', pass: c.passwords.observer, tls: { caFile: c.ca }, reconnect: false }))
        .rejects.toThrow(/bad certificate|certificate required|ECONNRESET/);
      const cc = c;
      await waitFor(async () => (await cc.logs()).includes("TLS handshake error: tls: client didn't provide a certificate"), { message: 'the server names the missing certificate' });
      // Colony's own connect keeps retrying the handshake and ends in a timeout: its error says what is missing.
      const saved = { ...process.env };
      process.env.COLONY_NATS_CA = c.ca;
      delete process.env.COLONY_NATS_CERT;
      delete process.env.COLONY_NATS_KEY;
      try {
        await expect(connectNats({ url: c.url, user: 'observer', password: c.passwords.observer }, 'colony-no-cert', { timeoutMs: 2000 }))
          .rejects.toMatchObject({ name: 'NatsUnreachableError', message: expect.stringMatching(/set COLONY_NATS_CERT and COLONY_NATS_KEY/) });
      } finally {
        process.env = saved;
      }
      const env = colonyEnv({ COLONY_NATS_CA: c.ca, COLONY_NATS_CERT: join(c.certDir, 'client.pem'), COLONY_NATS_KEY: join(c.certDir, 'client-key.pem') });
      const errs: string[] = [];
      worker = startWorker(c.url, 'mtls', await writeCreds(dir, 'worker', c.passwords.worker), env, errs);
      const report = await runCheck(c.url, 'mtls', await writeCreds(dir, 'driver', c.passwords.driver), 1, env, () => `worker: ${errs.join('')}`);
      expect(report.error).toBeUndefined();
      expect(report.workers.map((w) => w.pid)).toEqual([2]);
      await waitForExit(worker.pid!, 15_000);
    } finally {
      if (worker?.pid && processAlive(worker.pid)) worker.kill('SIGKILL');
      await c?.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
