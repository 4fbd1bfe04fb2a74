/**
 * Mutation fuzzing of the CSR reader on the signing hot path (parseCsr), from
 * a fixed seed and a fixed corpus and keys (csr-fuzz-seeds.ts): 21,000 mutated and
 * truncated requests. Nothing may crash or
 * hang; every refusal is a MeshError with MESH_E_CSR_INVALID or
 * MESH_E_KEY_UNSUPPORTED; and every request parseCsr accepts must also be
 * accepted by an independent parser, @peculiar/x509's Pkcs10CertificateRequest,
 * signature included, with the same public key.
 *
 * Most byte mutations break the self-signature, which would stop every input
 * at the last check. So half of the cases mutate only the signed part
 * (CertificationRequestInfo) and sign the result again with the seed's key:
 * those reach the acceptance path with odd subjects, attributes and keys.
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign } from 'node:crypto';
import t from 'tap';
import { isMeshError } from '../../../lib/errors.js';
import { parseCsr } from '../../../lib/x509/csr.js';
import { bits, children, oid, read, seq } from '../../../lib/x509/der.js';
import { OID } from '../../../lib/x509/oids.js';
import { x509 } from '../../../lib/x509/peculiar.js';
import { mulberry32 } from '../../support/prng.js';
import { ED25519_SEED, OTHER_SPKIS, P256_PRIVATE_SCALAR, SEED_CSRS } from './csr-fuzz-seeds.js';

const SEED = 0x5eed_c5a1;
const RAW_CASES = 8_000;
const RESIGNED_CASES = 10_000;
const TRUNCATED_CASES = 2_000;
const KEY_SWAP_CASES = 1_000;

interface Seed {
  name: string;
  der: Buffer;
  privateKey: KeyObject;
}

/** The fixed seed corpus (csr-fuzz-seeds.ts) with the keys that re-sign its mutants. */
function seeds(): Seed[] {
  const p256 = createPrivateKey({
    key: Buffer.from(`30310201010420${P256_PRIVATE_SCALAR}a00a06082a8648ce3d030107`, 'hex'),
    format: 'der',
    type: 'sec1',
  });
  const ed25519 = createPrivateKey({
    key: Buffer.from(`302e020100300506032b657004220420${ED25519_SEED}`, 'hex'),
    format: 'der',
    type: 'pkcs8',
  });
  return SEED_CSRS.map(([name, der]) => ({ name, der: Buffer.from(der, 'hex'), privateKey: name.startsWith('p256') ? p256 : ed25519 }));
}

const INTERESTING = [
  0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x1f, 0x30, 0x31, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xa0, 0xff,
];

/** One random byte-level mutation: flip, set, insert, delete, duplicate or truncate. */
function mutate(input: Buffer, rand: () => number): Buffer {
  const pick = (n: number) => Math.floor(rand() * n);
  const at = pick(input.length);
  switch (pick(6)) {
    case 0: {
      const out = Buffer.from(input);
      out[at] = (out[at] as number) ^ (1 << pick(8));
      return out;
    }
    case 1: {
      const out = Buffer.from(input);
      out[at] = rand() < 0.5 ? (INTERESTING[pick(INTERESTING.length)] as number) : pick(256);
      return out;
    }
    case 2:
      return Buffer.concat([input.subarray(0, at), Buffer.from(Array.from({ length: 1 + pick(4) }, () => pick(256))), input.subarray(at)]);
    case 3:
      return Buffer.concat([input.subarray(0, at), input.subarray(Math.min(input.length, at + 1 + pick(8)))]);
    case 4: {
      const end = Math.min(input.length, at + 1 + pick(16));
      return Buffer.concat([input.subarray(0, end), input.subarray(at, end), input.subarray(end)]);
    }
    default:
      return input.subarray(0, at);
  }
}

/** The compressed-point SubjectPublicKeyInfo of a P-256 key. */
function compressedSpki(key: KeyObject): Buffer {
  const full = key.export({ type: 'spki', format: 'der' });
  const prefix = Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex');
  return Buffer.concat([prefix, Buffer.from([(full[90] as number) & 1 ? 3 : 2]), full.subarray(27, 59)]);
}

/** A P-256 SubjectPublicKeyInfo with explicit curve parameters (openssl ec -param_enc explicit). */
const EXPLICIT_P256_SPKI = Buffer.from(
  '3082014b3082010306072a8648ce3d02013081f7020101302c06072a8648ce3d0101022100ffffffff00000001000000000000000000000000ffffffffffffffffffffffff305b0420ffffffff00000001000000000000000000000000fffffffffffffffffffffffc04205ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b031500c49d360886e704936a6678e1139d26b7819f7e900441046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5022100ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63255102010103420004753a54e5810e3dd528ec212f735720ae3d800820c64a91f258858a635118db1784022858416fc76f6df0987e1f705f089eb8ea05e4b625956534226fb169cf47',
  'hex',
);

