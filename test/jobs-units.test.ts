/** Job files, the job machine and the grant function: pure parts, no servers. */
import { describe, expect, it } from 'vitest';
import { fold, foldStep, initialSnapshot, jobEvents, jobMachine, grantable, emptyCounts, countJob, ENVELOPE_VERSION } from '../actors/index.ts';
import type { Envelope, GrantCandidate, JobEvent } from '../actors/index.ts';
import { JobSpecError, parseJobSpec, validateJobSpec } from '../runtime/jobs/job-spec.ts';
import { replayActor } from '../runtime/log/replay.ts';

const refusal = (text: string, file = 'jobs/bad.yaml'): JobSpecError => {
  try {
    parseJobSpec(text, file);
  } catch (e) {
    expect(e).toBeInstanceOf(JobSpecError);
    return e as JobSpecError;
  }
  throw new Error('the file was accepted');
};

describe('job files', () => {
  it('a full job file parses, with argv values as strings', () => {
    const spec = parseJobSpec([
      'name: regrid-2026-11', 'class: ssh', 'queue: q1', 'command: [python3, regrid.py, --date, 2026-11-01, -n, 4]',
      'workdir: /data/run1', 'env: { FOO: bar, N: 3 }', 'host: alice@node1:2222', 'timeout: 3600', 'retries: 2',
      'steps: [download, regrid, upload]',
    ].join('\n'));
    expect(spec).toEqual({
      name: 'regrid-2026-11', class: 'ssh', queue: 'q1', command: ['python3', 'regrid.py', '--date', '2026-11-01', '-n', '4'],
      workdir: '/data/run1', env: { FOO: 'bar', N: '3' }, host: 'alice@node1:2222', timeout: 3600, retries: 2,
      steps: ['download', 'regrid', 'upload'],
    });
  });

  it('defaults: class local, queue default, no retries, a string command', () => {
    expect(parseJobSpec('name: a\ncommand: echo hi | wc -c\n')).toMatchObject({ class: 'local', queue: 'default', retries: 0, command: 'echo hi | wc -c', timeout: null });
  });

  it('malformed YAML names the file and the line', () => {
    const e = refusal('name: a\ncommand: [echo, hi\nclass: local\n');
    expect(e.message).toMatch(/^jobs\/bad\.yaml:\d+: malformed YAML/);
    expect(e.line).toBeGreaterThan(1);
  });

  it('an unknown class names the file, the line and the field', () => {
    const e = refusal('name: a\ncommand: [true]\nclass: lokal\n');
    expect(e.field).toBe('class');
    expect(e.line).toBe(3);
    expect(e.message).toBe('jobs/bad.yaml:3: class: unknown class "lokal"; choose from local, ssh, ec2');
  });

  it('a missing command and an ssh job with no host are refused by field', () => {
    expect(refusal('name: a\nclass: local\n').message).toMatch(/^jobs\/bad\.yaml: command: is required/);
    const e = refusal('name: a\nclass: ssh\ncommand: [true]\n');
    expect(e.field).toBe('host');
    expect(e.message).toMatch(/host: is required for an ssh job/);
  });

  it('unknown fields, bad types and bad values name the field', () => {
    expect(refusal('name: a\ncommand: [true]\ntimout: 5\n').message).toBe('jobs/bad.yaml:3: timout: unknown field; a job has name, class, queue, command, workdir, env, host, timeout, retries, steps');
    expect(refusal('name: a\ncommand: [true]\nretries: -1\n').field).toBe('retries');
    expect(refusal('name: a\ncommand: [true]\ntimeout: soon\n').field).toBe('timeout');
    expect(refusal('name: a\ncommand: [true, [x]]\n').field).toBe('command.1');
    expect(refusal('name: a\ncommand: [true]\nqueue: a.b\n').field).toBe('queue');
    expect(refusal('command: [true]\n').field).toBe('name');
    expect(refusal('- a\n- b\n').message).toMatch(/a job is a mapping/);
  });

  it('an object spec is validated the same way', () => {
    expect(() => validateJobSpec({ name: 'x', command: ['true'], class: 'gpu' })).toThrow(/<spec>: class: unknown class "gpu"/);
  });
});

// ------------------------------------------------------------------ machine

const spec = validateJobSpec({ name: 'j', command: ['true'], retries: 1 });

function envelopes(events: JobEvent[]): Envelope[] {
  let snap = initialSnapshot(jobMachine);
  return events.map((ev, i) => {
    const step = foldStep(jobMachine, snap, ev);
    expect(step.accepted, `${ev.type} in ${step.from}`).toBe(true);
    snap = step.snapshot;
    return { v: ENVELOPE_VERSION, kind: 'job', id: 'j-1', seq: i + 1, at: ev.at, type: ev.type, from: i ? step.from : null, to: step.to, data: ev.data as Record<string, unknown> };
  });
}

