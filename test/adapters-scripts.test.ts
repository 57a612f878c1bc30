/**
 * Table tests over every adapter that need no scheduler: the scripts, submit files and commands
 * they generate, and how they read recorded scheduler output (test/fixtures/scheduler-output).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EC2Manager } from '../adapters/ec2-manager.ts';
import { HTCondorManager } from '../adapters/htcondor-manager.ts';
import { RemoteExecManager } from '../adapters/remote-exec.ts';
import { ScyldManager, parseBpstat } from '../adapters/scyld-manager.ts';
import { SGEManager, sgeState, walltime } from '../adapters/sge-manager.ts';
import { JOB_WORKER_BIN, SchedulerCommandError, SchedulerOutputError, ShellScheduler, expandTaskList, parseJobId, run, shellQuote } from '../adapters/shell-scheduler.ts';
import type { JobSpec } from '../adapters/shell-scheduler.ts';
import { SlurmManager, parseExitCode } from '../adapters/slurm-manager.ts';
import { SSHManager, parseMachine } from '../adapters/ssh-manager.ts';
import { COLONY_BIN } from '../adapters/cluster-manager.ts';
import type { LaunchParams } from '../adapters/cluster-manager.ts';
import type { Launch } from '../adapters/adapter-manager.ts';

const fixture = (path: string) => readFileSync(new URL(`./fixtures/scheduler-output/${path}`, import.meta.url), 'utf8');

const PASSWORD = 's3cr3t-p4ss';
const TOKENS = ['tok-aaaa', 'tok-bbbb', 'tok-cccc'];
const workerArgv = (token: string) => [process.execPath, COLONY_BIN, 'worker', '--nats', 'nats://127.0.0.1:4222', '--name', 'c1', '--token', token, '--grace', '30000'];
const params: LaunchParams = {
  cluster: 'c1', nats: 'nats://127.0.0.1:4222', env: { COLONY_NATS_USER: 'colony', COLONY_NATS_PASSWORD: PASSWORD }, count: 3,
  exename: process.execPath, exeflags: [], graceMs: 30_000, newToken: () => 'tok', workerArgv,
};
const job = (count: number, over: Partial<JobSpec> = {}): JobSpec => ({ name: 'colony-c1', dir: '/jobs/j1', script: '/jobs/j1/job.sh', submitFile: '/jobs/j1/job.sh', count, cluster: 'c1', ...over });

interface Row {
  name: string;
  make: () => ShellScheduler;
  submit: string[];
  header3: string[];
  task: string;
  unitIds: [string, number, string[]];
  jobId: [string, string][];
}

const shellRows: Row[] = [
  {
    name: 'sge',
    make: () => new SGEManager({ id: 'sge-test', queue: 'all.q', walltime: 3600, resources: { h_vmem: '2G', mem_free: '1G' }, pe: 'smp 4', qsubFlags: ['-P', 'proj'] }),
    submit: ['qsub', '-terse', '-S', '/bin/bash', '-P', 'proj', '/jobs/j1/job.sh'],
    header3: ['#$ -N colony-c1', '#$ -o /jobs/j1/scheduler.out', '#$ -e /jobs/j1/scheduler.err', '#$ -wd /jobs/j1', '#$ -q all.q', '#$ -l h_rt=1:00:00', '#$ -l h_vmem=2G,mem_free=1G', '#$ -pe smp 4', '#$ -t 1-3'],
    task: 'COLONY_TASK="${SGE_TASK_ID:-1}"',
    unitIds: ['7', 3, ['7.1', '7.2', '7.3']],
    jobId: [['sge/qsub-terse.txt', '4'], ['sge/qsub-terse-array.txt', '5']],
  },
  {
    name: 'slurm',
    make: () => new SlurmManager({ id: 'slurm-test', partition: 'main', time: '02:00:00', cpusPerTask: 2, memory: '4G', account: 'acct', sbatchFlags: ['--qos=low'] }),
    submit: ['sbatch', '--parsable', '--qos=low', '/jobs/j1/job.sh'],
    header3: ['#SBATCH --job-name=colony-c1', '#SBATCH --output=/jobs/j1/scheduler.out', '#SBATCH --error=/jobs/j1/scheduler.err', '#SBATCH --open-mode=append', '#SBATCH --chdir=/jobs/j1', '#SBATCH --partition=main', '#SBATCH --time=02:00:00', '#SBATCH --cpus-per-task=2', '#SBATCH --mem=4G', '#SBATCH --account=acct', '#SBATCH --array=1-3'],
    task: 'COLONY_TASK="${SLURM_ARRAY_TASK_ID:-1}"',
    unitIds: ['9', 3, ['9_1', '9_2', '9_3']],
    jobId: [['slurm/sbatch-parsable.txt', '1'], ['slurm/sbatch-parsable-array.txt', '2']],
  },
  {
    name: 'condor',
    make: () => new HTCondorManager({ id: 'condor-test', requestCpus: 2, requestMemory: '2GB', requirements: 'OpSys == "LINUX"', condorSubmitFlags: ['-batch-name', 'x'] }),
    submit: ['condor_submit', '-batch-name', 'x', '/jobs/j1/job.sub'],
    header3: ['# HTCondor job: submitted with /jobs/j1/job.sub'],
    task: 'COLONY_TASK="$(( ${1:-0} + 1 ))"',
    unitIds: ['42', 3, ['42.0', '42.1', '42.2']],
    jobId: [['condor/condor_submit.txt', '42']],
  },
];

describe('shell schedulers - generated scripts and commands', () => {
  for (const row of shellRows) {
    describe(row.name, () => {
      const m = row.make();
      const spec = job(3, row.name === 'condor' ? { submitFile: '/jobs/j1/job.sub' } : {});
      const script = m.jobScript(spec, TOKENS, workerArgv(TOKENS[0]!), `colony.c1.adapter.${m.id}`);
      const lines = script.split('\n');

      it('the script has the shebang, then the header lines in order', () => {
        expect(lines[0]).toBe('#!/bin/bash');
        expect(lines.slice(1, 1 + row.header3.length)).toEqual(row.header3);
      });

      it('the script picks its token by array index and runs the announcing entry, then colony worker', () => {
        expect(lines).toContain(row.task);
        expect(lines).toContain(`COLONY_TOKENS=(${TOKENS.join(' ')})`);
        expect(lines.at(-2)).toBe(
          `exec ${process.execPath} ${JOB_WORKER_BIN} --announce colony.c1.adapter.${m.id} -- worker --nats nats://127.0.0.1:4222 --name c1 --token "\${COLONY_TOKENS[COLONY_TASK-1]}" --grace 30000`,
        );
      });

      it('the credentials are sourced from the 0600 env file, never written into the script', () => {
        expect(script).not.toContain(PASSWORD);
        expect(lines).toEqual(expect.arrayContaining(['set -a', '. "$COLONY_JOB_DIR/env" || exit 78', 'set +a']));
        expect(ShellScheduler.envFile(params.env)).toBe(`COLONY_NATS_USER=colony\nCOLONY_NATS_PASSWORD=${PASSWORD}\n`);
      });

      it('a job of one worker has no array and its token written out', () => {
        const one = m.jobScript(job(1), [TOKENS[0]!], workerArgv(TOKENS[0]!), 'colony.c1.adapter.x');
        expect(one).not.toMatch(/COLONY_TOKENS|-t 1-|--array/);
        expect(one).toContain(`--token ${TOKENS[0]} --grace`);
      });

      it('a custom worker argv runs as it is (no announcing entry)', () => {
        const custom = m.jobScript(job(1), [TOKENS[0]!], ['/opt/node', '/opt/my-worker.mjs', '--token', TOKENS[0]!], 'colony.c1.adapter.x');
        expect(custom.split('\n').at(-2)).toBe(`exec /opt/node /opt/my-worker.mjs --token ${TOKENS[0]}`);
      });

      it('the submit command', () => {
        expect(m.submitArgv(spec)).toEqual(row.submit);
      });

      it('unit ids of an array job, and of a job of one', () => {
        const [id, n, ids] = row.unitIds;
        expect(m.unitIds(id, n).map((u) => u.id)).toEqual(ids);
        expect(m.unitIds(id, n).map((u) => u.task)).toEqual([1, 2, 3]);
        expect(m.unitIds(id, 1)).toHaveLength(1);
      });

      for (const [file, id] of row.jobId) {
        it(`job id from recorded output ${file} is ${id}`, () => {
          expect(parseJobId(m.submitCommand[0]!, m.jobIdPattern, fixture(file))).toBe(id);
        });
      }

      it('unreadable submit output is an error that quotes the pattern and the output', () => {
        const e = (() => {
          try {
            parseJobId(m.submitCommand[0]!, m.jobIdPattern, 'Your job was eaten by a grue\n');
          } catch (err) {
            return err as SchedulerOutputError;
          }
        })();
        expect(e).toBeInstanceOf(SchedulerOutputError);
        expect(e!.message).toContain(String(m.jobIdPattern));
        expect(e!.message).toContain('Your job was eaten by a grue');
      });
    });
  }

  it('condor - the submit description queues N procs of the script with $(Process)', () => {
    const m = new HTCondorManager({ requestCpus: 2, requestMemory: '2GB', requirements: 'OpSys == "LINUX"', submit: { '+ProjectName': '"climate"' } });
    expect(m.submitDescription(job(3)).split('\n')).toEqual([
      'universe = vanilla', 'executable = /bin/bash', 'arguments = /jobs/j1/job.sh $(Process)', 'initialdir = /jobs/j1',
      'output = /jobs/j1/scheduler.$(Process).out', 'error = /jobs/j1/scheduler.err', 'log = /jobs/j1/condor.log', 'batch_name = colony-c1',
      'getenv = false', 'request_cpus = 2', 'request_memory = 2GB', 'requirements = OpSys == "LINUX"', '+ProjectName = "climate"', 'queue 3', '',
    ]);
  });
});

describe('shell schedulers - recorded status output', () => {
  it('sge - qstat -xml: running jobs, pending array tasks, held arrays', () => {
    const m = new SGEManager();
    const s = m.parseStatus(fixture('sge/qstat-xml-running-pending.txt'));
    expect(Object.fromEntries([...s].map(([k, v]) => [k, `${v.state}:${v.detail}`]))).toEqual({
      '4': 'running:r', '5.1': 'running:r', '5.2': 'pending:qw', '5.3': 'pending:qw',
    });
    const held = m.parseStatus(fixture('sge/qstat-xml-hold.txt'));
    expect(held.get('7.2')?.state).toBe('running');
    expect([...held.keys()].filter((k) => k.startsWith('8.'))).toHaveLength(10);
    expect(held.get('8.10')).toEqual({ state: 'pending', detail: 'hqw' });
    expect(m.parseStatus(fixture('sge/qstat-xml-empty.txt')).size).toBe(0);
  });

  it('sge - state letters', () => {
    expect([['r', 'running'], ['t', 'running'], ['qw', 'pending'], ['hqw', 'pending'], ['Eqw', 'error'], ['dr', 'running'], ['s', 'running']].map(([c]) => [c, sgeState(c!)])).toEqual(
      [['r', 'running'], ['t', 'running'], ['qw', 'pending'], ['hqw', 'pending'], ['Eqw', 'error'], ['dr', 'running'], ['s', 'running']],
    );
  });

  it('sge - qdel of an unknown job counts as gone', () => {
    const m = new SGEManager();
    const e = new SchedulerCommandError(['qdel', '99999'], 1, fixture('sge/qdel-unknown.stdout.txt'), fixture('sge/qdel-unknown.stderr.txt'));
    expect(m.isGone(e)).toBe(true);
    expect(m.isGone(new SchedulerCommandError(['qdel', '1'], 1, '', 'error: commlib error: got select error (Connection refused)'))).toBe(false);
  });

  it('slurm - squeue --array --states=all: tasks of arrays, plain jobs, ended states with codes', () => {
    const m = new SlurmManager();
    const s = m.parseStatus(fixture('slurm/squeue-array-states.txt'));
    expect(s.get('2_1')).toEqual({ state: 'running', detail: 'RUNNING' });
    expect(s.get('2_3')).toEqual({ state: 'pending', detail: 'PENDING (Resources)' });
    expect(s.get('3_5')).toEqual({ state: 'ended', detail: 'CANCELLED' });
    expect(s.get('1')).toEqual({ state: 'running', detail: 'RUNNING' });
    const f = m.parseStatus(fixture('slurm/squeue-finished.txt'));
    expect(f.get('7')).toEqual({ state: 'ended', detail: 'COMPLETED', code: 0 });
    expect(f.get('6')).toEqual({ state: 'ended', detail: 'FAILED' });
    expect(parseExitCode(fixture('slurm/scontrol-show-job-failed.txt'))).toBe(3);
    expect(parseExitCode('JobId=1 ExitCode=0:9')).toBe(137);
  });

  it('slurm - squeue of ids it no longer knows means they are gone', () => {
    const m = new SlurmManager();
    const e = new SchedulerCommandError(['squeue'], 1, '', fixture('slurm/squeue-unknown.stderr.txt'));
    expect(m.statusOnError(e)?.size).toBe(0);
    expect(m.statusArgv(['4', '5'])).toEqual(['squeue', '--noheader', '--array', '--states=all', '--format=%F|%K|%i|%T|%r', '--jobs=4,5']);
  });

  it('condor - condor_q -af: running, idle and held procs', () => {
    const m = new HTCondorManager();
    const s = m.parseStatus(fixture('condor/condor_q-af.txt'));
    expect(s.get('42.0')).toEqual({ state: 'running', detail: 'Running' });
    expect(s.get('42.1')).toEqual({ state: 'pending', detail: 'Idle' });
    expect(s.get('43.0')).toEqual({ state: 'error', detail: 'Held: Failed to initialize user log to /nonexistent/condor.log' });
    expect(m.isGone(new SchedulerCommandError(['condor_rm', '42.9'], 1, fixture('condor/condor_rm-unknown.txt'), ''))).toBe(true);
  });

  it('task lists', () => {
    expect(expandTaskList('1')).toEqual([1]);
    expect(expandTaskList('2,3')).toEqual([2, 3]);
    expect(expandTaskList('1-10:3')).toEqual([1, 4, 7, 10]);
    expect(expandTaskList('1-3:1,7')).toEqual([1, 2, 3, 7]);
    expect(() => expandTaskList('x')).toThrow(SchedulerOutputError);
  });

  it('walltimes', () => {
    expect(walltime(90)).toBe('0:01:30');
    expect(walltime(36_000)).toBe('10:00:00');
    expect(walltime('12:00:00')).toBe('12:00:00');
    expect(() => walltime('soon')).toThrow(/walltime/);
  });
});

describe('run(argv) - no shell', () => {
  it('passes arguments as they are and returns stdout', async () => {
    const { stdout } = await run(['printf', '%s|', 'a b', '$HOME', '`id`', "it's"]);
    expect(stdout).toBe("a b|$HOME|`id`|it's|");
  });

  it('a failure carries code, argv, stdout and stderr', async () => {
    const e = await run(['sh', '-c', 'echo out; echo err >&2; exit 3']).catch((x: SchedulerCommandError) => x);
    expect(e).toBeInstanceOf(SchedulerCommandError);
    expect(e).toMatchObject({ code: 3, argv: ['sh', '-c', 'echo out; echo err >&2; exit 3'], stdout: 'out\n', stderr: 'err\n' });
  });

  it('a missing command is code 127', async () => {
    await expect(run(['colony-no-such-command-x'])).rejects.toMatchObject({ code: 127, stderr: expect.stringMatching(/command not found/) });
  });

  it('never hands the cluster credentials to a scheduler command', async () => {
    const { stdout } = await run(['sh', '-c', 'echo "[$COLONY_NATS_PASSWORD]"'], { env: { ...process.env, COLONY_NATS_PASSWORD: PASSWORD } });
    expect(stdout).toBe('[]\n');
  });

  it('shellQuote', () => {
    expect(shellQuote('plain/path-1.2')).toBe('plain/path-1.2');
    expect(shellQuote("it's a $x")).toBe(`'it'\\''s a $x'`);
  });
});

describe('remote execution - ssh and bpsh', () => {
  it('machines: [user@]host[:port] and { host, count }', () => {
    expect(parseMachine('node1')).toEqual({ user: null, host: 'node1', port: null, count: 1 });
    expect(parseMachine('alice@node2:2222')).toEqual({ user: 'alice', host: 'node2', port: 2222, count: 1 });
    expect(parseMachine({ host: 'bob@[::1]:22', count: 4 })).toEqual({ user: 'bob', host: '::1', port: 22, count: 4 });
    expect(() => parseMachine('a b')).toThrow(/machines/);
    expect(() => parseMachine({ host: 'x', count: 0 })).toThrow(/count/);
    expect(() => new SSHManager({ machines: [] })).toThrow(/machines/);
  });

  it('the ssh command: system ssh, batch mode, the user\'s flags, the port, a POSIX sh script', () => {
    const m = new SSHManager({ machines: ['alice@node2:2222'], sshflags: ['-F', 'cfg'], exename: '/opt/node', dir: '/home/alice/work' });
    const argv = (m as unknown as { commandFor(p: { target: string; host: string }, s: string): string[] }).commandFor({ target: 'alice@node2:2222', host: 'node2' }, 'echo hi');
    expect(argv).toEqual(['ssh', '-T', '-o', 'BatchMode=yes', '-o', 'ClearAllForwardings=yes', '-F', 'cfg', '-p', '2222', 'alice@node2', "sh -c 'echo hi'"]);
  });

  it('the remote script reads the credentials from stdin, reports its pid and execs the worker; no password in it', () => {
    const m = new SSHManager({ machines: ['n'], exename: '/opt/node', dir: '/work dir' });
    const script = m.remoteScript(workerArgv('tok-1'));
    expect(script.split('\n')).toEqual([
      "cd '/work dir' || exit 78",
      'while IFS= read -r colony_l && [ -n "$colony_l" ]; do export "$colony_l"; done',
      'echo "colony-ospid:$$"',
      `exec /opt/node ${COLONY_BIN} worker --nats nats://127.0.0.1:4222 --name c1 --token tok-1 --grace 30000`,
    ]);
    expect(RemoteExecManager.credentialInput(params.env)).toBe(`COLONY_NATS_USER=colony\nCOLONY_NATS_PASSWORD=${PASSWORD}\n\n`);
    expect(() => RemoteExecManager.credentialInput({ X: 'two\nlines' })).toThrow(/line/);
  });

  it('bpstat: ranges of nodes and their status', () => {
    expect(parseBpstat(fixture('scyld/bpstat.txt')).filter((n) => n.status === 'up').map((n) => n.node)).toEqual([0, 1, 2, 3]);
    expect(parseBpstat(fixture('scyld/bpstat.txt'))).toHaveLength(10);
    const m = new ScyldManager();
    expect((m as unknown as { commandFor(p: { target: string; host: string }, s: string): string[] }).commandFor({ target: '3', host: 'n3' }, 'echo hi')).toEqual(['bpsh', '3', 'sh', '-c', 'echo hi']);
  });
});

describe('EC2 - user-data', () => {
  it('runs the user\'s lines, exports the credentials and starts the announcing worker with the instances\' NATS URL', () => {
    const m = new EC2Manager({ id: 'ec2-test', region: 'us-east-1', imageId: 'ami-0123456789abcdef0', userData: 'apt-get install -y nodejs', natsUrl: 'tls://nats.example.org:4222', colonyDir: '/opt/colony' });
    const launch = { params } as Launch;
    expect(m.userDataScript(launch, 'tok-9').split('\n')).toEqual([
      '#!/bin/bash',
      '# Colony worker instance (adapter ec2-test, cluster c1).',
      'apt-get install -y nodejs',
      'umask 077',
      'export COLONY_NATS_USER=colony',
      `export COLONY_NATS_PASSWORD=${PASSWORD}`,
      'exec node /opt/colony/adapters/job-worker.mjs --announce colony.c1.adapter.ec2-test -- worker --nats tls://nats.example.org:4222 --name c1 --token tok-9 --grace 30000',
      '',
    ]);
  });
});
