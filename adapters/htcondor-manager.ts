/**
 * HTCondorManager: workers as HTCondor jobs (ClusterManagers.jl's HTCManager). One launch is one
 * cluster of `count` procs (`queue N`) described by a submit file; `condor_q` gives their status
 * and `condor_rm` removes them (`42.0`, `42.1`).
 *
 * @example
 * const condor = new HTCondorManager({ requestMemory: '2GB', requirements: 'OpSys == "LINUX"' });
 * await cluster.addprocs(condor, { count: 4 });
 */
import type { Unit } from './adapter-manager.ts';
import { run, SchedulerCommandError, ShellScheduler } from './shell-scheduler.ts';
import type { JobSpec, ShellSchedulerOptions, UnitStatus } from './shell-scheduler.ts';

export interface HTCondorManagerOptions extends ShellSchedulerOptions {
  /** @default 'vanilla' */
  universe?: string;
  /** `request_cpus`. */
  requestCpus?: number;
  /** `request_memory`, e.g. `'2GB'`. */
  requestMemory?: string;
  /** `requirements`, a ClassAd expression. */
  requirements?: string;
  /** More submit-file lines, `{ key: value }`, written as they are. */
  submit?: Record<string, string | number>;
  /** Extra condor_submit arguments. */
  condorSubmitFlags?: string[];
}

/** HTCondor's JobStatus codes. */
const JOB_STATUS: Record<string, [UnitStatus['state'], string]> = {
  '1': ['pending', 'Idle'],
  '2': ['running', 'Running'],
  '3': ['ended', 'Removed'],
  '4': ['ended', 'Completed'],
  '5': ['error', 'Held'],
  '6': ['running', 'Transferring Output'],
  '7': ['running', 'Suspended'],
};

export class HTCondorManager extends ShellScheduler {
  readonly name = 'condor';
  readonly submitCommand = ['condor_submit'];
  readonly cancelCommand = ['condor_rm'];
  readonly statusCommand = ['condor_q', '-af', 'ClusterId', 'ProcId', 'JobStatus', 'ExitCode', 'HoldReason'];
  /** `condor_submit` ends with `N job(s) submitted to cluster 42.` */
  readonly jobIdPattern = /(?<count>\d+) job\(s\) submitted to cluster (?<id>\d+)\./;
  /** The script gets `$(Process)` (0-based) as its first argument. */
  readonly taskExpression = '"$(( ${1:-0} + 1 ))"';

  constructor(readonly options: HTCondorManagerOptions = {}) {
    super('condor', options);
    this.extraSubmitFlags = options.condorSubmitFlags ?? [];
  }

  /** Comments only: HTCondor reads its directives from the submit file. */
  headerLines(job: JobSpec): string[] {
    return [`# HTCondor job: submitted with ${job.submitFile}`];
  }

  submitDescription(job: JobSpec): string {
    const o = this.options;
    const lines: [string, string | number][] = [
      ['universe', o.universe ?? 'vanilla'],
      ['executable', '/bin/bash'],
      ['arguments', `${job.script} $(Process)`],
      ['initialdir', job.dir],
      ['output', `${job.dir}/scheduler.$(Process).out`],
      ['error', `${job.dir}/scheduler.err`],
      ['log', `${job.dir}/condor.log`],
      ['batch_name', job.name],
      ['getenv', 'false'],
    ];
    if (o.requestCpus) lines.push(['request_cpus', o.requestCpus]);
    if (o.requestMemory) lines.push(['request_memory', o.requestMemory]);
    if (o.requirements) lines.push(['requirements', o.requirements]);
    for (const [k, v] of Object.entries(o.submit ?? {})) lines.push([k, v]);
    return `${lines.map(([k, v]) => `${k} = ${v}`).join('\n')}\nqueue ${job.count}\n`;
  }

  /** HTCondor numbers procs from 0: a job of one is `42.0`. */
  unitIds(jobId: string, count: number): { id: string; task: number | null }[] {
    return Array.from({ length: count }, (_, i) => ({ id: `${jobId}.${i}`, task: i + 1 }));
  }

  statusArgv(jobIds: string[]): string[] {
    return ['condor_q', ...jobIds, ...this.statusCommand.slice(1)];
  }

  /** `condor_q -af ClusterId ProcId JobStatus ExitCode HoldReason`: `42 0 2 undefined undefined`. */
  parseStatus(stdout: string): Map<string, UnitStatus> {
    const out = new Map<string, UnitStatus>();
    for (const line of stdout.split('\n')) {
      const m = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s*(.*)$/.exec(line);
      if (!m) continue;
      const [state, word] = JOB_STATUS[m[3]!] ?? ['pending', `JobStatus ${m[3]}`];
      const code = /^\d+$/.test(m[4]!) ? Number(m[4]) : null;
      const hold = m[5] && m[5] !== 'undefined' ? `: ${m[5]}` : '';
      out.set(`${m[1]}.${m[2]}`, { state, detail: `${word}${hold}`, ...(state === 'ended' ? { code } : {}) });
    }
    return out;
  }

  /** A job that left the queue is in the history: `condor_history 42.0 -limit 1 -af ExitCode`. */
  async exitCode(unit: Unit): Promise<number | null> {
    const { stdout } = await run(['condor_history', unit.id, '-limit', '1', '-af', 'ExitCode']);
    const v = stdout.trim().split('\n')[0]?.trim() ?? '';
    return /^\d+$/.test(v) ? Number(v) : null;
  }

  isGone(e: SchedulerCommandError): boolean {
    return /not found|Couldn't find/i.test(`${e.stdout}\n${e.stderr}`);
  }
}
