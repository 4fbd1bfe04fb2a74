/** A Buffer view of the same bytes, without copying (protobufjs and structured clone hand back Uint8Arrays). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
