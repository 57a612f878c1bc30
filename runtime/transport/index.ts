/** The transport layer: NATS connections, the embedded server, the codec, framing and large values. */
export { NatsUnreachableError, connectNats, tlsOptions } from './connection.ts';
export type { NatsEndpoint } from './connection.ts';
export { NatsServer, NatsServerMissingError, findNatsServer, randomSecret } from './nats-server.ts';
export type { NatsServerOptions } from './nats-server.ts';
export { decode, encode, registerRefClass } from './codec.ts';
export type { RefBinder } from './codec.ts';
export { decodeFrame, encodeFrame, encodeParts } from './frame.ts';
export { BlobStore, takeBlob } from './blob.ts';
export { Requester } from './requester.ts';
export { checkClusterName, subjects } from './subjects.ts';
export type { Subjects } from './subjects.ts';
export * from './errors.ts';
export { clusterDir, readCredentials, readState, removeState, writeCredentials, writeState } from './cluster-files.ts';
