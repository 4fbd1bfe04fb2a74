/**
 * Checking a CSR and signing its leaf: the CPU-heavy half of an issuance
 * (key import, signature check, ECDSA signature; about 0.2 ms). The pool
 * runs it on worker threads so the event loop, which owns gRPC, TLS and
 * SQLite, is free for the other half. With zero workers it runs inline.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { asBuffer } from '../../lib/bytes.js';
import { MeshError, toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { parseCsr } from '../../lib/x509/csr.js';
import { type IssuedLeaf, issueLeaf, type SigningKey } from './authority.js';

export interface CsrSignRequest {
  /** DER PKCS#10 request; only its public key is used, after its self-signature verifies. */
  csr: Uint8Array;
  spiffeId: string;
  ttlMs: number;
  now: number;
}

export interface LeafSigner {
  sign(key: SigningKey, request: CsrSignRequest): Promise<IssuedLeaf>;
  close(): Promise<void>;
  /** Worker threads signing (0: inline). */
  readonly workers: number;
  /** The live worker threads (tests and diagnostics). */
  threads(): Worker[];
}

/** Size limit, CSR check, leaf: the same on every thread. */
export function signCsr(key: SigningKey, request: CsrSignRequest, maxCsrBytes: number): IssuedLeaf {
  if (request.csr.length > maxCsrBytes) {
    throw new MeshError('MESH_E_REQUEST_TOO_LARGE', `the CSR has ${request.csr.length} bytes; at most ${maxCsrBytes} are accepted`);
  }
  const csr = parseCsr(request.csr);
  return issueLeaf(key, { spiffeId: request.spiffeId, spki: csr.spki, ttlMs: request.ttlMs, now: request.now });
}

export function inlineSigner(maxCsrBytes: number): LeafSigner {
  return {
    workers: 0,
    async sign(key, request) {
      return signCsr(key, request, maxCsrBytes);
    },
    async close() {},
    threads: () => [],
  };
}

/**
 * The default pool size: one worker per core, at most 4. A worker signs about
 * 5,000 leaves/s; past 4 the event loop (gRPC, TLS, SQLite) is the limit.
 */
export function defaultSigningWorkers(cores = availableParallelism()): number {
  return Math.max(1, Math.min(4, cores));
}

// --- wire format between the pool and its workers -------------------------

/** SigningKey after a structured clone: Buffers arrive as Uint8Arrays. */
export type SigningKeyMessage = { [K in keyof SigningKey]: SigningKey[K] extends Buffer ? Uint8Array : SigningKey[K] };

export interface SignMessage extends CsrSignRequest {
  id: number;
  keyId: number;
  /** Sent the first time a worker needs this key. */
  key?: SigningKeyMessage;
}

export type SignReply =
  | { id: number; ok: true; der: Uint8Array; serial: string; notBefore: number; notAfter: number }
  | { id: number; ok: false; code: string; message: string; details: Record<string, unknown> };

/** The reply to one request; `der` is a copy of exactly the certificate's bytes (Buffers share 8 KiB pool slabs). */
export function replyFor(id: number, run: () => IssuedLeaf): SignReply {
  try {
    const leaf = run();
    return { id, ok: true, der: new Uint8Array(leaf.der), serial: leaf.serial, notBefore: leaf.notBefore, notAfter: leaf.notAfter };
  } catch (err) {
    const e = toMeshError(err);
    return { id, ok: false, code: e.code, message: e.message, details: { ...e.details } };
  }
}

/** Only the SigningKey's own fields: a Generation also holds X509Certificates, which cannot be posted. */
function keyMessage(key: SigningKey): SigningKeyMessage {
  return {
    id: key.id,
    signerKey: key.signerKey,
    signerSubject: key.signerSubject,
    signerKeyId: key.signerKeyId,
    signatureAlgorithm: key.signatureAlgorithm,
    signerNotAfter: key.signerNotAfter,
  };
}

export function keyFromMessage(m: SigningKeyMessage): SigningKey {
  return {
    id: m.id,
    signerKey: m.signerKey,
    signerSubject: asBuffer(m.signerSubject),
    signerKeyId: asBuffer(m.signerKeyId),
    signatureAlgorithm: asBuffer(m.signatureAlgorithm),
    signerNotAfter: m.signerNotAfter,
  };
}

// --- the pool ---------------------------------------------------------------

interface Slot {
  worker: Worker;
  keys: Set<number>;
  outstanding: Map<number, { resolve: (leaf: IssuedLeaf) => void; reject: (err: unknown) => void }>;
  /** Requests of this event-loop turn, posted together: one postMessage costs as much as signing. */
  queue: SignMessage[];
}

