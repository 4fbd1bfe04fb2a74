/**
 * The input of the agent's status document (buildStatus) for node vm1 with
 * nothing going on: connected to Consul in agent mode, no workloads, an empty
 * catalog view. Tests of the status document, its rendering and its server
 * override the parts they look at.
 */
import { makeView } from '../../agent/discovery/catalog-view.js';
import type { StatusInput } from '../../agent/status/status.js';

export function statusInput(overrides: Partial<StatusInput> = {}): StatusInput {
  return {
    node: 'vm1',
    consulMode: 'agent',
    consulAddress: 'c:1',
    connection: 'connected',
    workloads: [],
    fileErrors: [],
    registrations: [],
    view: makeView(1, []),
    watches: [],
    ...overrides,
  };
}
