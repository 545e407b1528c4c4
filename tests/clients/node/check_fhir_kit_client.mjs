// Drives a running imaging-cdr with Vermonster's `fhir-kit-client` (Node.js, fetch).
//
// fhir-kit-client sends `application/fhir+json`, posts transactions and batches to `[base]/`, follows
// `Bundle.link` URLs as given, and throws on every status that is not 2xx with the status and the parsed
// body. The checks create, read, vread, search (GET, POST _search, paging), update and delete resources and
// post a transaction, asserting the statuses, Location and ETag headers, ids, versions, search totals and
// the transaction's entry responses. Searches ask for `_total=accurate`: without it R4 lets a server leave
// `total` out.
//
// Usage: node check_fhir_kit_client.mjs BASE_URL [ACCESS_TOKEN]   (e.g. http://127.0.0.1:8080/fhir)
// With an access token, every request carries it as a bearer token.
// Prints one line per check and a closing 'N passed, N failed' line; exits 1 on any failure.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Client } from 'fhir-kit-client';

const [baseUrl, bearerToken] = process.argv.slice(2);
const client = new Client({ baseUrl: baseUrl.replace(/\/$/, ''), bearerToken });
const MRN = 'https://fhir.hospital.example/mrn';
// Values of this run only, so that the search totals count what this run made.
const mrnValue = `MRN-FKC-${randomUUID()}`;
const state = {};
const checks = [];
const check = (name, run) => checks.push({ name, run });

const response = (resource) => Client.httpFor(resource).response;

/** The status of the error fhir-kit-client throws for `promise`, and the body it parsed. */
async function failure(promise) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error.response, `not an HTTP error: ${error}`);
    return error.response;
  }
  assert.fail('the request succeeded');
}

check('the CapabilityStatement is R4 and declares the imaging types', async () => {
  const statement = await client.capabilityStatement();
  assert.equal(statement.fhirVersion, '4.0.1');
  const types = statement.rest[0].resource.map((resource) => resource.type);
  for (const type of ['Patient', 'ImagingStudy', 'DiagnosticReport', 'ServiceRequest']) {
    assert.ok(types.includes(type), type);
  }
});

check('create a Patient: 201, Location and ETag of version 1', async () => {
  const created = await client.create({
    resourceType: 'Patient',
    body: {
      resourceType: 'Patient',
      identifier: [{ system: MRN, value: mrnValue }],
      name: [{ family: 'Gagnon', given: ['Béatrice'] }],
      birthDate: '1968-02-29',
    },
  });
  assert.equal(response(created).status, 201);
  assert.ok(created.id, 'the server assigned an id');
  assert.equal(created.meta.versionId, '1');
  assert.equal(created.name[0].family, 'Gagnon');
  assert.match(response(created).headers.get('location'), new RegExp(`/Patient/${created.id}/_history/1$`));
  assert.equal(response(created).headers.get('etag'), 'W/"1"');
  state.patient = created;
});

check('read and vread the Patient', async () => {
  const read = await client.read({ resourceType: 'Patient', id: state.patient.id });
  assert.equal(response(read).status, 200);
  assert.equal(read.birthDate, '1968-02-29');
  assert.equal(read.identifier[0].value, mrnValue);
  const first = await client.vread({ resourceType: 'Patient', id: state.patient.id, version: '1' });
  assert.equal(first.meta.versionId, '1');
});

check('update the Patient: 200 and version 2; its history has both versions', async () => {
  const updated = await client.update({
    resourceType: 'Patient',
    id: state.patient.id,
    body: { ...state.patient, active: true },
  });
  assert.equal(response(updated).status, 200);
  assert.equal(updated.meta.versionId, '2');
  assert.equal(updated.active, true);
  assert.equal(response(updated).headers.get('etag'), 'W/"2"');
  const history = await client.history({ resourceType: 'Patient', id: state.patient.id });
  assert.equal(history.type, 'history');
  assert.deepEqual(history.entry.map((entry) => entry.resource.meta.versionId), ['2', '1']);
});

