"""Drives a running imaging-cdr with beda.software's asynchronous `fhirpy` client (aiohttp).

fhirpy builds its own search URLs (`name=value` pairs, repeated keys, `_count`, `_sort`), follows
`Bundle.link` `next` URLs only while they start with the base URL it was given, counts with `_count=0`
and reads `total`, and posts transactions to `[base]/`. The checks create, read, search, update and delete
resources and post a transaction, asserting the versions, ids, totals and entry responses the server
answers.

Usage: python check_fhirpy.py BASE_URL [ACCESS_TOKEN]   (e.g. http://127.0.0.1:8080/fhir)
With an access token, every request carries it as a bearer token.
Prints one line per check and a closing 'N passed, N failed' line; exits 1 on any failure.
"""

import asyncio
import sys
import uuid

from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

BASE = sys.argv[1].rstrip("/")
TOKEN = sys.argv[2] if len(sys.argv) > 2 else None
CLIENT = AsyncFHIRClient(BASE, authorization=f"Bearer {TOKEN}" if TOKEN else None)
MRN = "https://fhir.hospital.example/mrn"
# Values of this run only, so that the search totals count what this run made.
MRN_VALUE = f"MRN-FHIRPY-{uuid.uuid4()}"
STATE = {}
CHECKS = []


def check(name):
    def register(function):
        CHECKS.append((name, function))
        return function

    return register


@check("create a Patient: the server assigns an id and version 1")
async def create_patient():
    patient = CLIENT.resource(
        "Patient",
        identifier=[{"system": MRN, "value": MRN_VALUE}],
        name=[{"family": "Lévesque", "given": ["Noémie"]}],
        gender="female",
        birthDate="1975-11-30",
    )
    await patient.save()
    assert patient.id, "the server assigned an id"
    assert patient["meta"]["versionId"] == "1", patient["meta"]
    assert patient["name"][0]["family"] == "Lévesque", patient["name"]
    STATE["patient"] = patient


@check("read the Patient by its reference")
async def read_patient():
    patient = await CLIENT.reference("Patient", STATE["patient"].id).to_resource()
    assert patient.id == STATE["patient"].id, patient.id
    assert patient["birthDate"] == "1975-11-30", patient["birthDate"]
    assert patient["identifier"][0]["value"] == MRN_VALUE, patient["identifier"]


@check("update the Patient: version 2, and the read sees it")
async def update_patient():
    patient = STATE["patient"]
    patient["active"] = True
    await patient.save()
    assert patient["meta"]["versionId"] == "2", patient["meta"]
    again = await CLIENT.resources("Patient").search(_id=patient.id).get()
    assert again["active"] is True, again
    assert again["meta"]["versionId"] == "2", again["meta"]


@check("search: by identifier, count with _count=0, and page through three studies two at a time")
async def search():
    patients = CLIENT.resources("Patient").search(identifier=f"{MRN}|{MRN_VALUE}")
    found = await patients.fetch()
    assert [patient.id for patient in found] == [STATE["patient"].id], found
    assert await patients.count() == 1
    assert await CLIENT.resources("Patient").search(identifier=f"{MRN}|{MRN_VALUE}-nobody").count() == 0
    subject = {"reference": f"Patient/{STATE['patient'].id}"}
    for day in ("01", "02", "03"):
        await CLIENT.resource(
            "ImagingStudy", status="available", subject=subject, started=f"2024-06-{day}T09:00:00Z",
        ).save()
    studies = CLIENT.resources("ImagingStudy").search(subject=f"Patient/{STATE['patient'].id}")
    assert await studies.count() == 3
    paged = await studies.sort("-started").limit(2).fetch_all()
    started = [study["started"] for study in paged]
    assert started == ["2024-06-03T09:00:00Z", "2024-06-02T09:00:00Z", "2024-06-01T09:00:00Z"], started
    recent = await studies.search(started__ge="2024-06-02").count()
    assert recent == 2, recent
    chained = CLIENT.resources("ImagingStudy").search(subject__Patient__identifier=f"{MRN}|{MRN_VALUE}")
    assert await chained.count() == 3


@check("a transaction: entries rewritten to the ids the server assigned, 201 each")
async def transaction():
    order = f"urn:uuid:{uuid.uuid4()}"
    report = f"urn:uuid:{uuid.uuid4()}"
    subject = {"reference": f"Patient/{STATE['patient'].id}"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": order, "request": {"method": "POST", "url": "ServiceRequest"}, "resource": {
                "resourceType": "ServiceRequest", "status": "completed", "intent": "order", "subject": subject,
                "code": {"text": "MR knee"}}},
            {"fullUrl": report, "request": {"method": "POST", "url": "DiagnosticReport"}, "resource": {
                "resourceType": "DiagnosticReport", "status": "final", "subject": subject,
                "code": {"text": "MR knee"}, "basedOn": [{"reference": order}]}},
        ],
    }
    answer = await CLIENT.execute("", method="post", data=bundle)
    assert answer["resourceType"] == "Bundle" and answer["type"] == "transaction-response", answer
    statuses = [entry["response"]["status"] for entry in answer["entry"]]
    assert statuses == ["201 Created", "201 Created"], statuses
    order_id, report_id = (entry["response"]["location"].split("/")[1] for entry in answer["entry"])
    created = await CLIENT.reference("DiagnosticReport", report_id).to_resource()
    assert created["basedOn"][0]["reference"] == f"ServiceRequest/{order_id}", created["basedOn"]
    reports = CLIENT.resources("DiagnosticReport").search(based_on=f"ServiceRequest/{order_id}")
    assert [found.id for found in await reports.fetch()] == [report_id]


@check("an invalid resource is refused with an OperationOutcome")
async def invalid():
    try:
        await CLIENT.resource("Patient", gender="sometimes").save()
    except OperationOutcome as error:
        issues = error.resource["issue"]
        assert issues[0]["severity"] == "error", issues
        assert issues[0]["code"] == "code-invalid", issues
        assert issues[0]["expression"] == ["Patient.gender"], issues
    else:
        raise AssertionError("the server accepted gender 'sometimes'")


@check("delete the Patient: reading it fails and searches no longer find it")
async def delete_patient():
    patient = STATE["patient"]
    for study in await CLIENT.resources("ImagingStudy").search(subject=f"Patient/{patient.id}").fetch_all():
        await study.delete()
    for report in await CLIENT.resources("DiagnosticReport").search(subject=f"Patient/{patient.id}").fetch_all():
        await report.delete()
    for order in await CLIENT.resources("ServiceRequest").search(subject=f"Patient/{patient.id}").fetch_all():
        await order.delete()
    await patient.delete()
    try:
        await CLIENT.reference("Patient", patient.id).to_resource()
    except ResourceNotFound:
        pass
    else:
        raise AssertionError("the deleted Patient was still read")
    assert await CLIENT.resources("Patient").search(identifier=f"{MRN}|{MRN_VALUE}").count() == 0


async def main():
    failed = 0
    for name, function in CHECKS:
        try:
            await function()
            print(f"ok   {name}")
        except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the run
            failed += 1
            print(f"FAIL {name}: {error!r}")
    print(f"{len(CHECKS) - failed} passed, {failed} failed")
    return 1 if failed else 0


sys.exit(asyncio.run(main()))
