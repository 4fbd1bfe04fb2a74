/** `kubernetes.sync` of controlplane.yaml: the catalog sync both ways (filled in by the sync's branch). */
import { z } from 'zod';

export const kubeSyncSchema = z.strictObject({});

export type KubeSyncConfig = z.output<typeof kubeSyncSchema>;
