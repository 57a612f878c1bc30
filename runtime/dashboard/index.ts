/**
 * The dashboard: a web page on the cluster's log, heartbeats and task spans (workers, a task
 * timeline per worker, maps, pools, jobs and the live event tail). Loaded lazily by
 * `colony dashboard` and `Cluster.start({ dashboard: true })`.
 */
export { DEFAULT_HOST, DEFAULT_PORT, startDashboard, toJson } from './dashboard-server.ts';
export type { Dashboard, DashboardOptions, Snapshot } from './dashboard-server.ts';
export { DashboardFeed } from './dashboard-feed.ts';
export type { FeedSource } from './dashboard-feed.ts';
export { isLoopback } from './dashboard-access.ts';
export { buildPage, ensurePage } from './page-bundle.ts';
export type { Delta, Model } from './dashboard-model.ts';
