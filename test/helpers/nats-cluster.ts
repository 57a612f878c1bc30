/**
 * Test helper: a real 3-node JetStream cluster started from the production config,
 * deploy/nats/nats.conf, the way deploy/compose.yaml starts it: one config, per-node values in
 * environment variables, certificates from deploy/certs/gen-certs.sh, one password per role.
 * Everything listens on 127.0.0.1 on free ports and lives in a fresh temp dir.
 *
 * @example
 * ```ts
 * await using nc3 = await startNatsCluster();
 * const nc = await connect({ servers: nc3.urls, user: 'driver', pass: nc3.passwords.driver, tls: { caFile: nc3.ca } });
 * ```
 *
 * With `plain: true` the nodes run {@link PLAIN_CONFIG} instead: the same cluster and JetStream,
 * without TLS or users (`nats://` URLs), for tests about failover rather than security.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { findNatsServer } from '../../runtime/transport/nats-server.ts';
import { waitFor } from './wait.ts';

/** deploy/nats/nats.conf */
export const DEPLOY_CONFIG = fileURLToPath(new URL('../../deploy/nats/nats.conf', import.meta.url));
/** deploy/certs/gen-certs.sh */
export const GEN_CERTS = fileURLToPath(new URL('../../deploy/certs/gen-certs.sh', import.meta.url));

/**
 * A 3-node JetStream cluster without TLS or users, for tests about failover (the same per-node
 * variables as deploy/nats/nats.conf).
 */
export const PLAIN_CONFIG = `server_name: $NATS_SERVER_NAME
host: $NATS_HOST
port: $NATS_CLIENT_PORT
http_port: $NATS_HTTP_PORT
max_payload: 8MB
jetstream { store_dir: $NATS_STORE_DIR, max_memory_store: 256MB, max_file_store: 4GB }
cluster {
  name: colony
  host: $NATS_HOST
  port: $NATS_CLUSTER_PORT
  routes: [ $NATS_ROUTE_1, $NATS_ROUTE_2 ]
}
`;

/** The roles deploy/nats/nats.conf defines, one user each. */
export type Role = 'driver' | 'worker' | 'observer';

export interface ClusterNode {
  /** `nats-1`, `nats-2`, `nats-3` (NATS_SERVER_NAME). */
  name: string;
  clientPort: number;
  clusterPort: number;
  httpPort: number;
  /** `tls://127.0.0.1:<clientPort>` */
  url: string;
  /** The environment the node was started with (the config's parameters). */
  env: Record<string, string>;
  logFile: string;
  pid: number;
  /** SIGTERM (SIGKILL after 5 s); resolves once the process is gone. */
  stop(): Promise<void>;
  /** SIGKILL at once (a crashed node); resolves once the process is gone. */
  kill(): Promise<void>;
  /** Whether the process still runs. */
  running(): boolean;
}

