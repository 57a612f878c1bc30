/**
 * The web dashboard in a real headless Chromium (Debian's, driven by playwright-core) against
 * real clusters: a live one with 2 workers after a pmap of 200 items, and the stored log of a
 * stopped one opened by `colony dashboard`. Screenshots of each view go to test-artifacts/dashboard/.
 */
import { spawn } from 'node:child_process';
import { get } from 'node:http';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Envelope } from '../actors/index.ts';
import { COLONY_BIN } from '../adapters/cluster-manager.ts';
import { Cluster } from '../runtime/index.ts';
import { buildPage, startDashboard } from '../runtime/dashboard/index.ts';
import type { Journal } from '../runtime/log/journal.ts';
import { startCluster } from './helpers/cluster.ts';
import { uniqueName } from './helpers/nats.ts';
import { waitFor } from './helpers/wait.ts';
import { busy, failOdd, PMAP_TASKS_URL } from './fixtures/pmap-tasks.ts';
import { boom } from './fixtures/tasks.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/dashboard/', import.meta.url));

let context: BrowserContext;
let profile: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run installs it)`);
  await Promise.all([buildPage(), mkdir(ARTIFACTS, { recursive: true })]);
  profile = await mkdtemp(join(tmpdir(), 'colony-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

afterAll(async () => {
  await context?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
});

/** A page that records its console errors and uncaught exceptions. */
async function openPage(url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(`${e.name}: ${e.message}`));
  // Everything the page loads must come from the dashboard itself: no CDN, no network.
  const origin = new URL(url).origin;
  page.on('request', (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith('data:')) errors.push(`request off the dashboard: ${r.url()}`); });
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]');
  return { page, errors };
}

/** The status of a GET sent with another Host header (fetch may not set one). */
function statusWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

/** `colony dashboard ARGS` as a child process, once it has printed its URL. */
async function dashboardCli(args: string[]): Promise<{ url: string; stdout: () => string; stop: () => Promise<string> }> {
  const cli = spawn(process.execPath, [COLONY_BIN, 'dashboard', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  cli.stdout!.on('data', (b) => { stdout += b; });
  cli.stderr!.on('data', (b) => { stderr += b; });
  const exited = new Promise<string>((r) => cli.once('exit', (code, signal) => r(`exited ${code ?? signal}`)));
  // SIGTERM stops it (its server, and the temporary nats-server of a stored log); a hang is a failure.
  const stop = async () => {
    if (cli.exitCode !== null) return exited;
    cli.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const how = await Promise.race([exited, new Promise<string>((r) => { timer = setTimeout(() => r('hung'), 15_000); })]);
    clearTimeout(timer);
    if (how === 'hung') cli.kill('SIGKILL');
    return how;
  };
  try {
    const url = await waitFor(() => {
      if (cli.exitCode !== null) throw new Error(`colony dashboard exited ${cli.exitCode}: ${stderr}`);
      return /(http:\/\/[^\s]+)\s/.exec(stdout)?.[1];
    }, { timeoutMs: 30_000, message: "the dashboard's URL" });
    return { url, stdout: () => stdout, stop };
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message} (stderr: ${stderr})`, { cause: e });
  }
}

const shot = (page: Page, selector: string, name: string) => page.locator(selector).screenshot({ path: join(ARTIFACTS, `${name}.png`) });

/** Appends events for one actor to a real journal, each after the previous one. */
async function appendActor(journal: Journal, kind: 'pool' | 'job', id: string, events: [type: string, to: string, data: Record<string, unknown>, at: number][]): Promise<void> {
  let last = 0;
  let from: string | null = null;
  for (const [i, [type, to, data, at]] of events.entries()) {
    const env: Envelope = { v: 1, kind, id, seq: i + 1, at, type, from, to, data };
    last = await journal.append(env, last, 'dashboard-test');
    from = to;
  }
}

