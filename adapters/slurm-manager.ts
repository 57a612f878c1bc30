/**
 * SlurmManager: workers as Slurm batch jobs (`sbatch`). One launch is one job; `count > 1` is a
 * job array (`--array=1-N`) whose tasks come in one by one as they start. Status comes from
 * `squeue` (with `--states=all`, so a job that just ended still shows how), cancel is `scancel`,
 * and the exit code of a failed job from `scontrol show job`.
 *
 * @example
 * const slurm = new SlurmManager({ partition: 'batch', time: '01:00:00' });
 * const pids = await cluster.addprocs(slurm, { count: 4 });
 */
import { run, SchedulerCommandError, ShellScheduler } from './shell-scheduler.ts';
import type { JobSpec, ShellSchedulerOptions, UnitStatus } from './shell-scheduler.ts';
import type { Unit } from './adapter-manager.ts';
import { walltime } from './sge-manager.ts';

export interface SlurmManagerOptions extends ShellSchedulerOptions {
  /** The partition (`--partition`). @default the cluster's default partition */
  partition?: string;
  /** Time limit (`--time`): `'HH:MM:SS'`, `'D-HH:MM:SS'` or seconds. */
  time?: string | number;
  /** Cores per worker (`--cpus-per-task`). */
  cpusPerTask?: number;
  /** Memory per node (`--mem`), e.g. `'4G'`. */
  memory?: string;
  /** Account to charge (`--account`). */
  account?: string;
  /** Extra sbatch arguments, on the command line before the script. */
  sbatchFlags?: string[];
}

/** Slurm job states that mean the job has ended. */
const ENDED = new Set(['COMPLETED', 'CANCELLED', 'FAILED', 'TIMEOUT', 'NODE_FAIL', 'PREEMPTED', 'OUT_OF_MEMORY', 'BOOT_FAIL', 'DEADLINE', 'SPECIAL_EXIT', 'REVOKED']);
const PENDING = new Set(['PENDING', 'REQUEUED', 'REQUEUE_FED', 'REQUEUE_HOLD', 'RESV_DEL_HOLD']);

export class SlurmManager extends ShellScheduler {
  readonly name = 'slurm';
  readonly submitCommand = ['sbatch', '--parsable'];
  readonly cancelCommand = ['scancel'];
  readonly statusCommand = ['squeue', '--noheader', '--array', '--states=all', '--format=%F|%K|%i|%T|%r'];
  /** `sbatch --parsable` prints `12`, or `12;cluster` on a multi-cluster site. */
  readonly jobIdPattern = /^\s*(?<id>\d+)(?:;\S+)?\s*$/m;
  readonly taskExpression = '"${SLURM_ARRAY_TASK_ID:-1}"';

  constructor(readonly options: SlurmManagerOptions = {}) {
    super('slurm', options);
    this.extraSubmitFlags = options.sbatchFlags ?? [];
  }

  headerLines(job: JobSpec): string[] {
    const o = this.options;
    const lines = [
      `#SBATCH --job-name=${job.name}`,
      `#SBATCH --output=${job.dir}/scheduler.out`,
      `#SBATCH --error=${job.dir}/scheduler.err`,
      '#SBATCH --open-mode=append',
      `#SBATCH --chdir=${job.dir}`,
    ];
    if (o.partition) lines.push(`#SBATCH --partition=${o.partition}`);
    if (o.time !== undefined) lines.push(`#SBATCH --time=${typeof o.time === 'number' ? walltime(o.time) : o.time}`);
    if (o.cpusPerTask) lines.push(`#SBATCH --cpus-per-task=${o.cpusPerTask}`);
    if (o.memory) lines.push(`#SBATCH --mem=${o.memory}`);
    if (o.account) lines.push(`#SBATCH --account=${o.account}`);
    if (job.count > 1) lines.push(`#SBATCH --array=1-${job.count}`);
    return lines;
  }

  unitIds(jobId: string, count: number): { id: string; task: number | null }[] {
    if (count === 1) return [{ id: jobId, task: null }];
    return Array.from({ length: count }, (_, i) => ({ id: `${jobId}_${i + 1}`, task: i + 1 }));
  }

  statusArgv(jobIds: string[]): string[] {
    return [...this.statusCommand, `--jobs=${jobIds.join(',')}`];
  }

  /** Lines `array job id|task id or N/A|job id|STATE|reason`. */
  parseStatus(stdout: string): Map<string, UnitStatus> {
    const out = new Map<string, UnitStatus>();
    for (const line of stdout.split('\n')) {
      const [job, task, , state, reason] = line.trim().split('|');
      if (!job || !state) continue;
      const id = !task || task === 'N/A' ? job : `${job}_${task}`;
      const detail = reason && reason !== 'None' ? `${state} (${reason})` : state;
      if (ENDED.has(state)) out.set(id, { state: 'ended', detail: state, ...(state === 'COMPLETED' ? { code: 0 } : {}) });
      else if (PENDING.has(state)) out.set(id, { state: 'pending', detail });
      else out.set(id, { state: 'running', detail });
    }
    return out;
  }

  /** squeue fails when none of the ids is known any more: they have all left. */
  statusOnError(e: SchedulerCommandError): Map<string, UnitStatus> | null {
    return /Invalid job id specified/i.test(e.stderr) ? new Map() : null;
  }

  /** `scontrol -o show job` keeps a finished job for MinJobAge: `ExitCode=3:0`. */
  async exitCode(unit: Unit): Promise<number | null> {
    const { stdout } = await run(['scontrol', '-o', 'show', 'job', unit.id]);
    return parseExitCode(stdout);
  }
}

/** `ExitCode=code:signal` from `scontrol -o show job`; a signal gives 128 + signal. */
export function parseExitCode(stdout: string): number | null {
  const m = /\bExitCode=(\d+):(\d+)/.exec(stdout);
  if (!m) return null;
  const sig = Number(m[2]);
  return sig > 0 ? 128 + sig : Number(m[1]);
}
