#!/usr/bin/env node
// The job runner: one process per job run, detached from the manager, which it outlives.
//
//   node job-runner.mjs CONFIG_FILE
//
// CONFIG_FILE (mode 0600, deleted once read) holds { url, user, password, cluster, id, run, spec,
// host, logLimit }: the credentials travel in that file, never on a command line. The runner
//   1. claims the run (`<id>.<run>` in the KV bucket colony_<c>_jobruns, created only if absent):
//      a second runner of the same run, started by a manager that restarted between its
//      `job.granted` and the first runner's report, finds the claim and exits without running;
//   2. starts the command in its own process group (an argv, or a string for /bin/sh -c), with
//      $COLONY_JOB_RESULT naming a private file for the job's JSON result;
//   3. streams stdout and stderr into the log stream COLONY_<c>_JOBLOGS
//      (colony.<c>.jobs.log.<id>.<run>.out|err, then .eof), at most `logLimit` bytes, pausing the
//      pipes while appends are in flight, so memory stays bounded whatever the job prints;
//   4. reports over the work-queue stream COLONY_<c>_JOBS (colony.<c>.jobs.report.<id>):
//      started { ospid, host }, step { step } for each `::step NAME` line, exited { code, signal,
//      result, reason, stderrTail }. Reports are stored, so a manager that is down reads them
//      when it comes back;
//   5. answers colony.<c>.jobs.runner.<id> (core NATS): `cancel` kills the process group,
//      `ping` says it is alive; and kills the job at its `timeout`.
//
// Plain JavaScript with only the NATS core client: it starts in ~80 ms, without the TypeScript
// loader.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, headers } from '@nats-io/transport-node';

const STDERR_TAIL = 4096;
const MAX_RESULT = 512 * 1024;
const CHUNK = 60 * 1024;
const INFLIGHT = 8;
const KILL_GRACE_MS = 2000;
const STEP = /^::step\s+(.+?)\s*$/;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A JetStream publish through a plain request: returns the ack, or throws with its error. */
async function publish(nc, subject, data, msgId, extra = {}) {
  const h = headers();
  if (msgId) h.set('Nats-Msg-Id', msgId);
  for (const [k, v] of Object.entries(extra)) h.set(k, v);
  let last;
  for (let attempt = 0; attempt < 30; attempt++) {
    try {
      const m = await nc.request(subject, data, { timeout: 10_000, headers: h });
      if (m.data.length === 0) throw new Error(`no JetStream responders for ${subject}`);
      const ack = JSON.parse(dec.decode(m.data));
      if (ack.error) return ack;
      return ack;
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** attempt)));
    }
  }
  throw last;
}

/**
 * Runs one job run over `nc` and reports it; resolves once its end is reported (true), or at
 * once when another runner has claimed the run (false).
 */
