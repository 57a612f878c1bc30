/**
 * SGEManager: workers as Grid Engine jobs (`qsub`), as ClusterManagers.jl's SGEManager.
 * One launch is one job; `count > 1` is an array job (`-t 1-N`) whose tasks come in one by one
 * as they start. Status comes from `qstat -xml`; `qdel` cancels a job or a task (`5.2`).
 *
 * @example
 * const sge = new SGEManager({ queue: 'all.q', walltime: '01:00:00', resources: { h_vmem: '2G' } });
 * const pids = await cluster.addprocs(sge, { count: 4 });
 */
import { InvalidArgumentError } from '../runtime/transport/errors.ts';
import { expandTaskList, SchedulerCommandError, ShellScheduler } from './shell-scheduler.ts';
import type { JobSpec, ShellSchedulerOptions, UnitStatus } from './shell-scheduler.ts';

export interface SGEManagerOptions extends ShellSchedulerOptions {
  /** The queue (`-q`). @default the scheduler's default */
  queue?: string;
  /** Wall-clock limit (`-l h_rt=`): `'HH:MM:SS'` or seconds. */
  walltime?: string | number;
  /** Resource requests (`-l`): `'h_vmem=2G,mem_free=1G'` or `{ h_vmem: '2G' }`. */
  resources?: string | Record<string, string | number>;
  /** Parallel environment (`-pe`): `'smp 4'` or `{ name: 'smp', slots: 4 }`. */
  pe?: string | { name: string; slots: number };
  /** Extra qsub arguments, on the command line before the script. */
  qsubFlags?: string[];
}

export class SGEManager extends ShellScheduler {
  readonly name = 'sge';
  readonly submitCommand = ['qsub', '-terse', '-S', '/bin/bash'];
  readonly cancelCommand = ['qdel'];
  readonly statusCommand = ['qstat', '-xml'];
  /** `qsub -terse` prints `12` for a job and `12.1-4:1` for an array job. */
  readonly jobIdPattern = /^\s*(?<id>\d+)(?:\.\d+-\d+:\d+)?\s*$/m;
  /** `undefined` outside an array job; the script maps that to 1. */
  readonly taskExpression = '"${SGE_TASK_ID:-1}"';

  constructor(readonly options: SGEManagerOptions = {}) {
    super('sge', options);
    this.extraSubmitFlags = options.qsubFlags ?? [];
  }

  headerLines(job: JobSpec): string[] {
    const o = this.options;
    const lines = [
      `#$ -N ${job.name}`,
      `#$ -o ${job.dir}/scheduler.out`,
      `#$ -e ${job.dir}/scheduler.err`,
      `#$ -wd ${job.dir}`,
    ];
    if (o.queue) lines.push(`#$ -q ${o.queue}`);
    if (o.walltime !== undefined) lines.push(`#$ -l h_rt=${walltime(o.walltime)}`);
    const res = resources(o.resources);
    if (res) lines.push(`#$ -l ${res}`);
    if (o.pe) lines.push(`#$ -pe ${typeof o.pe === 'string' ? o.pe : `${o.pe.name} ${o.pe.slots}`}`);
    if (job.count > 1) lines.push(`#$ -t 1-${job.count}`);
    return lines;
  }

  unitIds(jobId: string, count: number): { id: string; task: number | null }[] {
    if (count === 1) return [{ id: jobId, task: null }];
    return Array.from({ length: count }, (_, i) => ({ id: `${jobId}.${i + 1}`, task: i + 1 }));
  }

  /** `<job_list state="running|pending">` blocks; array jobs list their tasks (`2,3`, `1-10:1`). */
  parseStatus(stdout: string): Map<string, UnitStatus> {
    const out = new Map<string, UnitStatus>();
    for (const m of stdout.matchAll(/<job_list\b[^>]*>([\s\S]*?)<\/job_list>/g)) {
      const body = m[1]!;
      const job = /<JB_job_number>(\d+)<\/JB_job_number>/.exec(body)?.[1];
      const code = /<state>([^<]*)<\/state>/.exec(body)?.[1] ?? '';
      const tasks = /<tasks>([^<]*)<\/tasks>/.exec(body)?.[1];
      if (!job) continue;
      const status: UnitStatus = { state: sgeState(code), detail: code };
      if (tasks === undefined) out.set(job, status);
      else for (const t of expandTaskList(tasks)) out.set(`${job}.${t}`, status);
    }
    return out;
  }

  isGone(e: SchedulerCommandError): boolean {
    return /does not exist|already in deletion|has already been deleted/.test(`${e.stdout}\n${e.stderr}`);
  }
}

/** Grid Engine state letters: E error, r/t/R running (s/S/T suspended, d deleting count as live). */
export function sgeState(code: string): UnitStatus['state'] {
  if (code.includes('E')) return 'error';
  if (/[rtRsST]/.test(code)) return 'running';
  return 'pending';
}

/** Seconds or `'H:MM:SS'` as `H:MM:SS`. */
export function walltime(w: string | number): string {
  if (typeof w === 'string') {
    if (!/^\d+(:\d\d){0,2}$/.test(w)) throw new InvalidArgumentError('walltime', `expected seconds or 'HH:MM:SS', got '${w}'`);
    return w;
  }
  if (!Number.isFinite(w) || w <= 0) throw new InvalidArgumentError('walltime', `expected a positive number of seconds, got ${w}`);
  const s = Math.ceil(w);
  return `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

function resources(r: SGEManagerOptions['resources']): string {
  if (!r) return '';
  if (typeof r === 'string') return r;
  return Object.entries(r).map(([k, v]) => `${k}=${v}`).join(',');
}
