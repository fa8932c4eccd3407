/**
 * The grpc-js half of the comparison needs no .proto compile step: its three raw methods are declared
 * here as a generic service definition whose (de)serializers pass raw Buffers through, so grpc-js
 * carries the same 64-byte and 1 KiB payloads as rpcnet. The protobuf scenario's `Greeter` is
 * declared the same way, but its (de)serializers are protobuf-es's `create` + `toBinary` /
 * `fromBinary` on the generated schemas (__test__/proto/greeter_pb.ts), as in rpcnet's
 * `fromProtobuf`, so that both systems pay the same protobuf cost. Shared by `grpc-server.ts` and
 * `client.ts`.
 * @module
 */
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { deserialize, serialize, ServiceDefinition } from '@grpc/grpc-js';
import { Greeter, HelloReplySchema, HelloRequestSchema } from '../__test__/proto/greeter_pb.ts';
import { GRPC_BIDI_PATH, GRPC_STREAM_PATH, GRPC_UNARY_PATH } from './common.ts';

/** Identity (de)serializer: the payload is already bytes. */
export const raw = (b: Buffer): Buffer => b;

/** `Echo` (unary), `Stream` (server-streaming) and `BidiEcho` (bidi), all Buffer in, Buffer out. */
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
  BidiEcho: {
    path: GRPC_BIDI_PATH,
    requestStream: true,
    responseStream: true,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};

/** grpc-js's pair of (de)serializers for one protobuf-es message: what rpcnet's `protobuf()` codec does. */
interface ProtobufSerde<D extends DescMessage> {
  /** `toBinary(create(schema, value))`, as a Buffer over the same bytes. */
  serialize: serialize<MessageInitShape<D>>;
  /** `fromBinary(schema, bytes)`. */
  deserialize: deserialize<MessageShape<D>>;
}

function protobufSerde<D extends DescMessage>(schema: D): ProtobufSerde<D> {
  return {
    serialize: (value) => {
      const bytes = toBinary(schema, create(schema, value));
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    deserialize: (bytes) => fromBinary(schema, bytes),
  };
}

/** What a `HelloRequest` is made of (`{ name }`): what a client passes and `serialize` takes. */
export type HelloRequestInit = MessageInitShape<typeof HelloRequestSchema>;
/** What a `HelloReply` is made of (`{ message }`): what a handler answers and `serialize` takes. */
export type HelloReplyInit = MessageInitShape<typeof HelloReplySchema>;

/** `HelloRequest`'s (de)serializers. */
export const helloRequest = protobufSerde(HelloRequestSchema);
/** `HelloReply`'s (de)serializers. */
export const helloReply = protobufSerde(HelloReplySchema);

/**
 * grpc-js path of `Greeter.SayHello`, made as `fromProtobuf` makes rpcnet's method name:
 * `/rpcnet.example.v1.Greeter/SayHello`.
 */
export const GRPC_SAY_HELLO_PATH = `/${Greeter.typeName}/${Greeter.method.sayHello.name}`;

/** `Greeter` with its one measured method, `SayHello` (unary, protobuf in and out). */
export const greeterService: ServiceDefinition = {
  SayHello: {
    path: GRPC_SAY_HELLO_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: helloRequest.serialize,
    requestDeserialize: helloRequest.deserialize,
    responseSerialize: helloReply.serialize,
    responseDeserialize: helloReply.deserialize,
  },
};
