/**
 * How an observer command finds its cluster: `--nats URL --name C [--creds FILE]`, or the
 * embedded cluster started from this directory (`.colony/<name>/`). When that cluster has
 * stopped, its log is still on disk: a temporary nats-server is started on it to read it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { DEFAULT_STATE_DIR, alive, clusterDir, readCredentials, readState } from '../transport/cluster-files.ts';
import { connectNats } from '../transport/connection.ts';
import { ColonyError } from '../transport/errors.ts';
import { Journal } from '../log/journal.ts';
import { NatsServer } from '../transport/nats-server.ts';
import { checkClusterName } from '../transport/subjects.ts';

export interface TargetArgs {
  nats?: string;
  name?: string;
  creds?: string;
  'state-dir'?: string;
}

export const TARGET_OPTIONS = {
  nats: { type: 'string' },
  name: { type: 'string' },
  creds: { type: 'string' },
  'state-dir': { type: 'string' },
} as const;

export interface Target {
  nc: NatsConnection;
  journal: Journal;
  name: string;
  /** True when the cluster is not running and its stored log was opened. */
  offline: boolean;
  close(): Promise<void>;
}

export async function openTarget(args: TargetArgs): Promise<Target> {
  const name = checkClusterName(args.name ?? 'default');
  let user = process.env.COLONY_NATS_USER;
  let password = process.env.COLONY_NATS_PASSWORD;
  if (args.creds) ({ user, password } = await readCredentials(args.creds));
  let url = args.nats;
  let server: NatsServer | null = null;
  if (!url) {
    const stateDir = args['state-dir'] ?? DEFAULT_STATE_DIR;
    const dir = clusterDir(stateDir, name);
    const state = await readState(stateDir, name);
    const creds = state?.credentials ?? (await readCredentials(join(dir, 'credentials.json')).catch(() => null));
    if (creds) ({ user, password } = creds);
    if (state && alive(state.natsPid)) {
      url = state.url;
    } else if (existsSync(join(dir, 'nats', 'jetstream'))) {
      server = await NatsServer.start({ storeDir: join(dir, 'nats'), configDir: join(dir, 'nats-offline'), user, password });
      url = server.url;
    } else {
      throw new ColonyError(`no cluster '${name}' here: ${dir} has no running cluster and no stored log. Start one, or pass --nats URL --name C [--creds FILE]`);
    }
  }
  const nc = await connectNats({ url, user, password }, `colony-cli-${name}`);
  try {
    const journal = await Journal.attach(nc, name);
    return {
      nc, journal, name, offline: !!server,
      close: async () => {
        await nc.close();
        await server?.stop();
      },
    };
  } catch (e) {
    await nc.close();
    await server?.stop();
    throw new ColonyError(`cluster '${name}' has no event stream on ${url}: ${(e as Error).message}`, { cause: e });
  }
}
