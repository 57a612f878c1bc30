/** The worker table: pid, host, manager, state, running task, memory and calls done. */
import { shortTask } from '../dashboard-model.ts';
import type { Model, WorkerView } from '../dashboard-model.ts';
import { badge, duration, fill, h, megabytes } from './dom.ts';
import type { App, View } from './view.ts';

const LIVE = new Set(['registered', 'ready', 'stopping']);

export function workersView(app: App): View {
  const body = h('tbody');
  const note = h('p', { class: 'note' });
  const el = h('section', { id: 'workers', class: 'panel' },
    h('h2', {}, 'Workers'),
    h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, ...['pid', 'host', 'manager', 'state', 'running task', 'memory', 'calls done', 'heartbeat'].map((t) => h('th', {}, t)))),
      body),
    note);

  const row = (w: WorkerView) => {
    const hb = w.hb;
    const live = LIVE.has(w.state);
    const silent = live && !app.offline() && (!hb || app.now() - hb.seenAt > 3000);
    const running = hb && (hb.running ?? 0) > 0 ? shortTask(hb.task ?? w.lastTask) || 'busy' : live && !app.offline() ? 'idle' : '';
    // Calls from the heartbeat (a pmap batch is one), items from the spans seen here (a pmap item is one).
    const calls = hb?.completed ?? 0;
    return h('tr', { 'data-pid': w.pid, class: live ? '' : 'ended' },
      h('td', { class: 'num' }, h('a', { href: '#', onclick: (e: Event) => { e.preventDefault(); app.openActor(`worker/${w.pid}`); } }, String(w.pid))),
      h('td', { class: 'host' }, w.host),
      h('td', {}, w.manager),
      h('td', {}, badge(silent ? `${w.state}?` : w.state), w.reason && !live ? h('span', { class: 'why' }, ` ${w.reason}`) : null),
      h('td', { class: 'task' }, running),
      h('td', { class: 'num' }, live ? megabytes(hb?.rss) : ''),
      h('td', { class: 'num', title: 'calls finished (heartbeat); items: task calls seen in spans, a pmap item counting one' },
        calls ? String(calls) : '', w.spanCalls && w.spanCalls !== calls ? h('span', { class: 'why' }, ` (${w.spanCalls} items)`) : null),
      h('td', { class: 'num' }, hb ? `${duration(Math.max(0, app.now() - hb.seenAt))} ago` : app.offline() ? '' : 'not seen'));
  };

  return {
    el,
    render(m: Model) {
      const list = Object.values(m.workers).sort((a, b) => a.pid - b.pid);
      fill(body, list.length ? list.map(row) : h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'no workers yet')));
      const live = list.filter((w) => LIVE.has(w.state)).length;
      note.textContent = `${live} live of ${list.length}` + (m.offline ? ' (stored log: states as last recorded; no heartbeats)' : `; driver ${m.driverSeenAt && app.now() - m.driverSeenAt < 3000 ? 'alive' : 'not seen'}`);
    },
  };
}
