/**
 * The `.colony/` directory of an embedded cluster: its NATS store, its generated credential
 * (mode 0600) and a state file, so CLI commands run from the same directory find the cluster.
 *
 * .colony/<name>/cluster.json      { name, url, driverPid, natsPid, startedAt }
 * .colony/<name>/credentials.json  { user, password }   (mode 0600)
 * .colony/<name>/nats/             JetStream store, server config and log
 */
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface ClusterStateFile {
  name: string;
  url: string;
  driverPid: number;
  natsPid: number | null;
  startedAt: string;
}

export interface Credentials {
  user: string;
  password: string;
}

export const DEFAULT_STATE_DIR = '.colony';

export function clusterDir(stateDir: string, name: string): string {
  return join(resolve(stateDir), name);
}

export async function writeCredentials(dir: string, creds: Credentials): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'credentials.json');
  await rm(file, { force: true });
  await writeFile(file, JSON.stringify(creds), { mode: 0o600, flag: 'wx' });
  await chmod(file, 0o600);
  return file;
}

export async function readCredentials(file: string): Promise<Credentials> {
  return JSON.parse(await readFile(file, 'utf8')) as Credentials;
}

export async function writeState(dir: string, state: ClusterStateFile): Promise<void> {
  await writeFile(join(dir, 'cluster.json'), JSON.stringify(state, null, 2) + '\n');
}

/** The state of the cluster `name` started from `stateDir`, or null. */
export async function readState(stateDir: string, name: string): Promise<(ClusterStateFile & { credentials: Credentials | null }) | null> {
  const dir = clusterDir(stateDir, name);
  try {
    const state = JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')) as ClusterStateFile;
    const credentials = await readCredentials(join(dir, 'credentials.json')).catch(() => null);
    return { ...state, credentials };
  } catch {
    return null;
  }
}

export async function removeState(dir: string): Promise<void> {
  await rm(join(dir, 'cluster.json'), { force: true });
}

/** Whether a process is alive (a zombie counts as dead). */
export function alive(pid: number | null | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // A killed process whose parent has not reaped it yet is a zombie: it is gone for our purposes.
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}
