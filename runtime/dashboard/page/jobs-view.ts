/** Jobs: state, class, host, the steps done out of the steps declared, and the output tail. */
import type { JobView, Model } from '../dashboard-model.ts';
import { badge, clock, fill, h } from './dom.ts';
import type { App, View } from './view.ts';

const SHOWN = 50;
const TAIL_LINES = 6;

export function jobsView(app: App): View {
  const body = h('tbody');
  const el = h('section', { id: 'jobs', class: 'panel wide' },
    h('h2', {}, 'Jobs'),
    h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, ...['job', 'name', 'class', 'queue', 'host', 'state', 'steps', 'queued', 'output'].map((t) => h('th', {}, t)))),
      body));

  const steps = (j: JobView) => {
    const n = j.steps.length;
    const done = j.done.length;
    const items = n ? j.steps.map((s) => h('li', { class: j.done.includes(s) ? 'done' : '' }, s)) : j.done.map((s) => h('li', { class: 'done' }, s));
    return h('div', { class: 'steps' },
      h('span', { class: 'count' }, n ? `${Math.min(done, n)} / ${n}` : done ? `${done} / ?` : '–'),
      h('ol', {}, items));
  };

  const row = (j: JobView) => {
    const tail = j.tail ? j.tail.split('\n').filter(Boolean).slice(-TAIL_LINES).join('\n') : '';
    return h('tr', { 'data-job': j.id },
      h('td', {}, h('a', { href: '#', onclick: (e: Event) => { e.preventDefault(); app.openActor(`job/${j.id}`); } }, j.id)),
      h('td', {}, j.name), h('td', {}, j.cls), h('td', {}, j.queue), h('td', { class: 'host' }, j.host ?? ''),
      h('td', {}, badge(j.state), j.run > 1 ? h('span', { class: 'why' }, ` run ${j.run}`) : null),
      h('td', {}, steps(j)),
      h('td', {}, clock(j.queuedAt)),
      h('td', { class: 'out' },
        j.reason ? h('div', { class: 'why' }, j.code !== null ? `code ${j.code}: ${j.reason}` : j.reason) : j.code !== null ? h('div', {}, `code ${j.code}`) : null,
        tail ? h('pre', {}, tail) : null));
  };

  return {
    el,
    render(m: Model) {
      const jobs = Object.values(m.jobs).sort((a, b) => b.queuedAt - a.queuedAt).slice(0, SHOWN);
      fill(body, jobs.length ? jobs.map(row) : h('tr', {}, h('td', { colspan: 9, class: 'empty' }, 'no jobs (colony jobs submit FILE)')));
    },
  };
}
