/** Connecting to NATS with a clear error when the server cannot be reached. */
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { ColonyError } from './errors.ts';

/** Where a process finds the cluster's NATS server. */
export interface NatsEndpoint {
  /** One URL or several, comma separated. */
  url: string;
  user?: string;
  password?: string;
}

/** NATS could not be reached, or refused the credentials. */
export class NatsUnreachableError extends ColonyError {
  readonly url: string;
  /** @param hint what to do about it; @default a hint to check the server, URL and credentials */
  constructor(url: string, cause: unknown, hint = 'Check that the server runs and the URL and credentials are right (embedded clusters: run from the directory that holds .colony/).') {
    super(`cannot connect to NATS at ${url}: ${(cause as Error)?.message ?? cause}. ${hint}`, { cause });
    this.url = url;
  }
}

/**
 * TLS for a deployed cluster (see deploy/): `COLONY_NATS_CA` (a CA file to trust), and
 * `COLONY_NATS_CERT` / `COLONY_NATS_KEY` for a client certificate. Set in the environment, they
 * reach every process, workers included. A `tls://` URL turns TLS on with the system CAs.
 */
export function tlsOptions(env: NodeJS.ProcessEnv = process.env): { caFile?: string; certFile?: string; keyFile?: string } | undefined {
  const tls: { caFile?: string; certFile?: string; keyFile?: string } = {};
  if (env.COLONY_NATS_CA) tls.caFile = env.COLONY_NATS_CA;
  if (env.COLONY_NATS_CERT) tls.certFile = env.COLONY_NATS_CERT;
  if (env.COLONY_NATS_KEY) tls.keyFile = env.COLONY_NATS_KEY;
  return Object.keys(tls).length ? tls : undefined;
}

export async function connectNats(ep: NatsEndpoint, name: string, opts: { timeoutMs?: number } = {}): Promise<NatsConnection> {
  const base = {
    tls: tlsOptions(),
    servers: ep.url.split(',').map((s) => s.trim()),
    user: ep.user,
    pass: ep.password,
    name,
    timeout: opts.timeoutMs ?? 5000,
  };
  await refuseMissingClientCert(ep.url, base);
  try {
    return await connect({ ...base, maxReconnectAttempts: -1, reconnectTimeWait: 250, pingInterval: 10_000 });
  } catch (e) {
    throw new NatsUnreachableError(ep.url, withTlsHint(e));
  }
}

/**
 * A server that requires client certificates (`verify: true`) ends the TLS handshake of a client
 * without one. With reconnects on, nats.js then keeps retrying (with several servers, forever)
 * instead of failing; so a client with TLS but no certificate first tries once without
 * reconnects, and a handshake refusal is a clear error. Any other failure is left to the real
 * connect, which retries (a node may be down).
 */
async function refuseMissingClientCert(url: string, base: Parameters<typeof connect>[0] & { tls?: { certFile?: string } }): Promise<void> {
  const tls = base.tls;
  const wantsTls = !!tls || /(^|,)\s*tls:\/\//.test(url);
  if (!wantsTls || tls?.certFile) return;
  try {
    const probe = await connect({ ...base, reconnect: false });
    await probe.close();
  } catch (e) {
    if (/certificate|handshake|ECONNRESET/i.test((e as Error)?.message ?? '')) throw new NatsUnreachableError(url, withTlsHint(e, true));
  }
}

/**
 * A server that requires client certificates (`verify: true`) drops a client without one during
 * the TLS handshake, which nats.js reports only as a timeout: say what is probably missing.
 */
function withTlsHint(e: unknown, refused = false): unknown {
  const tls = tlsOptions();
  if (!refused && (!tls || tls.certFile || !/timeout/i.test((e as Error)?.message ?? ''))) return e;
  const err = new Error(`${(e as Error).message} (TLS is on without a client certificate; if the server verifies clients, set COLONY_NATS_CERT and COLONY_NATS_KEY)`, { cause: e });
  err.name = (e as Error).name;
  return err;
}

/**
 * Closes `nc` for good, a reconnect attempt under way included. nats.js 3.x keeps the socket of
 * a dial that reached a listener which never sends INFO (another program on the port) open
 * after `close()`: its transport ignores a close before it is connected. That socket would keep
 * the process alive, so it is discarded here.
 */
export async function closeForGood(nc: NatsConnection): Promise<void> {
  await nc.close().catch(() => undefined);
  (nc as unknown as { protocol?: { transport?: { discard?: () => void } } }).protocol?.transport?.discard?.();
}
