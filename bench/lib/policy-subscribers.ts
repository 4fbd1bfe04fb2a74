/**
 * The subscribers of bench/policy-fanout, in their own process: N light
 * Policy.Watch streams over a few gRPC channels (one TLS connection each,
 * each channel presenting its own node SVID, so the control plane
 * authenticates them as it does agents). Each update's revision is read
 * straight from the bytes (field 1, the first one encoded); nothing else is
 * decoded. Driven over IPC:
 *   -> { open: { address, bundlePem, nodes, subscribers, interest(i) as groups } }
 *   <- { opened: n } once every stream has its first set
 *   -> { expect: revision }      <- { revision, arrivalsMs: number[] } once every stream has it
 * Not a benchmark by itself.
 */
import * as grpc from '@grpc/grpc-js';
import { contract } from '../../lib/proto/contract.js';

interface OpenRequest {
  address: string;
  trustDomain: string;
  bundlePem: string;
  nodes: Array<{ chainPem: string; keyPem: string }>;
  subscribers: number;
  /** Subscriber i asks for services ['api', `svc-${i % groups}`] and SPIFFE ID sa/svc-${i % groups}. */
  groups: number;
}

type Request = { open: OpenRequest } | { expect: number } | { stop: true };

if (process.send === undefined) {
  process.stderr.write('forked with IPC by bench/policy-fanout only\n');
  process.exit(2);
}
const send = (message: unknown) => process.send?.(message);
const now = () => performance.timeOrigin + performance.now();

/** Field 1 (revision, varint) of a PolicyUpdate; 0 when absent. */
function revisionOf(bytes: Buffer): number {
  if (bytes[0] !== 0x08) return 0;
  let value = 0;
  let shift = 1;
  for (let i = 1; i < bytes.length && i < 10; i++) {
    const b = bytes[i] as number;
    value += (b & 0x7f) * shift;
    if ((b & 0x80) === 0) break;
    shift *= 128;
  }
  return value;
}

const revisions: number[] = [];
const arrivals: number[] = [];
const clients: grpc.Client[] = [];
const calls: grpc.ClientReadableStream<number>[] = [];
let waiting: { revision: number; resolve: () => void } | undefined;
let pendingCount = 0;

function check(): void {
  if (waiting === undefined || pendingCount > 0) return;
  const w = waiting;
  waiting = undefined;
  w.resolve();
}

function expect(revision: number): Promise<void> {
  pendingCount = revisions.filter((r) => r < revision).length;
  return new Promise((resolve) => {
    waiting = { revision, resolve };
    check();
  });
}

function open(o: OpenRequest): void {
  const watch = contract().Policy.service.Watch as grpc.MethodDefinition<unknown, unknown>;
  const methods = {
    Watch: { ...watch, responseDeserialize: (bytes: Buffer) => revisionOf(bytes) },
  };
  const Ctor = grpc.makeGenericClientConstructor(methods, 'Policy');
  const expected = `URI:spiffe://${o.trustDomain}/mesh/controlplane`;
  for (const node of o.nodes) {
    const credentials = grpc.credentials.createSsl(Buffer.from(o.bundlePem), Buffer.from(node.keyPem), Buffer.from(node.chainPem), {
      checkServerIdentity: (_host, cert) =>
        (cert.subjectaltname ?? '').split(/,\s*/).includes(expected) ? undefined : new Error('not the control plane'),
    });
    clients.push(
      new Ctor(o.address, credentials, {
        'grpc.ssl_target_name_override': 'mesh-controlplane',
        'grpc.use_local_subchannel_pool': 1,
        'grpc.max_receive_message_length': 4 * 1024 * 1024,
      }),
    );
  }
  for (let i = 0; i < o.subscribers; i++) {
    const client = clients[i % clients.length] as grpc.Client & Record<string, (req: unknown) => grpc.ClientReadableStream<number>>;
    const g = i % o.groups;
    revisions.push(0);
    arrivals.push(0);
    const call = (client.Watch as (req: unknown) => grpc.ClientReadableStream<number>)({
      revision: 0,
      services: ['api', `svc-${g}`],
      spiffe_ids: [`spiffe://${o.trustDomain}/ns/default/sa/svc-${g}`],
    });
    call.on('data', (revision: number) => {
      const before = revisions[i] as number;
      revisions[i] = revision;
      arrivals[i] = now();
      if (waiting !== undefined && before < waiting.revision && revision >= waiting.revision) {
        pendingCount -= 1;
        check();
      }
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (err.code !== grpc.status.CANCELLED) process.stderr.write(`subscriber ${i}: ${err.code} ${err.details}\n`);
    });
    calls.push(call);
  }
}

process.on('message', (request: Request) => {
  if ('open' in request) {
    open(request.open);
    void expect(1).then(() => send({ opened: calls.length }));
  } else if ('expect' in request) {
    void expect(request.expect).then(() => send({ revision: request.expect, arrivalsMs: arrivals }));
  } else if ('stop' in request) {
    for (const call of calls) call.cancel();
    for (const client of clients) client.close();
    setTimeout(() => process.exit(0), 200);
  }
});
send({ ready: true });