describe('job machine', () => {
  it('queued -> granted -> running -> succeeded, with steps in order and the result; replay --verify agrees', () => {
    const envs = envelopes([
      jobEvents.queued(1, spec), jobEvents.granted(2, 'h'), jobEvents.started(3, { host: 'h', ospid: 42, run: 1 }),
      jobEvents.stepCompleted(4, 'a'), jobEvents.stepCompleted(5, 'b'), jobEvents.succeeded(6, 0, { x: 1 }),
    ]);
    expect(envs.map((e) => e.to)).toEqual(['queued', 'granted', 'running', 'running', 'running', 'succeeded']);
    const r = replayActor(envs, { verify: true });
    expect(r.state).toBe('succeeded');
    expect(r.context).toMatchObject({ steps: ['a', 'b'], result: { x: 1 }, code: 0, run: 1 });
  });

  it('a failed run with retries left goes back to queued; the last one fails', () => {
    const envs = envelopes([
      jobEvents.queued(1, spec), jobEvents.granted(2, 'h'), jobEvents.started(3, { host: 'h', ospid: 1, run: 1 }),
      jobEvents.retrying(4, { code: 3, reason: 'exit code 3', stderrTail: 'boom' }),
      jobEvents.granted(5, 'h'), jobEvents.started(6, { host: 'h', ospid: 2, run: 2 }),
      jobEvents.failed(7, { code: 3, reason: 'exit code 3', stderrTail: 'boom' }),
    ]);
    expect(envs.map((e) => e.to)).toEqual(['queued', 'granted', 'running', 'queued', 'granted', 'running', 'failed']);
    // No retry is left after run 2.
    const snap = fold(jobMachine, envs.slice(0, 6)).snapshot;
    expect(foldStep(jobMachine, snap, jobEvents.retrying(7, { code: 3, reason: '', stderrTail: '' })).accepted).toBe(false);
  });

  it('a start report of another run is refused; cancel is accepted in every live state, not after the end', () => {
    const envs = envelopes([jobEvents.queued(1, spec), jobEvents.granted(2, 'h')]);
    const snap = fold(jobMachine, envs).snapshot;
    expect(foldStep(jobMachine, snap, jobEvents.started(3, { host: 'h', ospid: 1, run: 2 })).accepted).toBe(false);
    expect(foldStep(jobMachine, snap, jobEvents.cancelled(3, 'alice')).to).toBe('cancelled');
    const done = fold(jobMachine, envelopes([jobEvents.queued(1, spec), jobEvents.cancelled(2, 'bob')])).snapshot;
    expect(done.status).toBe('done');
    expect(foldStep(jobMachine, done, jobEvents.granted(3, 'h')).accepted).toBe(false);
  });

  it('snapshots round-trip through JSON', () => {
    const snap = fold(jobMachine, envelopes([jobEvents.queued(1, spec), jobEvents.granted(2, 'h')])).snapshot;
    const back = jobMachine.resolveState(JSON.parse(JSON.stringify({ value: snap.value, context: snap.context })));
    expect(foldStep(jobMachine, back, jobEvents.started(3, { host: 'h', ospid: 1, run: 1 })).to).toBe('running');
  });
});

// ------------------------------------------------------------------ grants

const job = (id: string, cls: GrantCandidate['class'], host: string | null, queue = 'default'): GrantCandidate => ({ id, class: cls, host, queue });

describe('grants', () => {
  it('perClass: takes queued jobs in order up to the limit', () => {
    const q = ['a', 'b', 'c'].map((id) => job(id, 'local', 'm'));
    expect(grantable(q, emptyCounts(), { perClass: { local: 2 } })).toEqual(['a', 'b']);
    const running = emptyCounts();
    countJob(running, { class: 'local', host: 'm', queue: 'default' });
    expect(grantable(q, running, { perClass: { local: 2 } })).toEqual(['a']);
  });

  it('a full host or class never blocks a later job that could run elsewhere (no head-of-line blocking)', () => {
    const running = emptyCounts();
    countJob(running, { class: 'ssh', host: 'n1', queue: 'default' });
    countJob(running, { class: 'local', host: 'm', queue: 'default' });
    const q = [job('a', 'ssh', 'n1'), job('b', 'local', 'm'), job('c', 'ssh', 'n2'), job('d', 'ec2', null), job('e', 'ssh', 'n2')];
    expect(grantable(q, running, { perHost: { n1: 1, n2: 1 }, perClass: { local: 1 } })).toEqual(['c', 'd']);
  });

  it('perQueue and total', () => {
    const q = [job('a', 'local', 'm', 'q1'), job('b', 'local', 'm', 'q1'), job('c', 'local', 'm', 'q2'), job('d', 'local', 'm', 'q3')];
    expect(grantable(q, emptyCounts(), { perQueue: { q1: 1 } })).toEqual(['a', 'c', 'd']);
    expect(grantable(q, emptyCounts(), { perQueue: { q1: 1 }, total: 2 })).toEqual(['a', 'c']);
    expect(grantable(q, emptyCounts(), {})).toEqual(['a', 'b', 'c', 'd']);
  });
});
