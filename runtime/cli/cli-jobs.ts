/**
 * `colony jobs ...`: the job manager and its client on the command line.
 *
 *   colony jobs serve [--config FILE]      the manager (an embedded NATS under .colony/ unless --nats)
 *   colony jobs submit FILE...             one job id per line; a bad file is refused, nothing queued
 *   colony jobs list [--json]              colony jobs show ID [--json]
 *   colony jobs logs ID [--follow]         colony jobs wait ID...        colony jobs cancel ID
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { JobManager } from '../jobs/job-manager.ts';
import { loadJobsConfig } from '../jobs/jobs-config.ts';
import { Jobs } from '../jobs/jobs-client.ts';
import type { JobInfo } from '../jobs/jobs-client.ts';
import { JobSpecError, parseJobSpec } from '../jobs/job-spec.ts';
import { DEFAULT_STATE_DIR, alive, clusterDir, readCredentials, readState, removeState, writeCredentials, writeState } from '../transport/cluster-files.ts';
import { ColonyError } from '../transport/errors.ts';
import { NatsServer, randomSecret } from '../transport/nats-server.ts';
import { checkClusterName } from '../transport/subjects.ts';
import { TARGET_OPTIONS, openTarget } from './cli-target.ts';
import type { TargetArgs } from './cli-target.ts';

export const JOBS_USAGE = `usage:
  colony jobs serve [--config FILE] [--nats URL --name C [--creds FILE]] [--state-dir DIR]
      The job manager: grants jobs within jobs.limits of colony.yaml (or FILE), starts them and
      records their results. Without --nats it runs an embedded NATS under .colony/<name>/.
  colony jobs submit FILE...     validate and queue job files; prints one id per line
  colony jobs list [--json]      every job, with its state
  colony jobs show ID [--json]   one job: state, steps, result, reason, stderr tail
  colony jobs logs ID [--follow] its stdout and stderr (--follow: until it ends)
  colony jobs wait ID...         exits 0 when all succeeded, 1 otherwise
  colony jobs cancel ID          stops it wherever it runs
Client commands find the manager of this directory, or take --nats URL --name C [--creds FILE].
`;

export async function jobsCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'serve':
      return serve(rest);
    case 'submit':
      return submit(rest);
    case 'list':
      return list(rest);
    case 'show':
      return show(rest);
    case 'logs':
      return logs(rest);
    case 'wait':
      return wait(rest);
    case 'cancel':
      return cancel(rest);
    default:
      process.stdout.write(JOBS_USAGE);
      if (sub !== undefined && sub !== 'help' && sub !== '--help') throw new ColonyError(`unknown jobs command '${sub}'`);
  }
}

type Values = TargetArgs & { config?: string; json?: boolean; follow?: boolean };

function args(argv: string[], extra: Record<string, { type: 'string' | 'boolean'; short?: string }> = {}): { values: Values; positionals: string[] } {
  const { values, positionals } = parseArgs({ args: argv, options: { ...TARGET_OPTIONS, ...extra }, allowPositionals: true });
  return { values: values as Values, positionals };
}

async function client(values: TargetArgs): Promise<Jobs> {
  const t = await openTarget(values);
  return Jobs.attach(t.nc, t.journal, () => t.close());
}

async function serve(argv: string[]): Promise<void> {
  const { values } = args(argv, { config: { type: 'string' } });
  const config = await loadJobsConfig(values.config);
  const name = checkClusterName(values.name ?? 'default');
  let url = values.nats;
  let user = process.env.COLONY_NATS_USER;
  let password = process.env.COLONY_NATS_PASSWORD;
  if (values.creds) ({ user, password } = await readCredentials(values.creds));
  let server: NatsServer | null = null;
  let reused: number | null = null;
  let dir: string | null = null;
  if (!url) {
    // The embedded server keeps its store: the jobs must survive a restart of the manager.
    const stateDir = values['state-dir'] ?? DEFAULT_STATE_DIR;
    dir = clusterDir(stateDir, name);
    const prev = await readState(stateDir, name);
    if (prev && alive(prev.driverPid) && prev.driverPid !== process.pid) {
      throw new ColonyError(`a manager of cluster '${name}' already runs from ${dir} (pid ${prev.driverPid})`);
    }
    const creds = prev?.credentials ?? { user: 'colony', password: randomSecret() };
    if (!prev?.credentials) await writeCredentials(dir, creds);
    ({ user, password } = creds);
    if (prev && alive(prev.natsPid)) {
      // A manager killed outright leaves its server running, with the runners connected to it.
      url = prev.url;
      reused = prev.natsPid;
    } else {
      await mkdir(join(dir, 'nats'), { recursive: true, mode: 0o700 });
      server = await NatsServer.start({ storeDir: join(dir, 'nats'), user, password });
      url = server.url;
    }
    await writeState(dir, { name, url, driverPid: process.pid, natsPid: server?.pid ?? prev?.natsPid ?? null, startedAt: new Date().toISOString() });
  }
  const manager = await JobManager.start({
    nats: url, name, user, password, limits: config.limits, ssh: config.ssh, ec2: config.ec2 ?? undefined, logLimit: config.logLimit,
  });
  process.stderr.write(`colony jobs: manager of cluster '${name}' on ${url}${config.source ? ` (limits from ${config.source})` : ''}; Ctrl-C stops it, running jobs go on\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await manager.close();
  if (server) await server.stop();
  else if (dir && reused) await stopServer(reused);
  if (dir) await removeState(dir);
}

/** Stops the embedded server an earlier `serve` started (SIGTERM, SIGKILL after 5 s). */
async function stopServer(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + 5000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

async function submit(argv: string[]): Promise<void> {
  const { values, positionals } = args(argv);
  if (!positionals.length) throw new ColonyError('colony jobs submit needs at least one job file');
  // Every file is checked before any is queued: a bad one queues nothing.
  const texts: [string, string][] = [];
  const errors: string[] = [];
  for (const file of positionals) {
    try {
      const text = await readFile(file, 'utf8');
      parseJobSpec(text, file);
      texts.push([file, text]);
    } catch (e) {
      errors.push(e instanceof JobSpecError ? e.message : `${file}: ${(e as Error).message}`);
    }
  }
  if (errors.length) throw new ColonyError(`nothing was queued:\n  ${errors.join('\n  ')}`);
  const jobs = await client(values);
  try {
    for (const [file, text] of texts) process.stdout.write(`${await jobs.submit(text, file)}\n`);
  } finally {
    await jobs.close();
  }
}

const when = (t: number | null) => (t ? new Date(t).toISOString() : '-');

function line(j: JobInfo): string {
  return [j.id.padEnd(30), j.state.padEnd(10), j.class.padEnd(6), (j.host ?? '-').padEnd(20), `run ${j.run}`, `steps ${j.steps.length}/${j.spec.steps.length || j.steps.length}`].join(' ');
}

async function list(argv: string[]): Promise<void> {
  const { values } = args(argv, { json: { type: 'boolean' } });
  const jobs = await client(values);
  try {
    const all = await jobs.list();
    if (values.json) process.stdout.write(`${JSON.stringify(all)}\n`);
    else for (const j of all) process.stdout.write(`${line(j)}\n`);
  } finally {
    await jobs.close();
  }
}

async function show(argv: string[]): Promise<void> {
  const { values, positionals } = args(argv, { json: { type: 'boolean' } });
  const id = positionals[0];
  if (!id) throw new ColonyError('colony jobs show needs a job id');
  const jobs = await client(values);
  try {
    const j = await jobs.get(id);
    if (!j) throw new ColonyError(`no job ${id} (not queued by a manager yet?)`);
    if (values.json) return void process.stdout.write(`${JSON.stringify(j)}\n`);
    process.stdout.write([
      `${j.id}  ${j.name}  ${j.state}`,
      `  class ${j.class}, queue ${j.queue}, host ${j.host ?? '-'}, run ${j.run} of ${j.spec.retries + 1}, pid ${j.ospid ?? '-'}`,
      `  queued ${when(j.queuedAt)}, started ${when(j.startedAt)}, ended ${when(j.endedAt)}`,
      `  steps: ${j.steps.join(' -> ') || '-'}${j.spec.steps.length ? ` (of ${j.spec.steps.join(', ')})` : ''}`,
      ...(j.code !== null ? [`  exit code ${j.code}`] : []),
      ...(j.reason ? [`  reason: ${j.reason}`] : []),
      ...(j.cancelledBy ? [`  cancelled by ${j.cancelledBy}`] : []),
      ...(j.result !== null ? [`  result: ${JSON.stringify(j.result)}`] : []),
      ...(j.stderrTail ? [`  stderr tail:\n${j.stderrTail.replace(/^/gm, '    ')}`] : []),
    ].join('\n') + '\n');
  } finally {
    await jobs.close();
  }
}

async function logs(argv: string[]): Promise<void> {
  const { values, positionals } = args(argv, { follow: { type: 'boolean', short: 'f' } });
  const id = positionals[0];
  if (!id) throw new ColonyError('colony jobs logs needs a job id');
  const jobs = await client(values);
  try {
    for await (const c of jobs.logs(id, { follow: values.follow })) (c.stream === 'err' ? process.stderr : process.stdout).write(c.data);
  } finally {
    await jobs.close();
  }
}

async function wait(argv: string[]): Promise<void> {
  const { values, positionals } = args(argv);
  if (!positionals.length) throw new ColonyError('colony jobs wait needs job ids');
  const jobs = await client(values);
  try {
    const done = await Promise.all(positionals.map((id) => jobs.wait(id)));
    for (const j of done) process.stdout.write(`${j.id} ${j.state}${j.reason ? ` (${j.reason})` : ''}\n`);
    if (done.some((j) => j.state !== 'succeeded')) process.exitCode = 1;
  } finally {
    await jobs.close();
  }
}

async function cancel(argv: string[]): Promise<void> {
  const { values, positionals } = args(argv);
  const id = positionals[0];
  if (!id) throw new ColonyError('colony jobs cancel needs a job id');
  const jobs = await client(values);
  try {
    const j = await jobs.cancel(id);
    process.stdout.write(`${j.id} ${j.state}\n`);
  } finally {
    await jobs.close();
  }
}
