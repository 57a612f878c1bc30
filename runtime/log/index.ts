/** The log layer: the journal (appends, the event stream, the state bucket), actor hosting, reading and replay. */
export { Journal } from './journal.ts';
export type { RetentionOptions, StoredSnapshot } from './journal.ts';
export { ActorHost } from './actor-host.ts';
export type { ActorHostOptions, HostedActor } from './actor-host.ts';
export { decodeEnvelope } from './event-decode.ts';
export { formatEvent, toJsonLine } from './event-format.ts';
export { EventLog } from './event-log.ts';
export type { HistoryOptions } from './event-log.ts';
export { byActor, readJsonl, replayActor, replayAll } from './replay.ts';
export type { ReplayResult } from './replay.ts';
export { openRefs } from './resume-report.ts';
export type { RefSummary, ResumeReport } from './resume-report.ts';
