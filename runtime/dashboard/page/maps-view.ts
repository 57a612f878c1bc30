/** Map runs (pmap) as progress bars: items done, failed and retried. */
import { shortTask } from '../dashboard-model.ts';
import type { MapView, Model } from '../dashboard-model.ts';
import { badge, duration, fill, h } from './dom.ts';
import type { App, View } from './view.ts';

/** The newest maps shown. */
const SHOWN = 30;

export function mapsView(app: App): View {
  const list = h('div', { class: 'maps' });
  const el = h('section', { id: 'maps', class: 'panel' }, h('h2', {}, 'Maps'), list);

  const item = (v: MapView) => {
    const total = Math.max(v.total, 1);
    const failed = Math.min(v.failed, v.done);
    const ok = v.done - failed;
    const pct = (n: number) => `${((100 * n) / total).toFixed(2)}%`;
    const end = v.endedAt ?? (v.state === 'running' && !app.offline() ? app.now() : null);
    return h('div', { class: 'map', 'data-map': v.id },
      h('div', { class: 'map-head' },
        h('a', { href: '#', onclick: (e: Event) => { e.preventDefault(); app.openActor(`map/${v.id}`); } }, v.id),
        h('span', { class: 'task' }, shortTask(v.task)),
        badge(v.state),
        h('span', { class: 'count' }, `${v.done} of ${v.total}`),
        v.retried ? h('span', { class: 'retried' }, `${v.retried} retried`) : null,
        failed ? h('span', { class: 'failed' }, `${failed} failed`) : null,
        end !== null ? h('span', { class: 'elapsed' }, duration(end - v.startedAt)) : null),
      h('div', { class: 'bar', title: `${v.done} done (${failed} failed), ${v.retried} retried, of ${v.total}` },
        h('div', { class: 'seg ok', style: `width:${pct(ok)}` }),
        h('div', { class: 'seg bad', style: `width:${pct(failed)}` })),
      v.error ? h('div', { class: 'why' }, v.error) : null);
  };

  return {
    el,
    render(m: Model) {
      const maps = Object.values(m.maps).sort((a, b) => b.startedAt - a.startedAt).slice(0, SHOWN);
      fill(list, maps.length ? maps.map(item) : h('p', { class: 'empty' }, 'no maps yet'));
    },
  };
}
