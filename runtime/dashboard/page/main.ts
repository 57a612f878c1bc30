/**
 * The dashboard page: opens the server's event stream (a snapshot of the model, then deltas),
 * folds the deltas with the same code as the server, and redraws the views a few times a second.
 */
import './style.css';
import { applyDelta, emptyModel } from '../dashboard-model.ts';
import type { Delta, Model } from '../dashboard-model.ts';
import { actorPanel } from './actor-panel.ts';
import { h } from './dom.ts';
import { jobsView } from './jobs-view.ts';
import { logView } from './log-view.ts';
import { mapsView } from './maps-view.ts';
import { poolsView } from './pools-view.ts';
import { timelineView } from './timeline-view.ts';
import type { App, View } from './view.ts';
import { workersView } from './workers-view.ts';

/** Events the page keeps for its tail. */
const LOG_MAX = 2000;
const RENDER_MS = 250;

const token = new URLSearchParams(location.search).get('token');
let model: Model = emptyModel('');
let skew = 0;
let live = false;

const app: App = {
  api(path, params = {}) {
    const u = new URL(path, location.href);
    u.search = '';
    for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
    if (token) u.searchParams.set('token', token);
    return u.href;
  },
  openActor: (actor) => void panel.open(actor),
  now: () => Date.now() + skew,
  offline: () => model.offline,
};

const panel = actorPanel(app);
const views: View[] = [workersView(app), mapsView(app), timelineView(app), poolsView(app), jobsView(app), logView(app)];
const title = h('span', { class: 'name' });
const state = h('span', { class: 'badge' });
const conn = h('span', { class: 'conn' });
document.body.append(
  h('header', {},
    h('strong', {}, 'Colony'), title, state, conn,
    h('nav', {}, ...['workers', 'timeline', 'maps', 'pools', 'jobs', 'log'].map((id) => h('a', { href: `#${id}` }, id === 'log' ? 'events' : id)))),
  h('main', {}, ...views.map((v) => v.el)),
  panel.el,
);

let timer: number | null = null;
function render(): void {
  timer = null;
  title.textContent = `cluster ${model.name}`;
  state.textContent = model.offline ? 'stopped: stored log' : live ? 'live' : 'connecting';
  state.className = `badge ${model.offline ? 's-exited' : 's-ready'}`;
  for (const v of views) {
    try {
      v.render(model);
    } catch (e) {
      console.error(`dashboard: the ${v.el.id} view failed:`, e);
    }
  }
  document.body.dataset.ready = 'true';
}
function dirty(): void {
  timer ??= window.setTimeout(render, RENDER_MS);
}
// Clocks in the tables move on without new data.
window.setInterval(dirty, 1000);

const stream = new EventSource(app.api('/api/stream'));
stream.addEventListener('snapshot', (ev) => {
  const s = JSON.parse((ev as MessageEvent<string>).data) as { now: number; live: boolean; model: Model };
  model = s.model;
  skew = s.now - Date.now();
  live = s.live;
  conn.textContent = '';
  if (!live) stream.close();
  if (timer !== null) window.clearTimeout(timer);
  render();
});
stream.onmessage = (ev) => {
  const d = JSON.parse(ev.data as string) as Delta;
  skew = d.now - Date.now();
  applyDelta(model, d, LOG_MAX, app.now());
  if (d.dropped) conn.textContent = `(${d.dropped} ref events left out of the tail)`;
  dirty();
};
stream.onerror = () => {
  if (live) conn.textContent = 'reconnecting…';
};
