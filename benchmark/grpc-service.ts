/**
 * The grpc-js half of the comparison needs no .proto compile step: its two methods are declared
 * here as a generic service definition whose (de)serializers pass raw Buffers through, so grpc-js
 * carries the same 64-byte and 1 KiB payloads as rpcnet. Shared by `grpc-server.ts` and `client.ts`.
 * @module
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { GRPC_STREAM_PATH, GRPC_UNARY_PATH } from './common.ts';

/** Identity (de)serializer: the payload is already bytes. */
export const raw = (b: Buffer): Buffer => b;

/** `Echo` (unary) and `Stream` (server-streaming), both Buffer in, Buffer out. */
export const benchService: ServiceDefinition = {
  Echo: {
    path: GRPC_UNARY_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
  Stream: {
    path: GRPC_STREAM_PATH,
    requestStream: false,
    responseStream: true,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};