/** A CSR around `info` (any bytes), signed again by the seed's key. */
function resign(info: Buffer, seed: Seed): Buffer {
  const ed = seed.privateKey.asymmetricKeyType === 'ed25519';
  const signature = ed ? sign(null, info, seed.privateKey) : sign('sha256', info, { key: seed.privateKey, dsaEncoding: 'der' });
  return seq(info, seq(oid(ed ? OID.ed25519 : OID.ecdsaWithSha256)), bits(signature));
}

t.test('mutated and truncated CSRs: refused with a CSR or key code, or accepted by @peculiar/x509 too', async (t) => {
  const rand = mulberry32(SEED);
  const corpus = seeds();
  for (const s of corpus) t.ok(parseCsr(s.der), `seed accepted: ${s.name}`);
  const pickSeed = () => corpus[Math.floor(rand() * corpus.length)] as Seed;

  const problems: string[] = [];
  const accepted: Array<{ der: Buffer; spki: Buffer; how: string }> = [];
  const codes = new Map<string, number>();
  const check = (der: Buffer, how: string) => {
    try {
      const parsed = parseCsr(der);
      accepted.push({ der, spki: parsed.spki, how });
    } catch (err) {
      const code = isMeshError(err) ? err.code : `not a MeshError: ${(err as Error)?.constructor?.name} ${(err as Error)?.message}`;
      codes.set(code, (codes.get(code) ?? 0) + 1);
      if (code !== 'MESH_E_CSR_INVALID' && code !== 'MESH_E_KEY_UNSUPPORTED' && problems.length < 20) {
        problems.push(`${how}: ${code} for ${der.toString('hex')}`);
      }
    }
  };

  const started = process.hrtime.bigint();
  for (let i = 0; i < RAW_CASES; i++) {
    const seed = pickSeed();
    let der = seed.der;
    for (let m = 1 + Math.floor(rand() * 3); m > 0; m--) der = mutate(der, rand);
    check(der, `raw ${i} of ${seed.name}`);
  }
  for (let i = 0; i < RESIGNED_CASES; i++) {
    const seed = pickSeed();
    let info = (children(read(seed.der))[0] as { raw: Buffer }).raw;
    for (let m = 1 + Math.floor(rand() * 2); m > 0; m--) info = mutate(info, rand);
    check(resign(info, seed), `re-signed ${i} of ${seed.name}`);
  }
  for (let i = 0; i < TRUNCATED_CASES; i++) {
    const seed = pickSeed();
    check(seed.der.subarray(0, Math.floor(rand() * seed.der.length)), `truncated ${i} of ${seed.name}`);
  }
  // The same requests around other keys (P-384, RSA, compressed and explicit-curve P-256, mutated), re-signed.
  const p256 = createPublicKey((corpus[0] as Seed).privateKey);
  const otherKeys = [
    p256.export({ type: 'spki', format: 'der' }),
    compressedSpki(p256),
    ...OTHER_SPKIS.map((hex) => Buffer.from(hex, 'hex')),
    EXPLICIT_P256_SPKI,
  ];
  for (let i = 0; i < KEY_SWAP_CASES; i++) {
    const seed = pickSeed();
    const [version, subject, , attributes] = children(children(read(seed.der))[0] as ReturnType<typeof read>);
    let spki = otherKeys[Math.floor(rand() * otherKeys.length)] as Buffer;
    if (rand() < 0.5) spki = mutate(spki, rand);
    const info = seq(version?.raw as Buffer, subject?.raw as Buffer, spki, attributes?.raw as Buffer);
    check(resign(info, seed), `key swap ${i} of ${seed.name}`);
  }
  const parsedMs = Number(process.hrtime.bigint() - started) / 1e6;

  for (const a of accepted) {
    try {
      const request = new x509.Pkcs10CertificateRequest(a.der);
      if (!(await request.verify())) problems.push(`${a.how}: @peculiar/x509 says the signature does not verify: ${a.der.toString('hex')}`);
      else if (!Buffer.from(request.publicKey.rawData).equals(a.spki)) problems.push(`${a.how}: @peculiar/x509 reads another key`);
    } catch (err) {
      problems.push(`${a.how}: @peculiar/x509 refuses what parseCsr accepted (${(err as Error).message}): ${a.der.toString('hex')}`);
    }
    if (problems.length >= 20) break;
  }
  const totalMs = Number(process.hrtime.bigint() - started) / 1e6;
  const total = RAW_CASES + RESIGNED_CASES + TRUNCATED_CASES + KEY_SWAP_CASES;
  t.comment(
    `${total} CSRs from seed 0x${SEED.toString(16)}: ${accepted.length} accepted (each checked by @peculiar/x509), refused: ${JSON.stringify(Object.fromEntries(codes))}; parseCsr ${parsedMs.toFixed(0)} ms, all ${totalMs.toFixed(0)} ms`,
  );
  t.same(problems, [], 'every refusal has a CSR or key code; every acceptance is shared by @peculiar/x509');
  t.equal(accepted.length + [...codes.values()].reduce((a, b) => a + b, 0), total, 'every case ended in an answer');
  t.ok(accepted.length >= 200, `the acceptance path is exercised (${accepted.length} accepted mutants)`);
  t.ok((codes.get('MESH_E_KEY_UNSUPPORTED') ?? 0) > 0, 'some mutants reach the key check');
});
