/**
 * A stand-in OTLP/gRPC trace receiver for tests: it answers
 * opentelemetry.proto.collector.trace.v1.TraceService/Export on loopback and
 * keeps each request's raw bytes (the OTLP protos are not shipped with our
 * dependencies, so the tests look for byte strings in them: a trace id, a
 * service name). Not an OpenTelemetry Collector: it proves what Envoy sends.
 */
import * as grpc from '@grpc/grpc-js';

const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

export interface OtlpSink {
  /** host:port, as agent config `tracing.address` takes it. */
  readonly address: string;
  /** The raw ExportTraceServiceRequest messages received so far. */
  readonly requests: Buffer[];
  stop(): Promise<void>;
}

const raw = (b: Buffer) => b;

export async function startOtlpSink(): Promise<OtlpSink> {
  const requests: Buffer[] = [];
  const server = new grpc.Server();
  const definition: grpc.ServiceDefinition = {
    Export: {
      path: EXPORT_PATH,
      requestStream: false,
      responseStream: false,
      requestSerialize: raw,
      requestDeserialize: raw,
      responseSerialize: raw,
      responseDeserialize: raw,
    },
  };
  server.addService(definition, {
    Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      requests.push(call.request);
      // An empty ExportTraceServiceResponse: everything accepted.
      callback(null, Buffer.alloc(0));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    address: `127.0.0.1:${port}`,
    requests,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}
