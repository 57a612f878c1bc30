/**
 * The event tail with a subject filter (`worker.*`, `ref.>`, `map.ab12`, `>`): the newest events
 * first. Clicking an actor opens its timeline, replayed from the log.
 */
import { matchesFilter } from '../dashboard-model.ts';
import type { Model } from '../dashboard-model.ts';
import type { Envelope } from '../../../actors/events.ts';
import { clock, fill, h, summary } from './dom.ts';
import type { App, View } from './view.ts';

const SHOWN = 300;

export function logView(app: App): View {
  const body = h('tbody');
  const input = h('input', { type: 'text', value: '>', list: 'filters', spellcheck: 'false', 'aria-label': 'subject filter', placeholder: 'worker.*, ref.>, map.*, >' });
  const status = h('span', { class: 'note' });
  let filter = '>';
  let last: Model | null = null;
  /** Older matching events fetched from the server for a new filter. */
  let older: Envelope[] = [];
  const apply = async () => {
    filter = input.value.trim() || '>';
    input.classList.toggle('bad', !/^(?:[A-Za-z0-9_-]+|\*)(?:\.(?:[A-Za-z0-9_-]+|\*))*(?:\.>)?$|^>$/.test(filter));
    older = [];
    if (last) render(last);
    try {
      const r = await fetch(app.api('/api/log', { filter, limit: String(SHOWN) }));
      if (r.ok) older = (await r.json()) as Envelope[];
    } catch {
      /* the live tail still shows */
    }
    if (last) render(last);
  };
  input.addEventListener('change', () => void apply());
  input.addEventListener('keydown', (e) => { if ((e as KeyboardEvent).key === 'Enter') void apply(); });
  const el = h('section', { id: 'log', class: 'panel wide' },
    h('h2', {}, 'Events', h('span', { class: 'tools' }, 'filter ', input, status)),
    h('datalist', { id: 'filters' }, ...['>', 'worker.*', 'map.*', 'ref.>', 'pool.>', 'job.>', 'adapter.*'].map((v) => h('option', { value: v }))),
    h('table', { class: 'grid log' },
      h('thead', {}, h('tr', {}, ...['time', 'actor', 'event', 'state', 'data'].map((t) => h('th', {}, t)))),
      body));

  const row = (e: Envelope) => h('tr', {},
    h('td', { class: 'num' }, clock(e.at, true)),
    h('td', {}, h('a', { href: '#', class: 'actor', onclick: (ev: Event) => { ev.preventDefault(); app.openActor(`${e.kind}/${e.id}`); } }, `${e.kind}/${e.id}`)),
    h('td', {}, e.type),
    h('td', { class: 'trans' }, `${e.from ?? '∅'} → ${e.to}`),
    h('td', { class: 'data' }, summary(e.data)));

  function render(m: Model): void {
    last = m;
    const seen = new Set<string>();
    const out: Envelope[] = [];
    for (let i = m.log.length - 1; i >= 0 && out.length < SHOWN; i--) {
      const e = m.log[i]!;
      if (!matchesFilter(e, filter)) continue;
      seen.add(`${e.kind}.${e.id}.${e.seq}`);
      out.push(e);
    }
    for (let i = older.length - 1; i >= 0 && out.length < SHOWN; i--) {
      const e = older[i]!;
      if (!seen.has(`${e.kind}.${e.id}.${e.seq}`)) out.push(e);
    }
    out.sort((a, b) => b.at - a.at);
    status.textContent = ` ${out.length} shown${Object.keys(m.counts).length ? `; seen: ${Object.entries(m.counts).map(([k, n]) => `${k} ${n}`).join(', ')}` : ''}`;
    fill(body, out.length ? out.map(row) : h('tr', {}, h('td', { colspan: 5, class: 'empty' }, `no events match ${filter}`)));
  }

  return { el, render };
}
