/**
 * A worker on "another host" without a second machine: joined by hand from its own UTS namespace
 * (`unshare --uts`), so it has another host name and so another host key. Blobs then travel by
 * chunk pulls and shared arrays refuse it, though /dev/shm is the same. Needs root (or user
 * namespaces); `canUnshare` says whether this machine allows it.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { COLONY_BIN } from '../../adapters/cluster-manager.ts';
import type { TestCluster } from './cluster.ts';
import { processAlive, waitFor } from './wait.ts';

export const canUnshare = spawnSync('unshare', ['--uts', 'true']).status === 0;

export const OTHER_HOST = 'colony-elsewhere';

export interface OtherHostWorker {
  pid: number;
  ospid: number;
  /** Removes the worker (rmprocs), and kills its process if it is still there. */
  stop(): Promise<void>;
}

/** Joins a worker named host {@link OTHER_HOST} to the test cluster and waits until it is live. */
export async function joinFromOtherHost(tc: TestCluster): Promise<OtherHostWorker> {
  const { cluster } = tc;
  const before = new Set(cluster.workers());
  const child: ChildProcess = spawn('unshare', [
    '--uts', 'sh', '-c', `hostname ${OTHER_HOST} && exec "$0" "$@"`, process.execPath, COLONY_BIN, 'worker',
    '--nats', cluster.url, '--name', cluster.name, '--creds', join(tc.clusterDir, 'credentials.json'), '--grace', '10000',
  ], { stdio: 'ignore' });
  const kill = () => {
    if (child.pid && processAlive(child.pid)) child.kill('SIGKILL');
  };
  try {
    const pid = await waitFor(() => cluster.workers().find((p) => !before.has(p)), { timeoutMs: 30_000, message: 'the joined worker registers' });
    const ospid = await waitFor(() => cluster.workerInfo().find((w) => w.pid === pid)?.ospid, { message: 'the joined worker has an OS pid' });
    return {
      pid,
      ospid,
      stop: async () => {
        try {
          await cluster.rmprocs(pid);
        } finally {
          kill();
        }
      },
    };
  } catch (e) {
    kill();
    throw e;
  }
}
