/**
 * The text `meshctl policy apply|diff -f` reads (pure): multi-document YAML
 * (`---` between documents) or JSON, one object or an array of them. Syntax
 * errors are MESH_E_POLICY_INVALID problems naming the document and line;
 * everything else is validated by the control plane.
 */
import { parseAllDocuments } from 'yaml';
import { invalidPolicies, type PolicyProblem } from '../policy/policy-validate.js';

export function parsePolicyText(text: string, source: string): unknown[] {
  const documents: unknown[] = [];
  const problems: PolicyProblem[] = [];
  const parsed = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  const docs = Array.isArray(parsed) ? parsed : [];
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      const index = documents.length;
      documents.push(undefined);
      for (const e of doc.errors) {
        const pos = e.linePos?.[0];
        const message = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
        problems.push({
          index,
          kind: '',
          name: '',
          path: '',
          message: `${source}${pos ? ` line ${pos.line} column ${pos.col}` : ''}: ${message}`,
        });
      }
      continue;
    }
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue;
    if (Array.isArray(value)) documents.push(...(value as unknown[]));
    else documents.push(value);
  }
  if (problems.length > 0) throw invalidPolicies(problems);
  if (documents.length === 0) throw invalidPolicies([{ index: 0, kind: '', name: '', path: '', message: `${source} holds no documents` }]);
  return documents;
}
