#!/usr/bin/env node
// A FAKE HTCondor for tests: condor_submit, condor_q, condor_rm and condor_history that print
// HTCondor's real output formats and run every job as a local process. HTCondor cannot be
// installed here. State lives in $FAKE_CONDOR_SPOOL (default /tmp/colony-fake-condor).
//
//   condor_submit FILE                 "Submitting job(s)..\n2 job(s) submitted to cluster 42.\n"
//   condor_q [ids] -af Attr...         one line per job in the queue, "undefined" for a missing attribute
//   condor_rm ID...                    "Job 42.0 marked for removal" / "Job 42.9 not found" (exit 1)
//   condor_history [ids] -af Attr...   jobs that left the queue
//
// FAKE_CONDOR_IDLE_MS keeps new jobs Idle (JobStatus 1) that long before they run.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SPOOL = process.env.FAKE_CONDOR_SPOOL || '/tmp/colony-fake-condor';
const QUEUE = join(SPOOL, 'queue');
const HISTORY = join(SPOOL, 'history');
mkdirSync(QUEUE, { recursive: true });
mkdirSync(HISTORY, { recursive: true });
const [cmd, ...args] = process.argv.slice(2);

const read = (f) => JSON.parse(readFileSync(f, 'utf8'));
const write = (f, v) => {
  writeFileSync(`${f}.tmp${process.pid}`, JSON.stringify(v));
  renameSync(`${f}.tmp${process.pid}`, f);
};
const jobFile = (dir, c, p) => join(dir, `${c}.${p}.json`);

function withLock(fn) {
  const lock = join(SPOOL, 'lock');
  for (let i = 0; ; i++) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (i > 5000) throw new Error('fake condor: spool lock is stuck');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
    }
  }
  try {
    return fn();
  } finally {
    rmdirSync(lock);
  }
}

function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

/** Jobs in the queue; a job whose runner died is moved to the history as Removed. */
function queued() {
  const jobs = [];
  for (const f of readdirSync(QUEUE).filter((n) => n.endsWith('.json'))) {
    let j;
    try {
      j = read(join(QUEUE, f));
    } catch {
      continue;
    }
    if (j.runner && !alive(j.runner)) {
      j.JobStatus = 3;
      leave(j);
      continue;
    }
    jobs.push(j);
  }
  return jobs.sort((a, b) => a.ClusterId - b.ClusterId || a.ProcId - b.ProcId);
}

function leave(j) {
  write(jobFile(HISTORY, j.ClusterId, j.ProcId), j);
  try {
    renameSync(jobFile(QUEUE, j.ClusterId, j.ProcId), `${jobFile(QUEUE, j.ClusterId, j.ProcId)}.gone`);
  } catch {}
}

function selects(j, ids) {
  if (!ids.length) return true;
  return ids.some((id) => (id.includes('.') ? id === `${j.ClusterId}.${j.ProcId}` : id === String(j.ClusterId)));
}

function autoformat(jobs, attrs) {
  for (const j of jobs) process.stdout.write(`${attrs.map((a) => (j[a] === undefined || j[a] === null ? 'undefined' : String(j[a]))).join(' ')}\n`);
}

// As HTCondor's tools read them: `-af` takes attributes up to the next argument starting with '-'.
function parseQueryArgs(a) {
  const ids = [];
  let attrs = null;
  let limit = Infinity;
  for (let k = 0; k < a.length; k++) {
    if (a[k] === '-limit') limit = Number(a[++k]);
    else if (a[k] === '-af' || a[k].startsWith('-af:') || a[k] === '-autoformat') {
      attrs = [];
      while (k + 1 < a.length && !a[k + 1].startsWith('-')) attrs.push(a[++k]);
    } else if (!a[k].startsWith('-')) ids.push(a[k]);
  }
  return { ids, attrs, limit };
}

