// Evaluates the invariants of profiles/ (ours and the CA Baseline ones our profiles inherit) and the
// expressions of our SearchParameters on profiles/examples/ with HL7's reference FHIRPath engine
// (npm package fhirpath, tested with 5.1.1):
//   npm install --prefix /tmp/fp fhirpath@5.1.1
//   NODE_PATH=/tmp/fp/node_modules node profiles/tools/check-fhirpath.js
// Valid examples must satisfy every error-level invariant; an invalid example whose .expected.txt
// names a constraint key must fail exactly that one. Every SearchParameter expression must select
// something in the valid examples of its base type.
const fs = require('fs');
const path = require('path');
const fhirpath = require('fhirpath');
const r4 = require('fhirpath/fhir-context/r4');

const root = path.resolve(__dirname, '..');
const read = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));
const V2 = 'http://terminology.hl7.org/CodeSystem/v2-0203';

// Where each element's invariants are evaluated: element id -> FHIRPath selecting its instances.
const contexts = {
  'Patient': 'Patient',
  'Patient.name': 'Patient.name',
  'Patient.identifier:MRN': `Patient.identifier.where(type.coding.where(system='${V2}' and code='MR').exists())`,
  'Patient.identifier:JHN/ONHCN.value': "Patient.identifier.where(system='https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn').value",
  'Practitioner': 'Practitioner',
  'Practitioner.name': 'Practitioner.name',
  'ServiceRequest': 'ServiceRequest',
  'ServiceRequest.code': 'ServiceRequest.code',
  'ImagingStudy.identifier:studyInstanceUid.value': "ImagingStudy.identifier.where(system='urn:dicom:uid').value",
  'DiagnosticReport.presentedForm': 'DiagnosticReport.presentedForm',
  'DocumentReference.content.attachment': 'DocumentReference.content.attachment',
};

// Collect constraints per resource type from our SDs and the CA Baseline SDs they derive from.
const sds = [];
for (const dir of [root, path.join(root, 'ca-baseline')]) {
  for (const f of fs.readdirSync(dir)) {
    if (!f.toLowerCase().startsWith('structuredefinition-')) continue;
    const sd = read(path.join(dir, f));
    if (sd.kind === 'resource') sds.push(sd);
  }
}
const constraints = {}; // type -> [{key, severity, ctx, expression}]
const seen = new Set();
for (const sd of sds) {
  for (const el of sd.differential.element) {
    for (const c of el.constraint || []) {
      if (seen.has(c.key)) continue;
      seen.add(c.key);
      const ctx = contexts[el.id];
      if (!ctx) { console.log(`skip ${c.key}: no context for ${el.id}`); continue; }
      (constraints[sd.type] = constraints[sd.type] || []).push({ key: c.key, severity: c.severity, ctx, expression: c.expression });
    }
  }
}

let failures = 0;
const fail = (m) => { failures++; console.log('FAIL ' + m); };
const evalc = (res, c) => {
  const items = fhirpath.evaluate(res, c.ctx, null, r4);
  const bad = [];
  items.forEach((it, i) => {
    const out = fhirpath.evaluate(it, c.expression, null, r4);
    if (!(out.length === 1 && out[0] === true)) bad.push(i);
  });
  return bad;
};

const examples = [];
const exdir = path.join(root, 'examples');
for (const folder of fs.readdirSync(exdir)) {
  for (const f of fs.readdirSync(path.join(exdir, folder))) {
    if (f.endsWith('.json')) examples.push(path.join(exdir, folder, f));
  }
}
let evaluated = 0;
for (const p of examples.sort()) {
  const res = read(p);
  const name = path.relative(root, p);
  const expFile = p.replace(/\.json$/, '.expected.txt');
  const expected = fs.existsSync(expFile) ? fs.readFileSync(expFile, 'utf8') : '';
  const m = expected.match(/constraint (\S+) failed/);
  for (const c of constraints[res.resourceType] || []) {
    evaluated++;
    const bad = evalc(res, c);
    const shouldFail = m && m[1] === c.key;
    if (shouldFail && bad.length === 0) fail(`${name}: expected ${c.key} to fail`);
    if (!shouldFail && bad.length > 0 && c.severity === 'error') fail(`${name}: ${c.key} fails`);
    if (!shouldFail && bad.length > 0 && c.severity === 'warning' && !expected) fail(`${name}: warning ${c.key} fires on a valid example`);
  }
}

// SearchParameters: the expression must select something in a valid example of each base.
let sps = 0;
for (const f of fs.readdirSync(root)) {
  if (!f.startsWith('SearchParameter-')) continue;
  const sp = read(path.join(root, f));
  sps++;
  // A parameter the server computes from other resources (DiagnosticReport recipient) has no expression.
  if (sp.expression === undefined) continue;
  for (const base of sp.base) {
    const valid = examples.filter((p) => path.basename(p).startsWith('valid')).map(read).filter((r) => r.resourceType === base);
    if (base === 'Patient' && valid.length === 0) continue;
    const hit = valid.some((r) => {
      const out = fhirpath.evaluate(r, sp.expression, null, r4);
      if (sp.type !== 'composite') return out.length > 0;
      return out.some((o) => sp.component.every((c) => fhirpath.evaluate(o, c.expression, null, r4).length > 0));
    });
    if (!hit) fail(`${f}: expression ${sp.expression} selects nothing in the valid ${base} examples`);
  }
}
console.log(`${Object.values(constraints).flat().length} invariants, ${evaluated} evaluations on ${examples.length} examples, ${sps} search parameters; ${failures} failure(s)`);
process.exit(failures ? 1 : 0);
