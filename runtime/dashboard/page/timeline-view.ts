/**
 * The task timeline: one lane per process, its task spans coloured by task and failures marked,
 * over each worker's lifetime. It follows the last minutes live; zooming (wheel, drag, slider)
 * stops following until "follow" is pressed again.
 */
import { shortTask } from '../dashboard-model.ts';
import type { Model, Span } from '../dashboard-model.ts';
import { autoResize, echarts, taskColor } from './charts.ts';
import { clock, duration, h } from './dom.ts';
import type { App, View } from './view.ts';

const WINDOWS: [string, number][] = [['1 min', 60_000], ['5 min', 300_000], ['15 min', 900_000], ['all', Infinity]];
const LANE_PX = 30;
const FAILED = '#d62728';

type Api = { value(i: number): number; coord(v: number[]): number[]; size(v: number[]): number[]; visual(k: string): string };
type Params = { coordSys: { x: number; y: number; width: number; height: number } };

/** Draws one bar of a custom series: lane in value 0, start and end in 1 and 2, failed in 3. */
function bar(heightShare: number) {
  return (params: unknown, api: unknown) => {
    const a = api as Api;
    const p = params as Params;
    const lane = a.value(0);
    const from = a.coord([a.value(1), lane]);
    const to = a.coord([a.value(2), lane]);
    const height = a.size([0, 1])[1]! * heightShare;
    const shape = echarts.graphic.clipRectByRect(
      { x: from[0]!, y: from[1]! - height / 2, width: Math.max(1, to[0]! - from[0]!), height },
      { x: p.coordSys.x, y: p.coordSys.y, width: p.coordSys.width, height: p.coordSys.height },
    );
    if (!shape) return null;
    const failed = a.value(3) > 0;
    return { type: 'rect', shape, style: { fill: a.visual('color'), stroke: failed ? FAILED : undefined, lineWidth: failed ? 2 : 0 } };
  };
}

/** A map run: a thin strip along the bottom of its lane. */
function strip(params: unknown, api: unknown) {
  const a = api as Api;
  const p = params as Params;
  const lane = a.value(0);
  const from = a.coord([a.value(1), lane]);
  const to = a.coord([a.value(2), lane]);
  const band = a.size([0, 1])[1]!;
  const height = Math.max(3, band * 0.12);
  const shape = echarts.graphic.clipRectByRect(
    { x: from[0]!, y: from[1]! + band * 0.44 - height, width: Math.max(2, to[0]! - from[0]!), height },
    { x: p.coordSys.x, y: p.coordSys.y, width: p.coordSys.width, height: p.coordSys.height },
  );
  if (!shape) return null;
  return { type: 'rect', shape, style: { fill: a.value(3) > 0 ? FAILED : a.visual('color'), opacity: 0.75 } };
}