export async function runJob(nc, cfg) {
  const { cluster: c, id, run, spec } = cfg;
  const p = `colony.${c}.jobs`;
  const jsPublish = (subject, data, msgId, extra) => publish(nc, subject, data, msgId, extra);

  // 1. The claim.
  const claim = await jsPublish(`$KV.colony_${c}_jobruns.${id}.${run}`, enc.encode(String(process.pid)), null, { 'Nats-Expected-Last-Subject-Sequence': '0' });
  if (claim.error) {
    // Another runner has this run: it runs the job, not us.
    return false;
  }

  // Reports go out one at a time, in order; each is stored before the next.
  let reportSeq = 0;
  let reports = Promise.resolve();
  function report(body) {
    const n = ++reportSeq;
    // `at`: when it happened here, not when the manager reads it.
    const data = enc.encode(JSON.stringify({ ...body, run, at: Date.now() }));
    reports = reports.then(() => jsPublish(`${p}.report.${id}`, data, `${id}.${run}.${n}`)).then((ack) => {
      if (ack.error) throw new Error(ack.error.description);
    });
    return reports;
  }

  // 2. The command.
  const dir = mkdtempSync(join(tmpdir(), 'colony-job-'));
  const resultFile = join(dir, 'result.json');
  const argv = typeof spec.command === 'string' ? ['/bin/sh', '-c', spec.command] : spec.command;
  const env = { ...process.env, ...spec.env, COLONY_JOB_RESULT: resultFile, COLONY_JOB_ID: id, COLONY_JOB_RUN: String(run) };
  delete env.COLONY_NATS_PASSWORD;
  let child;
  let spawnError = null;
  try {
    child = spawn(argv[0], argv.slice(1), { cwd: spec.workdir ?? undefined, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  } catch (e) {
    spawnError = e;
  }
  const exited = new Promise((resolve) => {
    if (!child) return resolve({ code: null, signal: null });
    child.once('error', (e) => {
      spawnError = e;
      resolve({ code: null, signal: null });
    });
    child.once('close', (code, signal) => resolve({ code, signal }));
  });

  // 3. Output.
  let steps = 0;
  let logBytes = 0;
  let dropped = 0;
  let logSeq = 0;
  let inflight = 0;
  let logs = [];
  const paused = new Set();
  function pump(stream, kind) {
    let line = '';
    let tail = '';
    stream.on('data', (buf) => {
      for (let off = 0; off < buf.length; off += CHUNK) sendLog(kind, buf.subarray(off, off + CHUNK), stream);
      if (kind === 'err') {
        tail = (tail + dec.decode(buf)).slice(-STDERR_TAIL);
        return;
      }
      // Steps: whole lines only; an over-long line is not a step.
      const text = line + dec.decode(buf);
      const lines = text.split('\n');
      line = lines.pop() ?? '';
      if (line.length > 4096) line = '';
      for (const l of lines) {
        const m = STEP.exec(l);
        if (m) void report({ type: 'step', step: m[1], index: steps++ });
      }
    });
    return new Promise((resolve) => stream.once('end', () => {
      const m = STEP.exec(line);
      if (m) void report({ type: 'step', step: m[1], index: steps++ });
      resolve(tail);
    }));
  }
  function sendLog(kind, bytes, stream) {
    if (logBytes + bytes.length > cfg.logLimit) {
      dropped += bytes.length;
      return;
    }
    logBytes += bytes.length;
    inflight++;
    if (inflight >= INFLIGHT && !paused.has(stream)) {
      paused.add(stream);
      stream.pause();
    }
    const n = ++logSeq;
    logs.push(jsPublish(`${p}.log.${id}.${run}.${kind}`, bytes, `${id}.${run}.log.${n}`).catch(() => undefined).finally(() => {
      inflight--;
      if (inflight < INFLIGHT / 2) {
        for (const s of paused) s.resume();
        paused.clear();
      }
    }));
    if (logs.length > 64) logs = [Promise.all(logs)];
  }

  // Read the pipes from the start: a child that exits before they are read must not leave them unread.
  const pumped = child ? Promise.all([pump(child.stdout, 'out'), pump(child.stderr, 'err')]) : Promise.resolve([null, '']);
  if (child?.pid) void report({ type: 'started', ospid: child.pid, host: cfg.host });

  let killReason = null;
  let cancelledBy = null;
  function killGroup(reason) {
    if (!child?.pid || killReason) return;
    killReason = reason;
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    setTimeout(() => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, KILL_GRACE_MS).unref();
  }

  // 5. Control.
  const ctl = nc.subscribe(`${p}.runner.${id}`, {
    callback: (_err, m) => {
      let req = {};
      try {
        req = JSON.parse(dec.decode(m.data));
      } catch {
        /* a ping */
      }
      if (req.op === 'cancel') {
        cancelledBy ??= String(req.by ?? 'someone');
        killGroup('cancelled');
      }
      m.respond(enc.encode(JSON.stringify({ run, ospid: child?.pid ?? null, runner: process.pid })));
    },
  });
  await nc.flush();

  let timer = null;
  if (spec.timeout && child?.pid) {
    timer = setTimeout(() => killGroup(`timeout: killed after ${spec.timeout} s`), spec.timeout * 1000);
  }

  const [, stderrTail] = await pumped;
  const { code, signal } = await exited;
  if (timer) clearTimeout(timer);

  // 4. The result and the end.
  let result = null;
  let reason = null;
  if (spawnError) reason = `cannot start ${JSON.stringify(argv[0])}: ${spawnError.message}`;
  else if (killReason) reason = killReason;
  else if (code !== 0) reason = signal ? `killed by ${signal}` : `exit code ${code}`;
  try {
    const size = statSync(resultFile).size;
    if (size > MAX_RESULT) reason ??= `$COLONY_JOB_RESULT holds ${size} bytes, more than ${MAX_RESULT}`;
    else result = JSON.parse(readFileSync(resultFile, 'utf8'));
  } catch (e) {
    if (e.code !== 'ENOENT') reason ??= `$COLONY_JOB_RESULT is not JSON: ${e.message}`;
  }
  rmSync(dir, { recursive: true, force: true });
  if (dropped) sendLog('err', enc.encode(`\n[colony: ${dropped} bytes of output dropped over the ${cfg.logLimit}-byte log limit]\n`), child.stderr);
  await Promise.all(logs);
  // The output is stored; its end marker and the exit report need not wait for each other
  // (`logs --follow` ends at the marker only once the job is recorded as over).
  await Promise.all([
    jsPublish(`${p}.log.${id}.${run}.eof`, enc.encode(''), `${id}.${run}.log.eof`).catch(() => undefined),
    report({ type: 'exited', code: code ?? null, signal: signal ?? null, result, reason, stderrTail: stderrTail ?? '', cancelledBy }),
  ]);
  ctl.unsubscribe();
  return true;
}

/** The runner host: one per host and cluster, it runs the local jobs the manager sends it. */
async function serveHost(nc, cfg) {
  const subject = `colony.${cfg.cluster}.jobs.host.${cfg.hostKey}`;
  let running = 0;
  let idle = null;
  const idleCheck = () => {
    clearTimeout(idle);
    // No job and no request for a while: exit; the manager starts a host again when it needs one.
    if (running === 0) idle = setTimeout(() => void nc.drain(), cfg.idleMs ?? 60_000);
  };
  nc.subscribe(subject, {
    queue: 'host',
    callback: (_err, m) => {
      let job;
      try {
        job = JSON.parse(dec.decode(m.data));
      } catch {
        return;
      }
      running++;
      idleCheck();
      m.respond(enc.encode(JSON.stringify({ host: process.pid })));
      void runJob(nc, { ...job, cluster: cfg.cluster }).catch((e) => process.stderr.write(`job ${job.id}: ${e.stack ?? e}\n`)).finally(() => {
        running--;
        idleCheck();
      });
    },
  });
  await nc.flush();
  nc.publish(`${subject}.ready`, enc.encode(String(process.pid)));
  idleCheck();
  // A host with nothing to run does not wait out a server that has gone away.
  void (async () => {
    let gone = null;
    for await (const st of nc.status()) {
      if (st.type === 'disconnect' && running === 0) gone = setTimeout(() => void nc.close(), 5000);
      if (st.type === 'reconnect') clearTimeout(gone);
    }
  })();
  await nc.closed();
}

const hostMode = process.argv[2] === '--host';
const file = process.argv[hostMode ? 3 : 2];
if (!file) {
  process.stderr.write('usage: job-runner.mjs [--host] CONFIG_FILE\n');
  process.exit(2);
}
const cfg = JSON.parse(readFileSync(file, 'utf8'));
rmSync(file, { force: true });
// Through a NATS restart or a network blip, not forever: 10 minutes without a server and it gives up.
const nc = await connect({
  servers: cfg.url, user: cfg.user, pass: cfg.password, name: hostMode ? `colony-job-host-${cfg.hostKey}` : `colony-job-${cfg.id}-${cfg.run}`,
  maxReconnectAttempts: 300, reconnectTimeWait: 2000,
});
if (hostMode) await serveHost(nc, cfg);
else {
  await runJob(nc, cfg);
  await nc.drain();
}
process.exit(0);
