/** A signing worker thread: checks CSRs and signs leaves for the pool in leaf-signer.ts. */
import { parentPort, workerData } from 'node:worker_threads';
import type { SigningKey } from './authority.js';
import { keyFromMessage, replyFor, type SignMessage, signCsr } from './leaf-signer.js';

const { maxCsrBytes } = workerData as { maxCsrBytes: number };
const keys = new Map<number, SigningKey>();

parentPort?.on('message', (batch: SignMessage[]) => {
  const replies = batch.map((message) => {
    if (message.key !== undefined) keys.set(message.keyId, keyFromMessage(message.key));
    return replyFor(message.id, () => {
      const key = keys.get(message.keyId);
      if (key === undefined) throw new Error(`signing key ${message.keyId} was never sent to this worker`);
      return signCsr(key, message, maxCsrBytes);
    });
  });
  parentPort?.postMessage(replies);
});
