/**
 * The one base of the batch-scheduler adapters (qsub, sbatch, condor_submit), after
 * dask-jobqueue: a subclass declares its submit, cancel and status commands, a job-id pattern
 * with a named group `id`, its header lines and how it reads its status output. The base writes
 * the job script, runs every command through {@link run} (no shell), polls, and cancels.
 *
 * How a worker job starts (the job script, see {@link ShellScheduler.jobScript}):
 *
 * 1. it sources a 0600 `env` file from its job directory: the NATS credentials never appear in
 *    an argv (ps), in the job's environment list (`qstat -j`, `scontrol show job`) nor in the
 *    scheduler's spooled copy of the script; the file is deleted once every task has started;
 * 2. it runs `adapters/job-worker.mjs`, which announces the job on `colony.<c>.adapter.<id>`
 *    and waits for the manager's go: the manager calls `launched()` first, so the driver expects
 *    the worker before it registers and the start timeout counts from the moment the job runs;
 * 3. the same node process then becomes `colony worker`.
 *
 * The job directory (option `jobDir`, default `.colony/jobs` under the working directory) must be
 * visible to the compute nodes, as the Colony install itself must be.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ColonyError } from '../runtime/transport/errors.ts';
import { AdapterManager } from './adapter-manager.ts';
import type { AdapterManagerOptions, Launch, Unit } from './adapter-manager.ts';
import { announceSubject } from './adapter-actor.ts';
import { COLONY_BIN } from './cluster-manager.ts';

// ------------------------------------------------------------------ run(argv)

/** A scheduler command failed: its exit code, argv, stdout and stderr, as they were. */
export class SchedulerCommandError extends ColonyError {
  readonly code: number | null;
  readonly argv: string[];
  readonly stdout: string;
  readonly stderr: string;
  constructor(argv: string[], code: number | null, stdout: string, stderr: string, opts: { signal?: string | null; cause?: unknown } = {}) {
    const why = opts.signal ? `was killed by ${opts.signal}` : `exited with code ${code}`;
    const text = (stderr.trim() || stdout.trim()).slice(0, 2000);
    super(`${argv.join(' ')} ${why}${text ? `: ${text}` : ''}`, { cause: opts.cause });
    this.code = code;
    this.argv = argv;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

/** A scheduler printed something its adapter cannot read; quotes the pattern and the raw output. */
export class SchedulerOutputError extends ColonyError {
  readonly pattern: string;
  readonly output: string;
  constructor(what: string, pattern: RegExp | string, output: string) {
    super(`could not read ${what}: expected output matching ${String(pattern)}, got ${JSON.stringify(output)}`);
    this.pattern = String(pattern);
    this.output = output;
  }
}

export interface RunOptions {
  /** Written to the command's stdin. */
  input?: string;
  /** Environment; credentials of the cluster are stripped from it. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Kill the command after this long. @default 60000 */
  timeoutMs?: number;
  /** Working directory. */
  cwd?: string;
}

/** Environment variables never handed to a scheduler command (they would land in its spool). */
const SECRET_ENV = ['COLONY_NATS_USER', 'COLONY_NATS_PASSWORD'];

const debug = /\badapters\b|\*/.test(process.env.COLONY_DEBUG ?? '');

/**
 * Runs one command with no shell and returns its output; throws {@link SchedulerCommandError}
 * on a non-zero exit, a signal, a timeout, or a missing executable (code 127).
 *
 * @example
 * const { stdout } = await run(['qsub', '-terse', '-S', '/bin/bash', 'job.sh']);
 */
export function run(argv: string[], opts: RunOptions = {}): Promise<{ stdout: string; stderr: string }> {
  const env = { ...(opts.env ?? process.env) };
  for (const k of SECRET_ENV) delete env[k];
  if (debug) process.stderr.write(`colony: run ${argv.map(shellQuote).join(' ')}\n`);
  return new Promise((resolvePromise, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'], shell: false });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const missing = e.code === 'ENOENT';
      reject(new SchedulerCommandError(argv, missing ? 127 : null, '', missing ? `${argv[0]}: command not found` : e.message, { cause: e }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (debug) process.stderr.write(`colony: -> ${code ?? signal} ${stdout.trim().slice(0, 200)} ${stderr.trim().slice(0, 200)}\n`);
      if (code === 0) resolvePromise({ stdout, stderr });
      else reject(new SchedulerCommandError(argv, code, stdout, stderr, { signal }));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Quotes one word for a POSIX shell. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Matches `pattern` (with a named group `id`) against a command's output, or throws quoting both. */
export function parseJobId(what: string, pattern: RegExp, output: string): string {
  const id = pattern.exec(output)?.groups?.id;
  if (!id) throw new SchedulerOutputError(`the job id from ${what}`, pattern, output);
  return id;
}

// ------------------------------------------------------------------ the base

/** The node entry that announces a job, then becomes `colony worker` in the same process. */
export const JOB_WORKER_BIN = fileURLToPath(new URL('./job-worker.mjs', import.meta.url));

export interface ShellSchedulerOptions extends AdapterManagerOptions {
  /**
   * Where job scripts, the credential files and the jobs' output go. Compute nodes must see it.
   * @default '.colony/jobs' under the working directory
   */
  jobDir?: string;
  /** The directory the worker runs in. @default the driver's working directory */
  workDir?: string;
  /** The job name the scheduler shows. @default 'colony-<cluster>' */
  jobName?: string;
  /** Node on the compute nodes. @default the driver's node (process.execPath) */
  exename?: string;
  /** Shell lines run before the worker starts, e.g. `module load nodejs`. */
  prologue?: string[];
  /** Extra (non-secret) environment for the workers, written into the job script. */
  env?: Record<string, string>;
  /** Poll period of the status command while a job waits or ends. @default 250 */
  pollMs?: number;
  /** Poll period while every job runs. @default 2000 */
  idlePollMs?: number;
  /** Keep the job directories of jobs that ended cleanly (failed ones are always kept). @default false */
  keepJobDirs?: boolean;
  /**
   * A job the scheduler says runs, but whose worker has not announced itself this long after,
   * is cancelled and fails its launch (a hung prologue, an unreachable NATS).
   * @default 60000
   */
  announceTimeoutMs?: number;
}

/** A unit's status as its scheduler reports it. */
export interface UnitStatus {
  state: 'pending' | 'running' | 'error' | 'ended';
  /** The scheduler's own word for it: `qw`, `PENDING`, `Eqw`, `COMPLETED`... */
  detail: string;
  /** Exit code, when the status command tells. */
  code?: number | null;
}

/** What a subclass gets to build its header lines and its submit command from. */
export interface JobSpec {
  name: string;
  /** The job's own directory (0700): script, credential file, output. */
  dir: string;
  /** The job script's path. */
  script: string;
  /** What the submit command is given: the script, or a submit description (HTCondor). */
  submitFile: string;
  count: number;
  cluster: string;
}

const DEFAULTS = { pollMs: 250, idlePollMs: 2000, announceTimeoutMs: 60_000 };

export abstract class ShellScheduler extends AdapterManager {
  // --- what a scheduler declares
  /** Submits a script: `['qsub', '-terse', '-S', '/bin/bash']`; the script path is appended. */
  abstract readonly submitCommand: string[];
  /** Cancels units: `['qdel']`; unit ids are appended. */
  abstract readonly cancelCommand: string[];
  /** Lists jobs: `['qstat', '-xml']`. */
  abstract readonly statusCommand: string[];
  /** Finds the job id in the submit command's stdout (named group `id`). */
  abstract readonly jobIdPattern: RegExp;
  /** A shell expression for the 1-based array index inside the job. */
  abstract readonly taskExpression: string;
  /** Directive lines (`#$ -q all.q`) for a job. */
  abstract headerLines(job: JobSpec): string[];
  /** Reads the status command's output: every unit it lists, by unit id. */
  abstract parseStatus(stdout: string): Map<string, UnitStatus>;
  /** The unit ids of a submitted job of `count` workers. */
  abstract unitIds(jobId: string, count: number): { id: string; task: number | null }[];

  /** Extra submit flags from the options (`qsubFlags`, `sbatchFlags`). */
  protected extraSubmitFlags: string[] = [];

  protected readonly opts: ShellSchedulerOptions;
  private pollFailures = 0;

  constructor(name: string, opts: ShellSchedulerOptions = {}) {
    super(name, opts);
    this.opts = opts;
  }

  // --- what a scheduler may refine

  /** The submit argv for a written job script. */
  submitArgv(job: JobSpec): string[] {
    return [...this.submitCommand, ...this.extraSubmitFlags, job.submitFile];
  }

  /** A submit description to write beside the script (HTCondor's); null submits the script itself. */
  submitDescription(_job: JobSpec): string | null {
    return null;
  }

  /** The status argv for the jobs being watched. */
  statusArgv(_jobIds: string[]): string[] {
    return [...this.statusCommand];
  }

  /** The cancel argv for units. */
  cancelArgv(unitIds: string[]): string[] {
    return [...this.cancelCommand, ...unitIds];
  }

  /** Whether a failed cancel only says that the job is gone already. */
  isGone(_e: SchedulerCommandError): boolean {
    return false;
  }

  /** Reads the status command's failure: a map when it only means "no such jobs". */
  statusOnError(_e: SchedulerCommandError): Map<string, UnitStatus> | null {
    return null;
  }

  /** The job's exit code once it has left the queue, when the scheduler can tell. */
  async exitCode(_unit: Unit): Promise<number | null> {
    return null;
  }

  // --- the job script

  /**
   * The job script: header lines, then the worker. The credentials are not in it: it sources
   * them from `<dir>/env` (mode 0600).
   */
  jobScript(job: JobSpec, tokens: string[], workerArgv: string[], announce: string | null): string {
    const argv = this.entryArgv(workerArgv, announce);
    const tokenWord = tokens.length === 1 ? shellQuote(tokens[0]!) : '"${COLONY_TOKENS[COLONY_TASK-1]}"';
    const command = argv.map((a) => (a === tokens[0] ? tokenWord : shellQuote(a))).join(' ');
    const lines = [
      '#!/bin/bash',
      ...this.headerLines(job),
      `# Colony worker job for cluster ${job.cluster} (adapter ${this.id}).`,
      '# The NATS credentials are sourced from a 0600 file beside this script (removed once every',
      '# task has started): never in an argv, in the job environment list or in the spooled script.',
      `COLONY_JOB_DIR=${shellQuote(job.dir)}`,
      `COLONY_TASK=${this.taskExpression}`,
      'case "$COLONY_TASK" in ""|undefined) COLONY_TASK=1 ;; esac',
      'exec >>"$COLONY_JOB_DIR/worker.$COLONY_TASK.out" 2>>"$COLONY_JOB_DIR/worker.$COLONY_TASK.err"',
      'set -a',
      '. "$COLONY_JOB_DIR/env" || exit 78',
      'set +a',
      ...Object.entries(this.opts.env ?? {}).map(([k, v]) => `export ${checkEnvName(k)}=${shellQuote(v)}`),
      ...(this.opts.prologue ?? []),
      ...(tokens.length > 1 ? [`COLONY_TOKENS=(${tokens.map(shellQuote).join(' ')})`] : []),
      `cd ${shellQuote(this.opts.workDir ?? process.cwd())} || exit 78`,
      `exec ${command}`,
      '',
    ];
    return lines.join('\n');
  }

  /** The credential file: `KEY='value'` lines (the script sources it under `set -a`). */
  static envFile(env: Record<string, string>): string {
    return Object.entries(env).map(([k, v]) => `${checkEnvName(k)}=${shellQuote(v)}\n`).join('');
  }

  /**
   * The worker argv, wrapped by the announcing entry when it is Colony's own (`colony worker`);
   * a custom argv runs as it is, and the job is then taken as running when the poll says so.
   */
  entryArgv(workerArgv: string[], announce: string | null): string[] {
    const exe = this.opts.exename ?? workerArgv[0]!;
    if (announce && workerArgv[1] === COLONY_BIN) return [exe, JOB_WORKER_BIN, '--announce', announce, '--', ...workerArgv.slice(2)];
    return [exe, ...workerArgv.slice(1)];
  }

  // --- AdapterManager

  protected describe(launch: Launch): string[] {
    return [...this.submitCommand, ...this.extraSubmitFlags, `<job script of ${launch.count} worker(s)>`];
  }

  protected async start(launch: Launch): Promise<void> {
    const { params } = launch;
    const root = resolve(this.opts.jobDir ?? join(process.cwd(), '.colony', 'jobs'));
    await mkdir(root, { recursive: true, mode: 0o700 });
    const dir = join(root, `${this.id}-${launch.key}-${randomBytes(3).toString('hex')}`);
    await mkdir(dir, { mode: 0o700 });
    launch.data.dir = dir;
    const script = join(dir, 'job.sh');
    const job: JobSpec = { name: this.opts.jobName ?? `colony-${params.cluster}`, dir, script, submitFile: script, count: launch.count, cluster: params.cluster };
    const announce = announceSubject(params.cluster, this.id);
    launch.data.handshake = params.workerArgv(launch.tokens[0]!)[1] === COLONY_BIN;
    await writeFile(join(dir, 'env'), ShellScheduler.envFile(params.env), { mode: 0o600 });
    await writeFile(job.script, this.jobScript(job, launch.tokens, params.workerArgv(launch.tokens[0]!), announce), { mode: 0o700 });
    const description = this.submitDescription(job);
    if (description !== null) {
      job.submitFile = join(dir, 'job.sub');
      await writeFile(job.submitFile, description, { mode: 0o600 });
    }
    const { stdout } = await run(this.submitArgv(job), { cwd: dir });
    const jobId = parseJobId(this.submitCommand[0]!, this.jobIdPattern, stdout);
    this.addUnits(launch, jobId, this.unitIds(jobId, launch.count));
    this.schedulePoll(0);
  }

  protected async cancel(units: Unit[]): Promise<void> {
    const ids = units.map((u) => u.id);
    try {
      await run(this.cancelArgv(ids));
    } catch (e) {
      if (!(e instanceof SchedulerCommandError) || !this.isGone(e)) throw e;
    }
    this.schedulePoll(0);
  }

  protected onLaunchStarted(launch: Launch): void {
    // Every task has sourced its credentials: the file has done its job.
    if (launch.data.handshake && launch.data.dir) void rm(join(launch.data.dir as string, 'env'), { force: true });
  }

  protected onLaunchEnded(launch: Launch): void {
    const dir = launch.data.dir as string | undefined;
    if (!dir) return;
    if (launch.failed || this.opts.keepJobDirs || launch.units.some((u) => u.registered === false && !u.cancelled)) {
      void rm(join(dir, 'env'), { force: true });
    } else {
      void rm(dir, { recursive: true, force: true });
    }
  }

  protected onRetire(_unit: Unit): void {
    this.schedulePoll(this.opts.pollMs ?? DEFAULTS.pollMs);
  }

  // --- polling

  protected pollPeriods(): { busy: number; idle: number } {
    return { busy: this.opts.pollMs ?? DEFAULTS.pollMs, idle: this.opts.idlePollMs ?? DEFAULTS.idlePollMs };
  }

  protected async pollUnits(live: Unit[]): Promise<void> {
    try {
      const jobIds = [...new Set(live.map((u) => u.jobId))];
      let statuses: Map<string, UnitStatus>;
      try {
        statuses = this.parseStatus((await run(this.statusArgv(jobIds))).stdout);
      } catch (e) {
        const fallback = e instanceof SchedulerCommandError ? this.statusOnError(e) : null;
        if (!fallback) throw e;
        statuses = fallback;
      }
      this.pollFailures = 0;
      for (const unit of live) await this.apply(unit, statuses.get(unit.id) ?? null);
    } catch (e) {
      if (this.pollFailures++ % 20 === 0) console.error(`colony: ${this.name}: status poll failed: ${(e as Error).message}`);
    }
  }

  private async apply(unit: Unit, status: UnitStatus | null): Promise<void> {
    if (unit.state === 'ended') return;
    if (status === null || status.state === 'ended') {
      const code = status?.code !== undefined ? status.code : await this.exitCode(unit).catch(() => null);
      const reason = unit.cancelled ? 'cancelled' : (status?.detail.toLowerCase() ?? 'completed');
      const failed = !unit.cancelled && code !== null && code !== 0;
      this.unitEnded(unit, { code, reason, stderr: failed || !unit.registered ? await this.stderrOf(unit) : '', failed: failed && unit.registered });
      return;
    }
    if (status.state === 'error') {
      const stderr = `${status.detail}\n${await this.stderrOf(unit)}`.trim();
      await this.cancelUnits([unit]);
      unit.cancelled = false;
      this.unitEnded(unit, { code: null, reason: `error state ${status.detail}`, stderr, failed: true });
      return;
    }
    if (status.state !== 'running' || unit.state !== 'queued') return;
    // Without the announcing entry, the poll is all there is to tell that a job runs.
    if (!unit.launch.data.handshake) {
      this.unitStarted(unit, null);
      return;
    }
    const seen = (this.runningSince.get(unit) ?? this.runningSince.set(unit, Date.now()).get(unit))!;
    const limit = this.opts.announceTimeoutMs ?? DEFAULTS.announceTimeoutMs;
    if (Date.now() - seen > limit) {
      const stderr = await this.stderrOf(unit);
      await this.cancelUnits([unit]);
      unit.cancelled = false;
      this.unitEnded(unit, { code: null, reason: `running for ${limit} ms without its worker starting`, stderr, failed: true });
    }
  }

  private readonly runningSince = new WeakMap<Unit, number>();

  /** The tail of what a unit's job wrote to stderr (the worker's and the scheduler's files). */
  async stderrOf(unit: Unit): Promise<string> {
    const dir = unit.launch.data.dir as string | undefined;
    if (!dir) return '';
    const parts: string[] = [];
    for (const f of [`worker.${unit.task ?? 1}.err`, 'scheduler.err']) {
      const text = await readFile(join(dir, f), 'utf8').catch(() => '');
      if (text.trim()) parts.push(text.length > 4000 ? `...${text.slice(-4000)}` : text);
    }
    return parts.join('\n').trim();
  }
}

function checkEnvName(k: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new ColonyError(`environment variable name '${k}' is not a valid shell name`);
  return k;
}

/** Expands an SGE/Condor-style task list (`1`, `2,3`, `4-10:2`, `1-3:1,7`) into numbers. */
export function expandTaskList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part);
    if (!m) throw new SchedulerOutputError('a task list', /^(\d+)(?:-(\d+)(?::(\d+))?)?$/, part);
    const a = Number(m[1]);
    const b = m[2] ? Number(m[2]) : a;
    const step = m[3] ? Number(m[3]) : 1;
    for (let i = a; i <= b; i += step) out.push(i);
  }
  return out;
}