export interface TestNatsCluster {
  /** The temp dir: certs/, one dir per node (store, log). */
  dir: string;
  /** gen-certs.sh output: ca.pem, server.pem, client.pem and keys. */
  certDir: string;
  /** The CA certificate clients must trust. */
  ca: string;
  nodes: ClusterNode[];
  /** Client URLs of all nodes. */
  urls: string[];
  /** The same, comma separated, as `--nats` and `Cluster.start({ nats })` take them. */
  url: string;
  passwords: Record<Role, string>;
  /** The server logs, concatenated (to look for "Permissions Violation"). */
  logs(): Promise<string>;
  /** Resolves once every running node sees the same JetStream meta leader. */
  waitForMetaLeader(timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const STOP_GRACE_MS = 5_000;
const running = new Set<ChildProcess>();
let hooked = false;

/** Free TCP ports on 127.0.0.1, all held at once so none is handed out twice. */
async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      await new Promise<void>((res, rej) => {
        s.once('error', rej);
        s.listen(0, '127.0.0.1', () => res());
      });
      servers.push(s);
    }
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/** A password as deploy/gen-secrets.sh makes them: a letter, then hex (nats parses env values). */
function password(): string {
  return `p${randomBytes(16).toString('hex')}`;
}

interface Jsz {
  meta_cluster?: { leader?: string; cluster_size?: number; replicas?: { current: boolean }[] };
}

/**
 * Starts nodes `nats-1..3` from deploy/nats/nats.conf and waits until their client ports accept
 * connections (not for a meta leader: call {@link TestNatsCluster.waitForMetaLeader}).
 */
export async function startNatsCluster(opts: { config?: string; plain?: boolean } = {}): Promise<TestNatsCluster> {
  const binary = findNatsServer();
  const dir = await mkdtemp(join(tmpdir(), 'colony-deploy-'));
  let config = opts.config ?? DEPLOY_CONFIG;
  if (opts.plain) {
    config = join(dir, 'nats-plain.conf');
    await writeFile(config, PLAIN_CONFIG);
  }
  const certDir = join(dir, 'certs');
  const nodes: ClusterNode[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    if (!opts.plain) await promisify(execFile)('bash', [GEN_CERTS, certDir]);
    const ports = await freePorts(9);
    const passwords: Record<Role, string> = { driver: password(), worker: password(), observer: password() };
    const names = ['nats-1', 'nats-2', 'nats-3'];
    const clusterPorts = names.map((_, i) => ports[3 * i + 1]!);
    if (!hooked) {
      hooked = true;
      process.on('exit', () => {
        for (const c of running) c.kill('SIGKILL');
      });
    }
    for (const [i, name] of names.entries()) {
      const [clientPort, clusterPort, httpPort] = ports.slice(3 * i, 3 * i + 3) as [number, number, number];
      const others = clusterPorts.filter((_, j) => j !== i);
      const nodeDir = join(dir, name);
      await mkdir(nodeDir, { recursive: true });
      const env: Record<string, string> = {
        NATS_SERVER_NAME: name,
        NATS_HOST: '127.0.0.1',
        NATS_CLIENT_PORT: String(clientPort),
        NATS_CLUSTER_PORT: String(clusterPort),
        NATS_HTTP_PORT: String(httpPort),
        NATS_ROUTE_1: `nats-route://127.0.0.1:${others[0]}`,
        NATS_ROUTE_2: `nats-route://127.0.0.1:${others[1]}`,
        NATS_STORE_DIR: join(nodeDir, 'store'),
        NATS_TLS_CERT: join(certDir, 'server.pem'),
        NATS_TLS_KEY: join(certDir, 'server-key.pem'),
        NATS_TLS_CA: join(certDir, 'ca.pem'),
        COLONY_DRIVER_PASSWORD: passwords.driver,
        COLONY_WORKER_PASSWORD: passwords.worker,
        COLONY_OBSERVER_PASSWORD: passwords.observer,
      };
      const logFile = join(nodeDir, 'nats-server.log');
      const log = await open(logFile, 'a', 0o600);
      let child: ChildProcess;
      try {
        // Only PATH from this process: the config must not pick up anything else by accident.
        child = spawn(binary, ['-c', config], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', log.fd, log.fd] });
      } finally {
        await log.close();
      }
      running.add(child);
      child.unref();
      let exited = false;
      const gone = new Promise<void>((r) => child.once('exit', () => {
        exited = true;
        running.delete(child);
        r();
      }));
      let stopping: Promise<void> | undefined;
      nodes.push({
        name, clientPort, clusterPort, httpPort, env, logFile, pid: child.pid!,
        url: `${opts.plain ? 'nats' : 'tls'}://127.0.0.1:${clientPort}`,
        running: () => !exited,
        kill: async () => {
          if (exited) return;
          child.kill('SIGKILL');
          await gone;
        },
        stop: () => (stopping ??= (async () => {
          if (exited) return;
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
          await gone;
          clearTimeout(t);
        })()),
      });
    }
    const logs = async () => (await Promise.all(nodes.map((n) => readFile(n.logFile, 'utf8').catch(() => '')))).join('\n');
    const listening = await waitFor(async () => {
      // A node that exited (a config error) ends the wait at once, with its log.
      const dead = nodes.find((n) => !n.running());
      if (dead) return dead;
      const ok = await Promise.all(nodes.map((n) => fetch(`http://127.0.0.1:${n.httpPort}/varz`).then((r) => r.ok, () => false)));
      return ok.every(Boolean) ? 'up' : null;
    }, { timeoutMs: 10_000, message: 'nats-1..3 to listen' });
    if (listening !== 'up') {
      throw new Error(`nats-server ${listening.name} (config ${config}) exited:\n${await readFile(listening.logFile, 'utf8').catch(() => '')}`);
    }
    const urls = nodes.map((n) => n.url);
    return {
      dir, certDir, ca: join(certDir, 'ca.pem'), nodes, urls, url: urls.join(','), passwords, logs,
      waitForMetaLeader: (timeoutMs = 20_000) => waitFor(async () => {
        const live = nodes.filter((n) => n.running());
        const leaders = await Promise.all(live.map(async (n) => {
          const jsz = (await (await fetch(`http://127.0.0.1:${n.httpPort}/jsz`)).json()) as Jsz;
          return jsz.meta_cluster?.leader ?? '';
        }));
        return leaders.every((l) => l && l === leaders[0]) ? leaders[0] : '';
      }, { timeoutMs, intervalMs: 100, message: 'a JetStream meta leader that every node agrees on' }),
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