describe('dashboard', () => {
  it('shows the live cluster: workers, spans on both lanes, the map, a worker added later, pools and jobs', async () => {
    await using tc = await startCluster({ workers: 2, tasks: true, dashboard: { port: 0 } });
    const { cluster } = tc;
    expect(cluster.dashboardUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    await cluster.everywhere(PMAP_TASKS_URL);
    const out = await cluster.pmap(busy, Array.from({ length: 200 }, () => 2), { id: uniqueName('map') });
    expect(out).toHaveLength(200);
    const pids = cluster.workers();
    expect(pids).toHaveLength(2);
    // A map with failures, shown in red on the bar and marked on the timeline.
    await cluster.pmap(failOdd, Array.from({ length: 40 }, (_, i) => i), { onError: () => -1, batchSize: 5 });

    // A task that throws is a span with its error's name.
    await expect(cluster.remotecallFetch(boom, pids[0]!, 'on purpose')).rejects.toThrow('on purpose');
    await waitFor(async () => {
      const st = (await (await fetch(`${cluster.dashboardUrl}api/state`)).json()) as { model: { spans: Record<string, [string, number, number, string | null][]> } };
      return st.model.spans[pids[0]!]?.some((sp) => sp[0].endsWith('#boom') && sp[3] === 'RangeError');
    }, { message: 'the failed call as a span' });

    const { page, errors } = await openPage(cluster.dashboardUrl!);

    // The worker table lists both pids with their host.
    for (const pid of pids) {
      const row = page.locator(`#workers tr[data-pid="${pid}"]`);
      await row.waitFor();
      expect(await row.locator('td.host').textContent()).toBe(hostname());
    }
    // The timeline holds spans on both lanes.
    const counts = await waitFor(async () => {
      const c = JSON.parse((await page.locator('#timeline').getAttribute('data-spans')) ?? '{}') as Record<string, number>;
      return pids.every((p) => (c[p] ?? 0) > 0) ? c : null;
    }, { message: 'spans on both lanes' });
    expect(Object.keys(counts).map(Number)).toEqual(expect.arrayContaining(pids));
    // The map shows 200 of 200.
    const mapRow = page.locator('#maps .map', { hasText: 'pmap-tasks.ts#busy' });
    await expect.poll(() => mapRow.locator('.count').textContent()).toBe('200 of 200');
    await expect.poll(() => page.locator('#maps .map', { hasText: 'failOdd' }).locator('.failed').textContent()).toBe('20 failed');

    // A worker added now appears without a reload, within 2 s.
    const [added] = await cluster.addprocs(1);
    const t0 = Date.now();
    await page.locator(`#workers tr[data-pid="${added}"]`).waitFor({ timeout: 2000 });
    expect(Date.now() - t0).toBeLessThan(2000);
    await expect.poll(() => page.locator(`#workers tr[data-pid="${added}"] td.host`).textContent()).toBe(hostname());

    // Pool and job events as DESIGN.md names them, appended to the real log (no pool or job
    // manager runs in this test): the views draw them live.
    const t = Date.now() - 60_000;
    const pool = uniqueName('pool');
    await appendActor(cluster.journal, 'pool', pool, [
      ['pool.started', 'running', { manager: 'sge', policy: { min: 0, max: 4 } }, t],
      ['pool.decided', 'running', { ready: 40, idle: 0, queued: 0, running: 0, action: 'spawn', reason: 'ready work 40 > idle workers 0' }, t + 1000],
      ['pool.spawned', 'running', { launch: 'l1', count: 1 }, t + 1100],
      ['pool.decided', 'running', { ready: 40, idle: 0, queued: 1, running: 0, action: 'hold', reason: 'spawned 1 s ago (spawnIntervalMs 30000)' }, t + 2000],
      ['pool.worker.joined', 'running', { pid: 90 }, t + 9000],
      ['pool.decided', 'running', { ready: 12, idle: 0, queued: 0, running: 1, action: 'spawn', reason: 'ready work 12 > idle workers 0' }, t + 31_000],
      ['pool.spawned', 'running', { launch: 'l2', count: 1 }, t + 31_100],
      ['pool.worker.joined', 'running', { pid: 91 }, t + 38_000],
      ['pool.decided', 'running', { ready: 0, idle: 2, queued: 0, running: 2, action: 'retire', reason: 'worker 90 idle 300 s (idleMs 300000)' }, t + 50_000],
      ['pool.worker.retired', 'running', { pid: 90, reason: 'idle' }, t + 50_100],
    ]);
    const job = uniqueName('job');
    await appendActor(cluster.journal, 'job', job, [
      ['job.queued', 'queued', { spec: { name: 'regrid-2026-11', class: 'ssh', queue: 'default', command: ['python3', 'regrid.py'], host: 'node1', steps: ['download', 'regrid', 'upload'] } }, t],
      ['job.granted', 'granted', { host: 'node1' }, t + 500],
      ['job.started', 'running', { host: 'node1', ospid: 4242, run: 1 }, t + 900],
      ['job.step.completed', 'running', { step: 'download' }, t + 5000],
      ['job.step.completed', 'running', { step: 'regrid' }, t + 20_000],
      ['job.failed', 'failed', { code: 3, reason: 'exited with code 3', stderrTail: 'uploading to s3://bucket/out\nerror: permission denied\n' }, t + 25_000],
    ]);
    const poolEl = page.locator(`#pools .pool[data-pool="${pool}"]`);
    await poolEl.waitFor();
    await expect.poll(() => poolEl.locator('.decisions tbody tr').count()).toBe(4);
    expect(await poolEl.locator('.decisions').textContent()).toContain('worker 90 idle 300 s');
    expect(await poolEl.locator('.pool-head .count').textContent()).toBe('1 worker(s)');
    const jobRow = page.locator(`#jobs tr[data-job="${job}"]`);
    await expect.poll(() => jobRow.locator('.steps .count').textContent()).toBe('2 / 3');
    expect(await jobRow.textContent()).toContain('permission denied');
    expect(await jobRow.locator('.badge').textContent()).toBe('failed');

    await page.screenshot({ path: join(ARTIFACTS, 'live-page.png'), fullPage: true });

    // The timeline zooms with the wheel, which stops it following live until "follow" is pressed.
    const follow = page.locator('#timeline button', { hasText: 'follow' });
    expect(await follow.getAttribute('class')).toBe('on');
    const box = (await page.locator('#timeline .chart').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.3, box.y + 40);
    for (let i = 0; i < 4; i++) await page.mouse.wheel(0, -240);
    await expect.poll(() => follow.getAttribute('class')).toBe('');
    // While the page redraws (once a second), the zoomed window stays where it was.
    const timeline = page.locator('#timeline');
    const redrawn = async () => {
      const n = Number(await timeline.getAttribute('data-renders'));
      await expect.poll(async () => Number(await timeline.getAttribute('data-renders'))).toBeGreaterThan(n);
    };
    await redrawn();
    const zoomed = await timeline.getAttribute('data-window');
    await redrawn();
    await redrawn();
    expect(await timeline.getAttribute('data-window')).toBe(zoomed);
    await shot(page, '#timeline', 'live-timeline-zoomed');
    await follow.click();
    expect(await follow.getAttribute('class')).toBe('on');

    // The event tail, filtered to worker events; clicking an actor shows its replayed timeline.
    await page.fill('#log input', 'worker.*');
    await page.press('#log input', 'Enter');
    await expect.poll(async () => {
      const actors = await page.locator('#log tbody a.actor').allTextContents();
      return actors.length > 0 && actors.every((a) => a.startsWith('worker/'));
    }).toBe(true);
    await shot(page, '#workers', 'live-workers');
    await shot(page, '#timeline', 'live-timeline');
    await shot(page, '#maps', 'live-maps');
    await shot(page, '#pools', 'live-pools');
    await shot(page, '#jobs', 'live-jobs');
    await shot(page, '#log', 'live-events');
    await page.locator('#log tbody a.actor', { hasText: `worker/${pids[0]}` }).first().click();
    const drawer = page.locator('#actor');
    await expect.poll(() => drawer.locator('.note').textContent()).toMatch(/event\(s\), state ready, replayed through its machine/);
    expect(await drawer.locator('tbody').textContent()).toContain('worker.registered');
    await shot(page, '#actor', 'live-actor-replay');
    // Nothing the page got twice (its snapshot, then deltas) was counted twice.
    expect(await page.locator('#maps .map', { hasText: 'failOdd' }).locator('.failed').textContent()).toBe('20 failed');
    const drawn = JSON.parse((await page.locator('#timeline').getAttribute('data-spans')) ?? '{}') as Record<string, number>;
    const served = (await (await fetch(`${cluster.dashboardUrl}api/state`)).json()) as { model: { spans: Record<string, unknown[]> } };
    for (const pid of pids) expect(drawn[pid]).toBe(served.model.spans[pid]!.length);

    expect(errors).toEqual([]);
    await page.close();

    // `colony dashboard` attaches to this running cluster from its state dir, as an observer.
    const cli = await dashboardCli(['--state-dir', tc.stateDir, '--port', '0']);
    try {
      expect(cli.stdout()).not.toContain('stopped');
      const served = (await (await fetch(`${cli.url}api/state`)).json()) as { live: boolean; model: { workers: Record<string, { host: string; state: string }>; maps: Record<string, { done: number; total: number; task: string }> } };
      expect(served.live).toBe(true);
      for (const pid of [...pids, added!]) expect(served.model.workers[pid]).toMatchObject({ host: hostname(), state: 'ready' });
      expect(Object.values(served.model.maps).find((v) => v.task.endsWith('#busy'))).toMatchObject({ done: 200, total: 200 });
    } finally {
      expect(await cli.stop()).toBe('exited 0');
    }
  });

  it('opens the stored log of a stopped cluster with colony dashboard: its workers and maps', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'colony-dash-'));
    const name = uniqueName('stopped');
    let cli: Awaited<ReturnType<typeof dashboardCli>> | null = null;
    try {
      const cluster = await Cluster.start({ name, stateDir, workers: 2, workerOutput: 'ignore', graceMs: 10_000 });
      let pids: number[];
      try {
        await cluster.everywhere(PMAP_TASKS_URL);
        await cluster.pmap(busy, Array.from({ length: 60 }, () => 1), { id: 'stored' });
        pids = cluster.workers();
      } finally {
        await cluster.close();
      }

      cli = await dashboardCli(['--state-dir', stateDir, '--name', name, '--port', '0']);
      const url = cli.url;
      expect(cli.stdout()).toContain('(stopped: its stored log)');

      const { page, errors } = await openPage(url);
      expect(await page.locator('header .badge').first().textContent()).toBe('stopped: stored log');
      for (const pid of pids) {
        const row = page.locator(`#workers tr[data-pid="${pid}"]`);
        await row.waitFor();
        expect(await row.locator('td.host').textContent()).toBe(hostname());
        expect(await row.locator('.badge').textContent()).toBe('exited');
      }
      const map = page.locator('#maps .map[data-map="stored"]');
      expect(await map.locator('.count').textContent()).toBe('60 of 60');
      expect(await map.locator('.badge').textContent()).toBe('finished');
      expect(await page.locator('#timeline').getAttribute('data-lanes')).toBe(String(pids.length));
      await page.screenshot({ path: join(ARTIFACTS, 'stopped-page.png'), fullPage: true });
      await shot(page, '#workers', 'stopped-workers');
      await shot(page, '#maps', 'stopped-maps');
      await shot(page, '#timeline', 'stopped-timeline');
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      if (cli) expect(await cli.stop()).toBe('exited 0');
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it('needs its token on an address other than loopback, and only reads', async () => {
    // An exported log (`colony export`), served on 127.0.0.2: not 127.0.0.1, so the token is needed.
    const log = fileURLToPath(new URL('./fixtures/logs/core-lifecycle.jsonl', import.meta.url));
    const cli = await dashboardCli(['--file', log, '--host', '127.0.0.2', '--port', '0']);
    try {
      const url = new URL(cli.url);
      const token = url.searchParams.get('token')!;
      expect(url.host).toMatch(/^127\.0\.0\.2:\d+$/);
      expect(token).toMatch(/^[A-Za-z0-9_-]{20,}$/);
      expect(cli.stdout()).toContain('19 events from');
      const base = url.origin;
      for (const path of ['/', '/api/state', '/api/stream', '/app.js', '/api/replay?actor=worker/2']) {
        const r = await fetch(`${base}${path}`);
        expect(r.status, path).toBe(401);
        expect(await r.text()).toContain('token');
      }
      expect((await fetch(`${base}/api/state?token=wrong-${token}`)).status).toBe(403);
      const ok = await fetch(`${base}/?token=${token}`);
      expect(ok.status).toBe(200);
      // The page's assets carry the token too.
      expect(await ok.text()).toContain(`app.js?token=${token}`);
      expect((await fetch(`${base}/api/state?token=${token}`, { method: 'POST' })).status).toBe(405);

      // With the token the page works: the file's workers, replay, no console errors.
      const { page, errors } = await openPage(cli.url);
      for (const pid of [2, 3, 4]) await page.locator(`#workers tr[data-pid="${pid}"]`).waitFor();
      // As recorded: 3 exited, 4 was lost (the file has no heartbeats to say more).
      expect(await page.locator('#workers tr[data-pid="3"] .badge').textContent()).toBe('exited');
      expect(await page.locator('#workers tr[data-pid="4"] .badge').textContent()).toBe('lost');
      await page.locator('#workers tr[data-pid="3"] a').click();
      await expect.poll(() => page.locator('#actor .note').textContent()).toMatch(/state exited, replayed through its machine/);
      await page.screenshot({ path: join(ARTIFACTS, 'file-page.png'), fullPage: true });
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      expect(await cli.stop()).toBe('exited 0');
    }
    // On 127.0.0.1 no token is needed, but the Host header must be a loopback name.
    const local = await startDashboard({ name: 'file', envelopes: [] }, { port: 0 });
    try {
      expect(local.token).toBeNull();
      expect((await fetch(`${local.url}api/state`)).status).toBe(200);
      expect(await statusWithHost(`${local.url}api/state`, 'evil.example')).toBe(403);
    } finally {
      await local.close();
    }
  });
});
