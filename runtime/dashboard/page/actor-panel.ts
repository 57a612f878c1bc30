/** A drawer with one actor's timeline, replayed from the log through its machine (`colony replay`). */
import { clock, fill, h, summary } from './dom.ts';
import type { App } from './view.ts';

interface Replayed {
  actor: string;
  events: number;
  state: string | null;
  replayed: boolean;
  note?: string;
  timeline: { seq: number; type: string; from: string; to: string; at: number }[];
  data?: unknown[];
}

export function actorPanel(app: Pick<App, 'api'>): { el: HTMLElement; open(actor: string): Promise<void> } {
  const title = h('h2', {});
  const meta = h('p', { class: 'note' });
  const body = h('tbody');
  const el = h('aside', { id: 'actor', class: 'drawer', hidden: true },
    h('button', { class: 'close', 'aria-label': 'close', onclick: () => { el.hidden = true; } }, '×'),
    title, meta,
    h('table', { class: 'grid' }, h('thead', {}, h('tr', {}, ...['#', 'time', 'event', 'from', 'to', 'data'].map((t) => h('th', {}, t)))), body));
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') el.hidden = true; });

  async function open(actor: string): Promise<void> {
    el.hidden = false;
    title.textContent = actor;
    meta.textContent = 'replaying…';
    fill(body);
    const r = await fetch(app.api('/api/replay', { actor }));
    if (!r.ok) {
      meta.textContent = `replay failed: ${await r.text()}`;
      return;
    }
    const x = (await r.json()) as Replayed;
    el.dataset.actor = actor;
    meta.textContent = x.events
      ? `${x.events} event(s), state ${x.state}${x.replayed ? ', replayed through its machine' : ` (as recorded: ${x.note ?? 'no machine here'})`}`
      : 'no stored events for this actor';
    fill(body, x.timeline.map((s, i) => h('tr', {},
      h('td', { class: 'num' }, s.seq), h('td', { class: 'num' }, clock(s.at, true)), h('td', {}, s.type),
      h('td', {}, s.from || '∅'), h('td', {}, s.to), h('td', { class: 'data' }, summary(x.data?.[i], 200)))));
  }

  return { el, open };
}
