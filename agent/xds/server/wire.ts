/**
 * The ADS wire messages (envoy.service.discovery.v3), encoded and decoded with
 * the Envoy protos from lib/envoy/protos.ts. Resources arrive here already
 * encoded (see cache/served-snapshot.ts), so a push costs one framing encode.
 */
import type protobuf from 'protobufjs';
import { asBuffer } from '../../../lib/bytes.js';
import { messageType } from '../../../lib/envoy/protos.js';
import type { EncodedAny } from '../cache/served-snapshot.js';

export interface PeerNode {
  readonly id: string;
  readonly cluster: string;
}

export interface ErrorDetail {
  readonly code: number;
  readonly message: string;
}

export interface SotwRequest {
  readonly versionInfo: string;
  readonly node: PeerNode | undefined;
  readonly resourceNames: readonly string[];
  readonly typeUrl: string;
  readonly responseNonce: string;
  readonly errorDetail: ErrorDetail | undefined;
}

export interface SotwResponse {
  readonly versionInfo: string;
  readonly resources: readonly EncodedAny[];
  readonly typeUrl: string;
  readonly nonce: string;
}

export interface DeltaRequest {
  readonly node: PeerNode | undefined;
  readonly typeUrl: string;
  readonly subscribe: readonly string[];
  readonly unsubscribe: readonly string[];
  readonly initialVersions: Readonly<Record<string, string>>;
  readonly responseNonce: string;
  readonly errorDetail: ErrorDetail | undefined;
}

export interface DeltaResource {
  readonly name: string;
  readonly version: string;
  readonly resource: EncodedAny;
}

export interface DeltaResponse {
  readonly systemVersionInfo: string;
  readonly resources: readonly DeltaResource[];
  readonly typeUrl: string;
  readonly removed: readonly string[];
  readonly nonce: string;
}

const PKG = 'envoy.service.discovery.v3';
let types: Record<'req' | 'res' | 'dreq' | 'dres', protobuf.Type> | undefined;

function wireTypes(): Record<'req' | 'res' | 'dreq' | 'dres', protobuf.Type> {
  types ??= {
    req: messageType(`${PKG}.DiscoveryRequest`),
    res: messageType(`${PKG}.DiscoveryResponse`),
    dreq: messageType(`${PKG}.DeltaDiscoveryRequest`),
    dres: messageType(`${PKG}.DeltaDiscoveryResponse`),
  };
  return types;
}

type Raw = Record<string, unknown>;

function peerNode(raw: unknown): PeerNode | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const node = raw as Raw;
  return { id: String(node.id ?? ''), cluster: String(node.cluster ?? '') };
}

function errorDetail(raw: unknown): ErrorDetail | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const status = raw as Raw;
  return { code: Number(status.code ?? 0), message: String(status.message ?? '') };
}

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.map(String) : []);

export function decodeSotwRequest(bytes: Uint8Array): SotwRequest {
  const m = wireTypes().req.decode(bytes) as unknown as Raw;
  return {
    versionInfo: String(m.version_info ?? ''),
    node: peerNode(m.node),
    resourceNames: strings(m.resource_names),
    typeUrl: String(m.type_url ?? ''),
    responseNonce: String(m.response_nonce ?? ''),
    errorDetail: errorDetail(m.error_detail),
  };
}

export function decodeDeltaRequest(bytes: Uint8Array): DeltaRequest {
  const m = wireTypes().dreq.decode(bytes) as unknown as Raw;
  const initial = (m.initial_resource_versions ?? {}) as Record<string, unknown>;
  return {
    node: peerNode(m.node),
    typeUrl: String(m.type_url ?? ''),
    subscribe: strings(m.resource_names_subscribe),
    unsubscribe: strings(m.resource_names_unsubscribe),
    initialVersions: Object.fromEntries(Object.entries(initial).map(([k, v]) => [k, String(v)])),
    responseNonce: String(m.response_nonce ?? ''),
    errorDetail: errorDetail(m.error_detail),
  };
}

export function encodeSotwResponse(r: SotwResponse): Buffer {
  const bytes = wireTypes()
    .res.encode({ version_info: r.versionInfo, resources: r.resources, type_url: r.typeUrl, nonce: r.nonce })
    .finish();
  return asBuffer(bytes);
}

export function encodeDeltaResponse(r: DeltaResponse): Buffer {
  const bytes = wireTypes()
    .dres.encode({
      system_version_info: r.systemVersionInfo,
      resources: r.resources.map((x) => ({ name: x.name, version: x.version, resource: x.resource })),
      type_url: r.typeUrl,
      removed_resources: r.removed,
      nonce: r.nonce,
    })
    .finish();
  return asBuffer(bytes);
}

export function decodeSotwResponse(bytes: Uint8Array): SotwResponse {
  const m = wireTypes().res.decode(bytes) as unknown as Raw;
  return {
    versionInfo: String(m.version_info ?? ''),
    resources: (m.resources as EncodedAny[] | undefined) ?? [],
    typeUrl: String(m.type_url ?? ''),
    nonce: String(m.nonce ?? ''),
  };
}

export function decodeDeltaResponse(bytes: Uint8Array): DeltaResponse {
  const m = wireTypes().dres.decode(bytes) as unknown as Raw;
  return {
    systemVersionInfo: String(m.system_version_info ?? ''),
    resources: ((m.resources as Raw[] | undefined) ?? []).map((x) => ({
      name: String(x.name ?? ''),
      version: String(x.version ?? ''),
      resource: x.resource as EncodedAny,
    })),
    typeUrl: String(m.type_url ?? ''),
    removed: strings(m.removed_resources),
    nonce: String(m.nonce ?? ''),
  };
}
