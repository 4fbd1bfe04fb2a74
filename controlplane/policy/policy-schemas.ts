/**
 * The control plane's one set of policy schemas, kept for the life of the
 * process: it parses every apply and every stored row it reads. Agents build
 * theirs per parse instead (lib/policy/schema.ts).
 */
import { policySchemas } from '../../lib/policy/schema.js';

export const POLICY_SCHEMAS = policySchemas();
