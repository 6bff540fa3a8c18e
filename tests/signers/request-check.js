// Checks the requests a test's provider stand-in received against the provider's own API
// description (tests/provider-specs/): the operation exists for the method and path, each
// required header parameter is present, and the JSON body validates against the operation's
// request schema (Ajv; JSON Schema 2020-12 for OpenAPI 3.1, draft-07 otherwise). OpenAPI 3.x
// (`requestBody`) and Swagger 2.0 (`in: body`) both.
// Input (stdin, JSON): { spec_file, requests: [{ method, path, headers: {name: value}, body }] }
// Output (stdout, JSON): { checked, errors: [{ method, path, errors }] }
'use strict';
const fs = require('fs');
const YAML = require('yaml');
const Ajv2020 = require('ajv/dist/2020');
const Ajv = require('ajv');

function pointer(...parts) {
  return parts.map((p) => String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
}

// `#/components/requestBodies/X` in the document.
function resolve(spec, node) {
  let seen = 0;
  while (node && node.$ref && seen++ < 10) {
    node = node.$ref
      .replace(/^#\//, '')
      .split('/')
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce((n, k) => (n ? n[k] : undefined), spec);
  }
  return node;
}

// OpenAPI 3.0 schemas take draft-04's boolean `exclusiveMinimum`/`exclusiveMaximum` (a flag on
// `minimum`/`maximum`), which Ajv's draft-07 refuses to compile: rewritten to draft-07's numbers.
function draft07Bounds(node) {
  if (Array.isArray(node)) {
    node.forEach(draft07Bounds);
  } else if (node && typeof node === 'object') {
    for (const [flag, bound] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']]) {
      if (typeof node[flag] !== 'boolean') continue;
      if (node[flag] && typeof node[bound] === 'number') {
        node[flag] = node[bound];
        delete node[bound];
      } else {
        delete node[flag];
      }
    }
    Object.values(node).forEach(draft07Bounds);
  }
}

function operationFor(spec, method, path) {
  const base = (spec.basePath || '').replace(/\/$/, '');
  for (const [template, item] of Object.entries(spec.paths || {})) {
    const pattern = new RegExp(
      '^' + base + template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '[^/]+') + '$',
    );
    if (pattern.test(path) && item[method]) return { template, op: item[method], item };
  }
  return null;
}

function main() {
  const input = JSON.parse(fs.readFileSync(0, 'utf8'));
  const text = fs.readFileSync(input.spec_file, 'utf8');
  const spec = input.spec_file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  const openapi3 = typeof spec.openapi === 'string';
  if (openapi3 && !spec.openapi.startsWith('3.1')) draft07Bounds(spec);
  const ajv = spec.openapi && spec.openapi.startsWith('3.1')
    ? new Ajv2020({ strict: false, validateFormats: false, allErrors: true })
    : new Ajv({ strict: false, validateFormats: false, allErrors: true });
  const id = 'https://provider.invalid/spec.json';
  ajv.addSchema({ ...spec, $id: id });
  const out = { checked: 0, errors: [] };
  for (const r of input.requests) {
    const method = r.method.toLowerCase();
    const found = operationFor(spec, method, r.path);
    const errors = [];
    if (!found) {
      out.errors.push({ method, path: r.path, errors: ['no such operation in the spec'] });
      continue;
    }
    const headers = Object.fromEntries(Object.entries(r.headers || {}).map(([k, v]) => [k.toLowerCase(), v]));
    const params = [...(found.item.parameters || []), ...(found.op.parameters || [])].map((p) => resolve(spec, p));
    for (const p of params) {
      if (p && p.in === 'header' && p.required && !(p.name.toLowerCase() in headers)) {
        errors.push(`required header ${p.name} is missing`);
      }
    }
    let schemaRef = null;
    if (openapi3) {
      const body = resolve(spec, found.op.requestBody);
      if (body && body.content && body.content['application/json']) {
        const at = found.op.requestBody.$ref
          ? found.op.requestBody.$ref.replace(/^#\//, '').split('/')
          : ['paths', found.template, method, 'requestBody'];
        schemaRef = `${id}#/${pointer(...at.map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')), 'content', 'application/json', 'schema')}`;
        if (body.required && r.body === undefined) errors.push('the request body is required');
      }
    } else {
      const i = (found.op.parameters || []).findIndex((p) => p.in === 'body');
      if (i >= 0) schemaRef = `${id}#/${pointer('paths', found.template, method, 'parameters', i, 'schema')}`;
    }
    if (schemaRef) {
      const validate = ajv.getSchema(schemaRef);
      if (!validate) errors.push(`cannot compile ${schemaRef}`);
      else if (!validate(r.body)) errors.push(...validate.errors.map((e) => `${e.instancePath || '/'} ${e.message}`));
    }
    if (errors.length) out.errors.push({ method, path: r.path, errors });
    out.checked += 1;
  }
  process.stdout.write(JSON.stringify(out));
}

main();