/** Requests per message: enough to amortize postMessage, few enough that answers come back steadily. */
const SIGN_BATCH = 16;

/** The worker's module next to this one: .js when built, .ts when run from source (tests). */
function workerUrl(): URL {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./signing-worker${ext}`, import.meta.url);
}

export function workerSigner(options: { workers: number; maxCsrBytes: number; logger: Logger }): LeafSigner {
  const { workers, maxCsrBytes, logger } = options;
  const slots: Array<Slot | undefined> = new Array(workers).fill(undefined);
  let nextId = 1;
  let closing = false;

  const spawn = (index: number): Slot => {
    const worker = new Worker(workerUrl(), { workerData: { maxCsrBytes }, name: `mesh-signer-${index}` });
    worker.unref();
    const slot: Slot = { worker, keys: new Set(), outstanding: new Map(), queue: [] };
    worker.on('message', (replies: SignReply[]) => {
      for (const reply of replies) {
        const waiter = slot.outstanding.get(reply.id);
        if (waiter === undefined) continue;
        slot.outstanding.delete(reply.id);
        if (reply.ok) {
          waiter.resolve({ der: asBuffer(reply.der), serial: reply.serial, notBefore: reply.notBefore, notAfter: reply.notAfter });
        } else {
          waiter.reject(new MeshError(reply.code as MeshError['code'], reply.message, { details: reply.details }));
        }
      }
    });
    const lost = (why: string) => {
      if (slots[index] === slot) slots[index] = undefined;
      if (!closing) logger.error('a signing worker stopped; starting another', { worker: index, why });
      const err = new MeshError('MESH_E_INTERNAL', `the signing worker stopped (${why}); retry the request`);
      for (const waiter of slot.outstanding.values()) waiter.reject(err);
      slot.outstanding.clear();
    };
    worker.on('error', (err) => lost(err.message));
    worker.on('exit', (code) => lost(`exit code ${code}`));
    slots[index] = slot;
    return slot;
  };

  const post = (slot: Slot) => {
    while (slot.queue.length > 0) {
      const batch = slot.queue.splice(0, SIGN_BATCH);
      try {
        // No transfer list: for buffers this small, detaching costs more than the copy.
        slot.worker.postMessage(batch);
      } catch (err) {
        // Never leave a request waiting for an answer that cannot come.
        const e = new MeshError('MESH_E_INTERNAL', `the request could not be handed to a signing worker: ${toMeshError(err).message}`);
        for (const message of batch) {
          slot.outstanding.get(message.id)?.reject(e);
          slot.outstanding.delete(message.id);
        }
      }
    }
  };

  /** The worker with the fewest requests in flight (started on first use, restarted after a crash). */
  const pick = (): Slot => {
    let best: Slot | undefined;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i] ?? spawn(i);
      if (best === undefined || slot.outstanding.size < best.outstanding.size) best = slot;
    }
    return best as Slot;
  };

  return {
    workers,
    sign(key, request) {
      if (closing) return Promise.reject(new MeshError('MESH_E_INTERNAL', 'the control plane is stopping'));
      const slot = pick();
      const id = nextId++;
      // Structured clone copies a view's whole ArrayBuffer, and the CSR decoded from gRPC is a slice
      // of a large receive buffer: post a copy of just its bytes.
      const csr = new Uint8Array(request.csr);
      const message: SignMessage = {
        id,
        keyId: key.id,
        csr,
        spiffeId: request.spiffeId,
        ttlMs: request.ttlMs,
        now: request.now,
      };
      if (!slot.keys.has(key.id)) {
        message.key = keyMessage(key);
        slot.keys.add(key.id);
      }
      return new Promise<IssuedLeaf>((resolve, reject) => {
        slot.outstanding.set(id, { resolve, reject });
        if (slot.queue.push(message) === 1) setImmediate(() => post(slot));
      });
    },
    threads: () => slots.flatMap((slot) => (slot === undefined ? [] : [slot.worker])),
    async close() {
      closing = true;
      await Promise.all(slots.map((slot) => slot?.worker.terminate()));
    },
  };
}

/** The signer a control plane uses: `workers` threads, or inline when 0. */
export function createLeafSigner(options: { workers: number; maxCsrBytes: number; logger: Logger }): LeafSigner {
  return options.workers > 0 ? workerSigner(options) : inlineSigner(options.maxCsrBytes);
}