export function timelineView(app: App): View {
  const box = h('div', { class: 'chart timeline' });
  const note = h('p', { class: 'note' });
  let windowMs = 300_000;
  let following = true;
  const follow = h('button', { class: 'on', onclick: () => { following = true; follow.classList.add('on'); dirty(); } }, 'follow');
  const choices = WINDOWS.map(([label, ms]) => h('button', {
    class: ms === windowMs ? 'on' : '',
    onclick: (e: Event) => {
      windowMs = ms;
      following = true;
      follow.classList.add('on');
      for (const b of choices) b.classList.toggle('on', b === e.currentTarget);
      dirty();
    },
  }, label));
  const el = h('section', { id: 'timeline', class: 'panel wide' },
    h('h2', {}, 'Timeline', h('span', { class: 'tools' }, 'last ', ...choices, follow)),
    box, note);
  const chart = echarts.init(box, undefined, { renderer: 'canvas' });
  autoResize(chart, box);
  /** The window the user zoomed to: kept as times, so it stays put while the axis grows. */
  let held: { startValue?: number; endValue?: number } = {};
  /** The x axis' extent at the last redraw, to turn the zoom's percentages into times. */
  let extent: [number, number] = [0, 0];
  chart.on('datazoom', (ev: unknown) => {
    following = false;
    follow.classList.remove('on');
    const e = ev as { start?: number; end?: number; batch?: { start?: number; end?: number }[] };
    const z = e.batch?.[0] ?? e;
    if (typeof z.start !== 'number' || typeof z.end !== 'number') return;
    const [lo, hi] = extent;
    held = { startValue: lo + ((hi - lo) * z.start) / 100, endValue: lo + ((hi - lo) * z.end) / 100 };
  });
  const colors = new Map<string, number>();
  let last: Model | null = null;
  const dirty = () => last && render(last);
  /** Spans behind each drawn series, for the tooltips. */
  let tips: (Span[] | null)[] = [];

  function render(m: Model): void {
    last = m;
    const pids = new Set<number>(Object.values(m.workers).map((w) => w.pid));
    for (const [pid, spans] of Object.entries(m.spans)) if (spans.length) pids.add(Number(pid));
    const lanes = [...pids].sort((a, b) => a - b);
    const laneOf = new Map(lanes.map((p, i) => [p, i]));
    const now = app.now();

    const byTask = new Map<string, { rows: number[][]; spans: Span[] }>();
    const failures: number[][] = [];
    const counts: Record<string, number> = {};
    let first = Infinity;
    let lastEnd = -Infinity;
    for (const [pid, spans] of Object.entries(m.spans)) {
      const lane = laneOf.get(Number(pid))!;
      counts[pid] = spans.length;
      for (const s of spans) {
        if (!colors.has(s[0])) colors.set(s[0], colors.size);
        let t = byTask.get(s[0]);
        if (!t) byTask.set(s[0], (t = { rows: [], spans: [] }));
        const failed = s[3] !== null || s[6] > 0 ? 1 : 0;
        t.rows.push([lane, s[1], s[2], failed]);
        t.spans.push(s);
        if (failed) failures.push([s[2], lane]);
        if (s[1] < first) first = s[1];
        if (s[2] > lastEnd) lastEnd = s[2];
      }
    }
    const alive = Object.values(m.workers).map((w) => {
      const end = w.endedAt ?? (m.offline ? Math.max(w.registeredAt, lastEnd, ...m.log.slice(-1).map((e) => e.at)) : now);
      if (w.registeredAt < first) first = w.registeredAt;
      if (end > lastEnd) lastEnd = end;
      return [laneOf.get(w.pid)!, w.registeredAt, end, 0];
    });
    // Each map's run on the lanes of its workers, as a strip under the spans: the log keeps
    // these, so a stopped cluster shows them too.
    const runs: number[][] = [];
    const runTasks: string[] = [];
    for (const v of Object.values(m.maps)) {
      const end = v.endedAt ?? (m.offline ? v.startedAt : now);
      for (const pid of v.workers) {
        const lane = laneOf.get(pid);
        if (lane === undefined) continue;
        runs.push([lane, v.startedAt, end, v.state === 'failed' ? 1 : 0]);
        runTasks.push(`map ${v.id}: ${shortTask(v.task)}, ${v.done} of ${v.total} (${v.state})`);
      }
      if (v.startedAt < first) first = v.startedAt;
      if (end > lastEnd) lastEnd = end;
    }
    el.dataset.spans = JSON.stringify(counts);
    el.dataset.lanes = String(lanes.length);

    tips = [null];
    const series: Record<string, unknown>[] = [{
      type: 'custom', name: 'worker alive', renderItem: bar(0.9), encode: { x: [1, 2], y: 0 }, data: alive,
      itemStyle: { color: '#edf0f5' }, silent: true, z: 1,
    }];
    series.push({
      type: 'custom', name: 'map runs', renderItem: strip, encode: { x: [1, 2], y: 0 }, data: runs,
      itemStyle: { color: '#9a60b4' }, z: 2,
    });
    tips.push(null);
    const runTips = runTasks;
    for (const [task, t] of byTask) {
      series.push({
        type: 'custom', name: shortTask(task), renderItem: bar(0.6), encode: { x: [1, 2], y: 0 }, data: t.rows,
        itemStyle: { color: taskColor(colors.get(task)!) }, z: 2,
      });
      tips.push(t.spans);
    }
    series.push({ type: 'scatter', name: 'failures', data: failures, symbol: 'triangle', symbolSize: 9, itemStyle: { color: FAILED }, z: 3 });
    tips.push(null);

    const end = m.offline ? lastEnd : now;
    const start = Number.isFinite(windowMs) ? Math.max(first, end - windowMs) : first;
    const zoom = following && Number.isFinite(first) ? { startValue: start, endValue: end } : held;
    const xMin = Number.isFinite(first) ? first : undefined;
    const xMax = Number.isFinite(lastEnd) ? Math.max(lastEnd, end) : undefined;
    if (xMin !== undefined && xMax !== undefined) extent = [xMin, xMax];
    box.style.height = `${Math.max(2, lanes.length) * LANE_PX + 110}px`;
    chart.resize();
    chart.setOption({
      animation: false,
      grid: { left: 90, right: 24, top: 34, bottom: 58 },
      legend: { top: 0, type: 'scroll', data: series.slice(1).map((s) => s.name as string) },
      tooltip: {
        trigger: 'item',
        formatter: (p: unknown) => {
          const { seriesIndex, dataIndex } = p as { seriesIndex: number; dataIndex: number };
          if (seriesIndex === 1) return runTips[dataIndex] ?? '';
          const s = tips[seriesIndex]?.[dataIndex];
          if (!s) return seriesIndex === series.length - 1 ? 'failed' : '';
          const err = s[3] ? `<br><b style="color:${FAILED}">${s[3]}</b>` : s[6] ? `<br><b style="color:${FAILED}">${s[6]} of ${s[5]} items failed</b>` : '';
          return `${shortTask(s[0])}<br>${clock(s[1], true)}, ${duration(s[2] - s[1])}${s[5] > 1 ? `, ${s[5]} items` : ''}${s[4] ? `<br>map ${s[4]}` : ''}${err}`;
        },
      },
      xAxis: { type: 'time', min: xMin, max: xMax, axisLabel: { hideOverlap: true } },
      yAxis: { type: 'category', data: lanes.map((p) => (p === 1 ? 'driver' : `worker ${p}`)), inverse: true, axisTick: { show: false } },
      dataZoom: [
        { type: 'inside', xAxisIndex: 0, filterMode: 'weakFilter', ...zoom },
        { type: 'slider', xAxisIndex: 0, filterMode: 'weakFilter', height: 18, bottom: 8, ...zoom },
      ],
      series,
    }, { replaceMerge: ['series'] });
    const dz = (chart.getOption() as { dataZoom?: { startValue?: number; endValue?: number }[] }).dataZoom?.[0];
    el.dataset.window = `${Math.round(dz?.startValue ?? 0)},${Math.round(dz?.endValue ?? 0)}`;
    el.dataset.renders = String(Number(el.dataset.renders ?? 0) + 1);
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    note.textContent = total
      ? `${total} spans on ${Object.keys(counts).length} lane(s); a pmap batch is one span. Scroll or drag to zoom.`
      : m.offline
        ? 'Task spans are live only (not stored in the log): this stopped cluster shows each worker\'s lifetime and its map runs.'
        : 'No task has run since the dashboard started.';
  }

  return { el, render };
}
