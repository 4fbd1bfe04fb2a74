/**
 * `kubernetes.sync` of controlplane.yaml: the catalog sync both ways
 * (docs/operations/kubernetes-sync.md). Present, it runs inside
 * `mesh-controlplane run`; absent, the control plane syncs nothing.
 */
import * as z from 'zod';
import { durationMs } from '../../lib/duration.js';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'must be HOST:PORT');
const dnsLabel = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a DNS label (lower-case letters, digits, "-")');

export const kubeSyncSchema = z.strictObject({
  /** The Consul HTTP API the sync registers in and reads the VM services from (a server's or any agent's). */
  consul: z
    .strictObject({
      address: hostPort.default('127.0.0.1:8500'),
      token: z.string().default(''),
      datacenter: z.string().default(''),
    })
    .prefault({}),
  /** Kubernetes -> Consul. */
  toConsul: z
    .strictObject({
      enabled: z.boolean().default(true),
      /**
       * Every Service of these namespaces is synced ("*": every namespace),
       * unless annotated `vm-mesh.io/sync: "false"`; a Service of any other
       * namespace is synced when annotated `vm-mesh.io/sync: "true"`.
       */
      namespaces: z.array(z.union([dnsLabel, z.literal('*')])).default([]),
      /** The synthetic Consul node the services are registered on; default `k8s-<kubernetes.cluster>`. */
      nodeName: z.string().min(1).optional(),
      /** The synthetic node's address (data only: instances carry their pod IPs). */
      nodeAddress: z.string().min(1).default('127.0.0.1'),
      /** The EndpointSlice/Service port name of the pods' mesh (Envoy inbound) port, unless the Service is annotated `vm-mesh.io/mesh-port`. */
      meshPortName: z.string().min(1).default('mesh'),
    })
    .prefault({}),
  /** Consul -> Kubernetes: absent, VM services are not written to Kubernetes. */
  fromConsul: z
    .strictObject({
      /** The namespace the selector-less Services and EndpointSlices of the VM services go to (it must exist). */
      namespace: dnsLabel,
    })
    .optional(),
  /** Full reconcile period: re-reads Consul and Kubernetes to repair drift (e.g. a restarted Consul that lost its state). */
  resync: durationMs().default(10_000),
});

export type KubeSyncConfig = z.output<typeof kubeSyncSchema>;
