"""Drives a running imaging-cdr with SMART's Python `fhirclient` (R4 models, strict parsing).

A third-party client, written by others against the FHIR specification, must be able to read our
CapabilityStatement, create, read, update and delete resources, page history and understand our
OperationOutcomes. Every response is parsed with fhirclient's R4 models, which reject unknown elements
and wrongly typed values.

Usage: python check_fhirclient.py BASE_URL [ACCESS_TOKEN]   (e.g. http://127.0.0.1:8080/fhir)
With an access token (a server under --auth smart), every request carries it as a bearer token, and the
checks add the 401 of a request without it and the SMART description of the CapabilityStatement.
Prints one line per check and a closing 'N passed, N failed' line; exits 1 on any failure.
"""

import sys

import requests
from fhirclient import server as fhir_server
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.diagnosticreport import DiagnosticReport
from fhirclient.models.imagingstudy import ImagingStudy
from fhirclient.models.operationoutcome import OperationOutcome
from fhirclient.models.patient import Patient
from fhirclient.models.servicerequest import ServiceRequest

BASE = sys.argv[1].rstrip("/") + "/"
TOKEN = sys.argv[2] if len(sys.argv) > 2 else None
SERVER = fhir_server.FHIRServer(None, base_uri=BASE)
# The requests the checks make themselves go through a session like fhirclient's.
HTTP = requests.Session()
if TOKEN:
    for session in (SERVER.session, HTTP):
        session.headers["Authorization"] = f"Bearer {TOKEN}"
RESULTS = []


def check(name):
    def decorate(function):
        try:
            function()
            RESULTS.append((name, None))
            print(f"ok   {name}")
        except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the run
            RESULTS.append((name, error))
            print(f"FAIL {name}: {error!r}")
        return function

    return decorate


STATE = {}


@check("CapabilityStatement parses and declares the imaging types")
def capability_statement():
    statement = CapabilityStatement.read_from("metadata", SERVER)
    assert statement.fhirVersion == "4.0.1", statement.fhirVersion
    types = {resource.type for resource in statement.rest[0].resource}
    assert {"Patient", "ImagingStudy", "DiagnosticReport", "ServiceRequest"} <= types, types


if TOKEN:
    @check("with --auth smart: SMART in the CapabilityStatement, 401 without the token")
    def smart():
        statement = CapabilityStatement.read_from("metadata", SERVER)
        codes = [coding.code for service in statement.rest[0].security.service for coding in service.coding]
        assert codes == ["SMART-on-FHIR"], codes
        response = requests.get(BASE + "Patient")
        assert response.status_code == 401, response.status_code
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), response.headers
        OperationOutcome(response.json())


@check("create a Patient")
def create_patient():
    patient = Patient({
        "identifier": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
            "system": "https://fhir.hospital.example/mrn",
            "value": "MRN-CLIENT-1",
        }],
        "name": [{"family": "Côté", "given": ["Amélie"]}],
        "gender": "female",
        "birthDate": "1981-03-04",
    })
    created = Patient(patient.create(SERVER))
    assert created.id, "the server assigned an id"
    assert created.meta.versionId == "1", created.meta.versionId
    assert created.name[0].family == "Côté"
    STATE["patient"] = created


@check("read the Patient back")
def read_patient():
    patient = Patient.read(STATE["patient"].id, SERVER)
    assert patient.birthDate.isostring == "1981-03-04"
    assert patient.identifier[0].value == "MRN-CLIENT-1"


@check("update the Patient")
def update_patient():
    patient = Patient.read(STATE["patient"].id, SERVER)
    patient.active = True
    updated = Patient(patient.update(SERVER))
    assert updated.meta.versionId == "2", updated.meta.versionId
    assert updated.active is True


@check("create an order, a study and a report that reference the Patient")
def create_imaging():
    subject = {"reference": f"Patient/{STATE['patient'].id}"}
    order = ServiceRequest(ServiceRequest({
        "status": "active", "intent": "order", "subject": subject,
        "identifier": [{"system": "https://fhir.hospital.example/acsn", "value": "ACC-1"}],
        "code": {"coding": [{"system": "urn:oid:2.16.840.1.113883.3.239.99", "code": "CTHEAD"}]},
    }).create(SERVER))
    study = ImagingStudy(ImagingStudy({
        "status": "available", "subject": subject, "started": "2024-05-06T10:11:12-04:00",
        "basedOn": [{"reference": f"ServiceRequest/{order.id}"}],
        "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.840.113619.2.1.1.1"}],
        "series": [{"uid": "1.2.840.113619.2.1.1.1.1", "number": 1,
                    "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}}],
    }).create(SERVER))
    report = DiagnosticReport(DiagnosticReport({
        "status": "final", "subject": subject, "issued": "2024-05-06T12:00:00.000-04:00",
        "code": {"text": "CT head"}, "imagingStudy": [{"reference": f"ImagingStudy/{study.id}"}],
        "presentedForm": [{"contentType": "text/plain", "data": "Tm8gYWN1dGUgZmluZGluZ3Mu"}],
    }).create(SERVER))
    assert ImagingStudy.read(study.id, SERVER).series[0].modality.code == "CT"
    assert DiagnosticReport.read(report.id, SERVER).issued.isostring.startswith("2024-05-06T12:00:00")


@check("instance history is a Bundle of both versions")
def history():
    bundle = Bundle.read_from(f"Patient/{STATE['patient'].id}/_history", SERVER)
    assert bundle.type == "history"
    versions = [entry.resource.meta.versionId for entry in bundle.entry]
    assert versions == ["2", "1"], versions


@check("errors are OperationOutcomes")
def errors():
    response = HTTP.post(BASE + "Patient", data='{"resourceType":', headers={"Content-Type": "application/fhir+json"})
    assert response.status_code == 400, response.status_code
    outcome = OperationOutcome(response.json())
    assert outcome.issue[0].severity == "error"
    missing = HTTP.get(BASE + "Patient/not-there")
    assert missing.status_code == 404
    OperationOutcome(missing.json())


@check("delete the Patient; reading it is 410 Gone")
def delete_patient():
    STATE["patient"].delete(SERVER)
    response = HTTP.get(BASE + f"Patient/{STATE['patient'].id}")
    assert response.status_code == 410, response.status_code
    OperationOutcome(response.json())


failed = sum(1 for _, error in RESULTS if error is not None)
print(f"{len(RESULTS) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
