/**
 * `meshctl ca export-intermediate --for istio --out DIR`: Istio's plug-in CA
 * files for a new intermediate CA under the mesh's root. The key is made here
 * and written only to DIR (mode 0600); the control plane receives a CSR and
 * returns the signed intermediate, the chain and the bundle roots.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { EXIT_OK } from '../../lib/cli.js';
import { parseDuration } from '../../lib/duration.js';
import { MeshError } from '../../lib/errors.js';
import { newKeyPair, writeFileAtomic } from '../../lib/secret-files.js';
import { createCsr } from '../../lib/x509/csr-builder.js';
import { iso } from './cli-format.js';
import type { Spec } from './commands.js';

/** Istio's names for the files of its `cacerts` secret. */
export const ISTIO_FILES = {
  caCert: 'ca-cert.pem',
  caKey: 'ca-key.pem',
  rootCert: 'root-cert.pem',
  certChain: 'cert-chain.pem',
} as const;

const DAY_MS = 24 * 3600_000;
const DEFAULT_TTL = '365d';

/** A duration as elsewhere in meshctl ("720h"), or whole days ("365d"). */
export function parseExportTtl(text: string): number | undefined {
  const days = /^(\d+)d$/.exec(text);
  const ms = days === null ? parseDuration(text) : Number(days[1]) * DAY_MS;
  return ms !== undefined && ms > 0 ? ms : undefined;
}

/** The files of DIR that would be replaced. */
export function existingOutputs(dir: string): string[] {
  return Object.values(ISTIO_FILES)
    .map((name) => path.join(dir, name))
    .filter((file) => existsSync(file));
}

interface CaExportWire {
  id: number;
  kind: string;
  root_generation: number;
  serial: string;
  subject: string;
  not_before_ms: number;
  not_after_ms: number;
  created_at_ms: number;
}

interface ExportResponse {
  intermediate: CaExportWire;
  cert_pem: string;
  chain_pem: string;
  roots_pem: string;
}

export function exportIntermediateSpec(): Spec {
  return {
    name: 'ca export-intermediate',
    summary: "write Istio's plug-in CA files (cacerts) for a new intermediate CA under the mesh's root",
    usage: `--for istio --out DIR [--ttl ${DEFAULT_TTL}] [--force] [--json]
  --for istio      the CA that will sign with it (only istio)
  --out DIR        where to write ca-cert.pem, ca-key.pem (mode 0600), root-cert.pem and cert-chain.pem; created if missing
  --ttl DURATION   the intermediate's lifetime, e.g. 365d or 720h (default ${DEFAULT_TTL}); never past the root's notAfter
  --force          replace those files if DIR already has them
  --json           print {"kind","out","files","generationId","rootGeneration","serial","notBefore","notAfter"}
`,
    options: {
      for: { type: 'string' },
      out: { type: 'string' },
      ttl: { type: 'string' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    async run(client, values, _p, io) {
      if (values.for !== 'istio') {
        throw new MeshError(
          'MESH_E_USAGE',
          values.for === undefined
            ? 'ca export-intermediate: --for istio is required'
            : `--for ${String(values.for)}: only istio is supported`,
          { details: { flag: 'for' } },
        );
      }
      if (typeof values.out !== 'string' || values.out === '')
        throw new MeshError('MESH_E_USAGE', 'ca export-intermediate: --out DIR is required', { details: { flag: 'out' } });
      const ttlText = typeof values.ttl === 'string' ? values.ttl : DEFAULT_TTL;
      const ttlMs = parseExportTtl(ttlText);
      if (ttlMs === undefined)
        throw new MeshError('MESH_E_USAGE', `--ttl ${ttlText} is not a positive duration such as 365d or 720h`, {
          details: { flag: 'ttl' },
        });
      const out = path.resolve(values.out);
      const existing = existingOutputs(out);
      if (existing.length > 0 && values.force !== true) {
        const names = existing.map((f) => path.basename(f)).join(', ');
        throw new MeshError('MESH_E_OUTPUT_EXISTS', `${out} already has ${names}; nothing was exported (--force replaces them)`, {
          details: { files: existing },
        });
      }
      // Made before the export is recorded, so a DIR that cannot be made fails first.
      await mkdir(out, { recursive: true, mode: 0o700 });
      // The key never leaves this process except into DIR: the control plane signs a CSR.
      const key = newKeyPair();
      const csr = await createCsr(key.privateKey, key.publicKey, 'istio intermediate CA');
      const r = await client.call<ExportResponse>('ExportIntermediate', { kind: values.for, csr, ttl_ms: ttlMs });
      const files = Object.fromEntries(Object.entries(ISTIO_FILES).map(([k, name]) => [k, path.join(out, name)])) as Record<
        keyof typeof ISTIO_FILES,
        string
      >;
      await writeFileAtomic(files.caKey, key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
      await writeFileAtomic(files.caCert, r.cert_pem);
      await writeFileAtomic(files.rootCert, r.roots_pem);
      await writeFileAtomic(files.certChain, r.chain_pem);
      const x = r.intermediate;
      const result = {
        kind: x.kind,
        out,
        files,
        generationId: x.id,
        rootGeneration: x.root_generation,
        serial: x.serial,
        notBefore: iso(x.not_before_ms),
        notAfter: iso(x.not_after_ms),
      };
      if (values.json) io.stdout.write(`${JSON.stringify(result)}\n`);
      else
        io.stdout.write(
          `exported-intermediate (${x.kind}) ${x.id} under generation ${x.root_generation}: serial ${x.serial}, expires ${result.notAfter}\n` +
            `wrote ${Object.values(files).join(', ')}\n` +
            `next: kubectl create secret generic cacerts -n istio-system --from-file=${files.caCert} --from-file=${files.caKey} --from-file=${files.rootCert} --from-file=${files.certChain}\n`,
        );
      return EXIT_OK;
    },
  };
}
