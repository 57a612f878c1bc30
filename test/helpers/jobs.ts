/** Test helper: a real nats-server, a job manager on it and a client, with a scratch directory. */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobManager } from '../../runtime/jobs/job-manager.ts';
import type { JobManagerOptions } from '../../runtime/jobs/job-manager.ts';
import { Jobs } from '../../runtime/jobs/jobs-client.ts';
import { startNats, uniqueName } from './nats.ts';
import type { TestNats } from './nats.ts';

export interface JobsContext {
  nats: TestNats;
  name: string;
  /** A scratch directory for the jobs' side-effect files. */
  dir: string;
  manager: JobManager | null;
  jobs: Jobs;
  startManager(opts?: Partial<JobManagerOptions>): Promise<JobManager>;
  close(): Promise<void>;
}

/** @param auth run the server with a generated user and password (the manager and client use them) */
export async function startJobs(opts: Partial<JobManagerOptions> = {}, start = true, auth = false): Promise<JobsContext> {
  const creds = auth ? { user: 'colony', password: `pw-${uniqueName('s')}` } : {};
  const nats = await startNats(creds);
  const name = uniqueName('jobs');
  const dir = await mkdtemp(join(tmpdir(), 'colony-jobs-test-'));
  const ctx: JobsContext = {
    nats, name, dir, manager: null,
    jobs: await Jobs.connect({ nats: nats.url, name, ...creds }),
    async startManager(more = {}) {
      ctx.manager = await JobManager.start({ nats: nats.url, name, ...creds, log: process.env.JOBS_DEBUG ? (l) => console.error(l) : () => undefined, ...opts, ...more });
      return ctx.manager;
    },
    async close() {
      await ctx.manager?.close().catch(() => undefined);
      await ctx.jobs.close().catch(() => undefined);
      await nats.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  if (start) await ctx.startManager();
  return ctx;
}

/** The lines of the files in `dir` whose names end with `suffix`, by name. */
export async function stamps(dir: string, suffix: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of await readdir(dir)) if (f.endsWith(suffix)) out[f.slice(0, -suffix.length)] = (await readFile(join(dir, f), 'utf8')).trim();
  return out;
}

/** The most intervals [start, end] open at once. */
export function maxOverlap(intervals: [number, number][]): number {
  const points = intervals.flatMap(([s, e]) => [[s, 1], [e, -1]] as [number, number][]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let max = 0;
  for (const [, d] of points) max = Math.max(max, (open += d));
  return max;
}