switch (cmd) {
  case 'submit': {
    const file = args.filter((a) => !a.startsWith('-')).at(-1);
    if (!file || !existsSync(file)) {
      process.stderr.write(`\nERROR: Can't open "${file}"  with flags 00 (No such file or directory)\n`);
      process.exit(1);
    }
    const desc = {};
    let count = 0;
    for (const raw of readFileSync(file, 'utf8').split('\n')) {
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      const q = /^queue(?:\s+(\d+))?$/i.exec(line);
      if (q) {
        count = Number(q[1] ?? 1);
        continue;
      }
      const kv = /^([A-Za-z_+][\w.+]*)\s*=\s*(.*)$/.exec(line);
      if (!kv) {
        process.stderr.write(`\nERROR: on Line ${line}: syntax error\n`);
        process.exit(1);
      }
      desc[kv[1].toLowerCase()] = kv[2];
    }
    if (!desc.executable) {
      process.stderr.write('\nERROR: No \'executable\' parameter was provided\nERROR: Failed to parse command file (line 0).\n');
      process.exit(1);
    }
    if (desc.requirements && /\bFalse\b/.test(desc.requirements)) {
      // What a schedd says when a job can never match is a later story; this fake refuses at once.
      process.stderr.write('\nERROR: requirements expression is False: the job can never run\n');
      process.exit(1);
    }
    const cluster = withLock(() => {
      const counter = join(SPOOL, 'next');
      const next = existsSync(counter) ? Number(readFileSync(counter, 'utf8')) : 1;
      writeFileSync(counter, String(next + 1));
      return next;
    });
    const dir = resolve(desc.initialdir ?? process.cwd());
    for (let p = 0; p < count; p++) {
      const macro = (s) => s?.replace(/\$\(Process\)/g, String(p)).replace(/\$\(Cluster(?:Id)?\)/g, String(cluster));
      const job = {
        ClusterId: cluster, ProcId: p, JobStatus: 1, Cmd: desc.executable, Args: macro(desc.arguments ?? ''),
        Iwd: dir, Out: macro(desc.output ?? '/dev/null'), Err: macro(desc.error ?? '/dev/null'),
        JobBatchName: desc.batch_name, QDate: Math.floor(Date.now() / 1000), ExitCode: null, HoldReason: null,
        runner: null, pid: null,
      };
      write(jobFile(QUEUE, cluster, p), job);
      const runner = spawn(process.execPath, [fileURLToPath(import.meta.url), 'run', String(cluster), String(p)], {
        detached: true, stdio: 'ignore', env: process.env,
      });
      runner.unref();
    }
    process.stdout.write(`Submitting job(s)${'.'.repeat(count)}\n${count} job(s) submitted to cluster ${cluster}.\n`);
    break;
  }
  case 'run': {
    // The shadow of one job: idle, then run it, then move it to the history.
    const [c, p] = args;
    const f = jobFile(QUEUE, c, p);
    let j = read(f);
    j.runner = process.pid;
    write(f, j);
    const idle = Number(process.env.FAKE_CONDOR_IDLE_MS ?? 0);
    if (idle > 0) await new Promise((r) => setTimeout(r, idle));
    j = read(f);
    if (j.JobStatus !== 1) process.exit(0);
    const out = openSync(j.Out, 'a');
    const err = openSync(j.Err, 'a');
    const child = spawn(j.Cmd, j.Args.split(/\s+/).filter(Boolean), { cwd: j.Iwd, stdio: ['ignore', out, err], detached: true, env: { PATH: process.env.PATH, HOME: process.env.HOME ?? '/', _CONDOR_JOB_AD: f } });
    closeSync(out);
    closeSync(err);
    j.JobStatus = 2;
    j.pid = child.pid;
    j.JobStartDate = Math.floor(Date.now() / 1000);
    write(f, j);
    const onSignal = () => {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {}
    };
    process.on('SIGTERM', onSignal);
    child.once('exit', (code, signal) => {
      const now = existsSync(f) ? read(f) : j;
      now.ExitCode = code;
      now.ExitBySignal = signal !== null;
      if (now.JobStatus !== 3) now.JobStatus = 4;
      leave(now);
      process.exit(0);
    });
    break;
  }
  case 'q': {
    const { ids, attrs } = parseQueryArgs(args);
    const jobs = queued().filter((j) => selects(j, ids));
    if (attrs) autoformat(jobs, attrs);
    else {
      process.stdout.write(`\n\n-- Schedd: fake@${process.env.HOSTNAME ?? 'localhost'} : <127.0.0.1:9618?... @ ${new Date().toLocaleString()}\n`);
      process.stdout.write('OWNER BATCH_NAME      SUBMITTED   DONE   RUN    IDLE  TOTAL JOB_IDS\n');
      process.stdout.write(`\nTotal for query: ${jobs.length} jobs; 0 completed, 0 removed, ${jobs.filter((j) => j.JobStatus === 1).length} idle, ${jobs.filter((j) => j.JobStatus === 2).length} running, 0 held, 0 suspended\n`);
    }
    break;
  }
  case 'history': {
    const { ids, attrs, limit } = parseQueryArgs(args);
    const jobs = readdirSync(HISTORY).filter((n) => n.endsWith('.json')).map((n) => read(join(HISTORY, n))).filter((j) => selects(j, ids)).slice(0, limit);
    autoformat(jobs, attrs ?? ['ClusterId', 'ProcId', 'JobStatus', 'ExitCode']);
    break;
  }
  case 'rm': {
    const ids = args.filter((a) => !a.startsWith('-'));
    let failed = false;
    const jobs = queued();
    for (const id of ids) {
      const hit = jobs.filter((j) => selects(j, [id]));
      if (!hit.length) {
        process.stdout.write(`Job ${id} not found\n`);
        failed = true;
        continue;
      }
      for (const j of hit) {
        j.JobStatus = 3;
        write(jobFile(QUEUE, j.ClusterId, j.ProcId), j);
        try {
          if (j.pid) process.kill(-j.pid, 'SIGTERM');
        } catch {}
        if (!j.pid) {
          try {
            if (j.runner) process.kill(j.runner, 'SIGKILL');
          } catch {}
          leave(j);
        }
      }
      process.stdout.write(id.includes('.') ? `Job ${id} marked for removal\n` : `All jobs in cluster ${id} have been marked for removal\n`);
    }
    process.exit(failed ? 1 : 0);
  }
  default:
    process.stderr.write(`fake condor: unknown command ${cmd}\n`);
    process.exit(2);
}
