/**
 * Whether a real scheduler is up, for the tests that need one. In CI (`CI=true`) `.ci/run`
 * starts them all, so a scheduler that is down fails its tests loudly; elsewhere they are skipped
 * with the reason printed and the command that brings the scheduler up.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const IN_CI = /^(1|true|yes)$/i.test(process.env.CI ?? '');

/** The private sshd of test/schedulers/start-sshd.sh. */
export const SSHD_DIR = process.env.COLONY_SSHD_DIR ?? '/tmp/colony-sshd';
/** The fake condor_*, bpsh and bpstat. */
export const FAKE_BIN = fileURLToPath(new URL('./fake-bin', import.meta.url));

export interface Gate {
  name: string;
  up: boolean;
  reason: string;
  /** Runs the suite: always in CI, else only when up. */
  run: boolean;
}

function ok(argv: string[], timeoutMs = 10_000): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs }, (err, stdout, stderr) => resolve({ ok: !err, out: `${stdout}${stderr}`.trim() }));
  });
}

async function gate(name: string, start: string, probe: () => Promise<string | null>): Promise<Gate> {
  const problem = await probe();
  const up = problem === null;
  const reason = up ? `${name} is up` : `${name} is not up (${problem}); start it with: bash test/schedulers/${start}`;
  if (!up) {
    if (IN_CI) console.error(`FAIL: ${reason}. CI=true: .ci/run should have started it, so its tests fail.`);
    else console.warn(`SKIP: ${reason}`);
  }
  return { name, up, reason, run: up || IN_CI };
}

export function sgeGate(): Promise<Gate> {
  return gate('Grid Engine', 'start-sge.sh', async () => {
    const r = await ok(['qstat', '-xml']);
    if (!r.ok) return `qstat -xml failed: ${r.out.slice(0, 200) || 'not installed'}`;
    const q = await ok(['qconf', '-sql']);
    return q.ok && q.out.split('\n').includes('all.q') ? null : `no queue all.q: ${q.out.slice(0, 200)}`;
  });
}

export function slurmGate(): Promise<Gate> {
  return gate('Slurm', 'start-slurm.sh', async () => {
    const r = await ok(['sinfo', '-h', '-o', '%T']);
    if (!r.ok) return `sinfo failed: ${r.out.slice(0, 200) || 'not installed'}`;
    return /idle|mixed|allocated|completing/.test(r.out) ? null : `no node is up (sinfo says '${r.out}')`;
  });
}

export function sshdGate(): Promise<Gate> {
  return gate('sshd on 127.0.0.1', 'start-sshd.sh', async () => {
    if (!existsSync(`${SSHD_DIR}/ssh_config`)) return `${SSHD_DIR}/ssh_config is missing`;
    const r = await ok(['ssh', '-F', `${SSHD_DIR}/ssh_config`, 'colony-sshd', 'true']);
    return r.ok ? null : `ssh colony-sshd true failed: ${r.out.slice(0, 200)}`;
  });
}

/** Runs `argv` and returns stdout (for queue checks in tests). */
export function output(argv: string[]): Promise<string> {
  return ok(argv).then((r) => r.out);
}
