// Checks the hub's OpenAPI document with independent validators: the document against the
// OpenAPI 3.1 schema (@seriousme/openapi-schema-validator), and each live answer against the
// schema the document gives for it (Ajv, JSON Schema 2020-12).
// Input (stdin, JSON): { spec, answers: [{ method, path, status, body }] } where `path` is the
// document's path template (`/api/v1/tenants/{tenant}/records`).
// Output (stdout, JSON): { spec_errors: [...], answer_errors: [{ method, path, status, errors }] }
'use strict';
const { Validator } = require('@seriousme/openapi-schema-validator');
const Ajv2020 = require('ajv/dist/2020');

function pointer(...parts) {
  return parts.map((p) => String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
}

async function main() {
  const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const out = { spec_errors: [], answer_errors: [], checked: 0 };
  const validator = new Validator();
  const res = await validator.validate(input.spec);
  if (!res.valid) out.spec_errors = res.errors;
  const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
  const id = 'https://hub.invalid/openapi.json';
  ajv.addSchema({ ...input.spec, $id: id });
  for (const a of input.answers) {
    const op = input.spec.paths?.[a.path]?.[a.method];
    const response = op?.responses?.[String(a.status)];
    const schema = response?.content?.['application/json']?.schema;
    if (!schema) {
      out.answer_errors.push({ ...a, body: undefined, errors: ['the document has no schema for this answer'] });
      continue;
    }
    const ref = `${id}#/${pointer('paths', a.path, a.method, 'responses', String(a.status), 'content', 'application/json', 'schema')}`;
    const validate = ajv.getSchema(ref);
    if (!validate(a.body)) {
      out.answer_errors.push({ method: a.method, path: a.path, status: a.status, errors: validate.errors });
    }
    out.checked += 1;
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(String(e.stack || e));
  process.exit(1);
});
