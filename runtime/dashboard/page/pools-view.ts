/**
 * Pools: each pool's size, queued scheduler jobs and ready work over time (from pool.* events),
 * with its decisions (spawn, retire, hold) marked on the chart and listed with their reasons.
 */
import type { Model, PoolView } from '../dashboard-model.ts';
import { autoResize, echarts } from './charts.ts';
import { badge, clock, fill, h } from './dom.ts';
import type { App, View } from './view.ts';

const ACTION_COLOR: Record<string, string> = { spawn: '#3ba272', retire: '#fc8452', hold: '#9aa3b2' };
const DECISIONS_SHOWN = 8;

interface PoolPanel {
  el: HTMLElement;
  head: HTMLElement;
  table: HTMLElement;
  chart: echarts.ECharts;
}

export function poolsView(app: App): View {
  const list = h('div', { class: 'pools' });
  const el = h('section', { id: 'pools', class: 'panel wide' }, h('h2', {}, 'Pools'), list);
  const panels = new Map<string, PoolPanel>();

  const panel = (id: string): PoolPanel => {
    let p = panels.get(id);
    if (p) return p;
    const box = h('div', { class: 'chart pool-chart' });
    const head = h('div', { class: 'pool-head' });
    const table = h('tbody');
    const pel = h('div', { class: 'pool', 'data-pool': id }, head,
      h('div', { class: 'pool-body' }, box,
        h('table', { class: 'grid decisions' },
          h('thead', {}, h('tr', {}, ...['time', 'action', 'reason', 'ready', 'idle', 'queued', 'running'].map((t) => h('th', {}, t)))),
          table)));
    list.append(pel);
    const chart = echarts.init(box, undefined, { renderer: 'canvas' });
    autoResize(chart, box);
    p = { el: pel, head, table, chart };
    panels.set(id, p);
    return p;
  };

  const draw = (p: PoolPanel, v: PoolView, end: number) => {
    fill(p.head,
      h('a', { href: '#', onclick: (e: Event) => { e.preventDefault(); app.openActor(`pool/${v.id}`); } }, `pool ${v.id}`),
      h('span', {}, v.manager), badge(v.state),
      h('span', { class: 'count' }, `${v.workers.length} worker(s)`),
      h('span', {}, `${v.queued} queued, ${v.ready} ready`),
      h('span', {}, `${v.launches} launch(es), ${v.failures} failed`),
      v.reason ? h('span', { class: 'why' }, v.reason) : null);
    const step = (i: number) => v.series.map((pt) => [pt[0], pt[i]]).concat(v.series.length ? [[end, v.series[v.series.length - 1]![i]!]] : []);
    const sizeAt = (at: number) => {
      let size = 0;
      for (const pt of v.series) if (pt[0] <= at) size = pt[1];
      return size;
    };
    p.chart.setOption({
      animation: false,
      grid: { left: 40, right: 44, top: 40, bottom: 50 },
      legend: { top: 0 },
      tooltip: { trigger: 'axis' },
      xAxis: { type: 'time' },
      // Workers and queued jobs are a few; ready work can be thousands of items: its own axis.
      yAxis: [{ type: 'value', minInterval: 1, name: 'workers, jobs' }, { type: 'value', minInterval: 1, name: 'ready', splitLine: { show: false } }],
      dataZoom: [{ type: 'inside', filterMode: 'none' }, { type: 'slider', height: 16, bottom: 6, filterMode: 'none' }],
      series: [
        { name: 'size', type: 'line', step: 'end', showSymbol: false, data: step(1), lineStyle: { width: 2.5 }, color: '#5470c6' },
        { name: 'queued jobs', type: 'line', step: 'end', showSymbol: false, data: step(2), color: '#fac858' },
        { name: 'ready work', type: 'line', step: 'end', showSymbol: false, data: step(3), color: '#91cc75', areaStyle: { opacity: 0.15 }, yAxisIndex: 1 },
        {
          name: 'decisions', type: 'scatter', symbolSize: 10, color: '#9a60b4',
          data: v.decisions.map((d) => ({ value: [d.at, sizeAt(d.at)], itemStyle: { color: ACTION_COLOR[d.action] ?? '#9a60b4' }, d })),
          tooltip: {
            trigger: 'item',
            formatter: (q: unknown) => {
              const d = (q as { data: { d: PoolView['decisions'][number] } }).data.d;
              return `${clock(d.at)} <b>${d.action}</b><br>${d.reason}<br>ready ${d.ready}, idle ${d.idle}, queued ${d.queued}, running ${d.running}`;
            },
          },
        },
      ],
    }, { replaceMerge: ['series'] });
    const recent = v.decisions.slice(-DECISIONS_SHOWN).reverse();
    fill(p.table, recent.length ? recent.map((d) => h('tr', {},
      h('td', {}, clock(d.at)), h('td', {}, h('span', { class: `action a-${d.action}` }, d.action)), h('td', { class: 'reason' }, d.reason),
      h('td', { class: 'num' }, d.ready), h('td', { class: 'num' }, d.idle), h('td', { class: 'num' }, d.queued), h('td', { class: 'num' }, d.running)))
      : h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'no decisions yet')));
  };

  return {
    el,
    render(m: Model) {
      const pools = Object.values(m.pools).sort((a, b) => a.id.localeCompare(b.id));
      if (!pools.length && !list.querySelector('.empty')) fill(list, h('p', { class: 'empty' }, 'no pools (cluster.pool(...) or colony up --pool)'));
      else if (pools.length) list.querySelector('.empty')?.remove();
      const lastAt = m.log.length ? m.log[m.log.length - 1]!.at : app.now();
      for (const v of pools) draw(panel(v.id), v, m.offline || v.state === 'closed' ? Math.max(v.series.at(-1)?.[0] ?? lastAt, v.decisions.at(-1)?.at ?? 0) : app.now());
    },
  };
}