check('search: by identifier (GET and POST _search), totals, and pages of two', async () => {
  const identifier = `${MRN}|${mrnValue}`;
  const found = await client.search({ resourceType: 'Patient', searchParams: { identifier, _total: 'accurate' } });
  assert.equal(found.type, 'searchset');
  assert.equal(found.total, 1);
  assert.deepEqual(found.entry.map((entry) => entry.resource.id), [state.patient.id]);
  const posted = await client.search({
    resourceType: 'Patient', searchParams: { identifier, _total: 'accurate' }, options: { postSearch: true },
  });
  assert.equal(posted.total, 1);
  const none = await client.search({
    resourceType: 'Patient', searchParams: { identifier: `${identifier}-nobody`, _total: 'accurate' },
  });
  assert.equal(none.total, 0);
  const subject = { reference: `Patient/${state.patient.id}` };
  for (const day of ['01', '02', '03']) {
    await client.create({
      resourceType: 'ImagingStudy',
      body: { resourceType: 'ImagingStudy', status: 'available', subject, started: `2024-07-${day}T08:30:00Z` },
    });
  }
  const first = await client.search({
    resourceType: 'ImagingStudy',
    searchParams: { patient: `Patient/${state.patient.id}`, _sort: 'started', _count: 2, _total: 'accurate' },
  });
  assert.equal(first.total, 3);
  const second = await client.nextPage({ bundle: first });
  assert.ok(second, 'a next page');
  const started = [...first.entry, ...second.entry].map((entry) => entry.resource.started);
  assert.deepEqual(started, ['2024-07-01T08:30:00Z', '2024-07-02T08:30:00Z', '2024-07-03T08:30:00Z']);
  assert.equal(client.nextPage({ bundle: second }), undefined);
  state.studies = [...first.entry, ...second.entry].map((entry) => entry.resource.id);
});

check('a transaction: entries rewritten to the assigned ids, a conditional create finds the Patient', async () => {
  const order = `urn:uuid:${randomUUID()}`;
  const patient = `urn:uuid:${randomUUID()}`;
  const answer = await client.transaction({
    body: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: patient,
          request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${MRN}|${mrnValue}` },
          resource: { resourceType: 'Patient', identifier: [{ system: MRN, value: mrnValue }] },
        },
        {
          fullUrl: order,
          request: { method: 'POST', url: 'ServiceRequest' },
          resource: {
            resourceType: 'ServiceRequest', status: 'active', intent: 'order',
            subject: { reference: patient }, code: { text: 'US abdomen' },
          },
        },
        {
          request: { method: 'POST', url: 'DiagnosticReport' },
          resource: {
            resourceType: 'DiagnosticReport', status: 'preliminary', code: { text: 'US abdomen' },
            subject: { reference: patient }, basedOn: [{ reference: order }],
          },
        },
      ],
    },
  });
  assert.equal(response(answer).status, 200);
  assert.equal(answer.type, 'transaction-response');
  assert.deepEqual(answer.entry.map((entry) => entry.response.status), ['200 OK', '201 Created', '201 Created']);
  const [patientId, orderId, reportId] = answer.entry.map((entry) => entry.response.location.split('/')[1]);
  assert.equal(patientId, state.patient.id);
  const report = await client.read({ resourceType: 'DiagnosticReport', id: reportId });
  assert.equal(report.subject.reference, `Patient/${state.patient.id}`);
  assert.equal(report.basedOn[0].reference, `ServiceRequest/${orderId}`);
  state.order = orderId;
  state.report = reportId;
});

check('errors are OperationOutcomes with their status', async () => {
  const missing = await failure(client.read({ resourceType: 'Patient', id: 'not-there' }));
  assert.equal(missing.status, 404);
  assert.equal(missing.data.resourceType, 'OperationOutcome');
  const invalid = await failure(client.create({
    resourceType: 'Patient', body: { resourceType: 'Patient', birthDate: 'yesterday' },
  }));
  assert.equal(invalid.status, 422);
  assert.equal(invalid.data.issue[0].severity, 'error');
  assert.deepEqual(invalid.data.issue[0].expression, ['Patient.birthDate']);
});

check('delete the Patient and what refers to it: reading it is 410 Gone', async () => {
  const deletions = [
    ...state.studies.map((id) => ['ImagingStudy', id]),
    ['DiagnosticReport', state.report],
    ['ServiceRequest', state.order],
    ['Patient', state.patient.id],
  ];
  for (const [resourceType, id] of deletions) {
    const answer = await client.delete({ resourceType, id });
    assert.ok([200, 204].includes(response(answer).status), `${resourceType}/${id}: ${response(answer).status}`);
  }
  const gone = await failure(client.read({ resourceType: 'Patient', id: state.patient.id }));
  assert.equal(gone.status, 410);
  const found = await client.search({
    resourceType: 'Patient', searchParams: { identifier: `${MRN}|${mrnValue}`, _total: 'accurate' },
  });
  assert.equal(found.total, 0);
});

let failed = 0;
for (const { name, run } of checks) {
  try {
    await run();
    console.log(`ok   ${name}`);
  } catch (error) {
    failed += 1;
    console.log(`FAIL ${name}: ${error.message}`);
  }
}
console.log(`${checks.length - failed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
