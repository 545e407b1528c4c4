"""Drives a running imaging-cdr in FHIR XML with `fhir.resources` (6.4.0: FHIR R4 4.0.1 models, with XML
parsing and writing on lxml), an implementation of R4's XML form that nobody here wrote.

The client writes a Patient and a DiagnosticReport as XML of its own making; the server must read them, and
answer reads, a search Bundle and an error as XML that the client's R4 models parse (they reject unknown
elements and wrongly typed values), with the values the client sent.

Usage: python check_fhir_resources_xml.py BASE_URL [ACCESS_TOKEN]   (e.g. http://127.0.0.1:8080/fhir)
Prints one line per check and a closing 'N passed, N failed' line; exits 1 on any failure.
"""

import sys

import fhir.resources
import requests
from fhir.resources.bundle import Bundle
from fhir.resources.diagnosticreport import DiagnosticReport
from fhir.resources.location import Location
from fhir.resources.operationoutcome import OperationOutcome
from fhir.resources.patient import Patient

BASE = sys.argv[1].rstrip("/") + "/"
HTTP = requests.Session()
if len(sys.argv) > 2:
    HTTP.headers["Authorization"] = f"Bearer {sys.argv[2]}"
XML = "application/fhir+xml"
RESULTS = []
STATE = {}


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


def post_xml(path, resource):
    body = resource.xml().encode("utf-8")
    return HTTP.post(BASE + path, data=body, headers={"Content-Type": XML, "Accept": XML})


def parsed(model, response):
    assert response.headers["Content-Type"].startswith(XML), response.headers["Content-Type"]
    return model.parse_raw(response.content, content_type="text/xml")


@check("the models are R4 (4.0.1)")
def models_are_r4():
    assert fhir.resources.__fhir_version__ == "4.0.1", fhir.resources.__fhir_version__


@check("a Patient written by the client in XML is created, answered in XML")
def create_patient():
    patient = Patient.parse_obj({
        "resourceType": "Patient",
        "text": {"status": "generated",
                 "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Ada <b>Lovelace</b></p></div>'},
        "identifier": [{"system": "http://hospital.example/mrn", "value": "XML-1"}],
        "name": [{"family": "Lovelace", "given": ["Ada", "Augusta"]}],
        "gender": "female",
        "birthDate": "1815-12-10",
    })
    response = post_xml("Patient", patient)
    assert response.status_code == 201, (response.status_code, response.text)
    created = parsed(Patient, response)
    assert created.id and created.meta.versionId == "1", created.meta
    assert created.name[0].given == ["Ada", "Augusta"], created.name
    assert "<b>Lovelace</b>" in created.text.div, created.text.div
    STATE["patient"] = created.id


@check("a DiagnosticReport written in XML is read back as XML with the same values")
def report_round_trip():
    report = DiagnosticReport.parse_obj({
        "resourceType": "DiagnosticReport",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "24627-2"}], "text": "CT chest"},
        "subject": {"reference": f"Patient/{STATE['patient']}"},
        "effectiveDateTime": "2026-11-20T09:30:00-05:00",
        "issued": "2026-11-20T10:00:00.000-05:00",
        "conclusion": "No acute findings.\nFollow-up in 12 months.",
    })
    response = post_xml("DiagnosticReport", report)
    assert response.status_code == 201, (response.status_code, response.text)
    report_id = parsed(DiagnosticReport, response).id
    read = HTTP.get(f"{BASE}DiagnosticReport/{report_id}", headers={"Accept": XML})
    assert read.status_code == 200, read.text
    assert read.headers["ETag"] == 'W/"1"', read.headers
    back = parsed(DiagnosticReport, read)
    assert back.conclusion == "No acute findings.\nFollow-up in 12 months.", repr(back.conclusion)
    assert back.subject.reference == f"Patient/{STATE['patient']}", back.subject
    assert back.code.coding[0].code == "24627-2"
    assert back.effectiveDateTime.isoformat() == "2026-11-20T09:30:00-05:00", back.effectiveDateTime
    STATE["report"] = report_id


@check("decimals sent in XML keep their digits, which the client's parser reads as written")
def decimals():
    # The client's XML writer drops trailing zeros (it writes 43.65), so this body is written by hand.
    body = (b'<Location xmlns="http://hl7.org/fhir"><name value="Radiology"/><position>'
            b'<longitude value="-79.3900"/><latitude value="43.6500"/></position></Location>')
    response = HTTP.post(BASE + "Location", data=body, headers={"Content-Type": XML, "Accept": XML})
    assert response.status_code == 201, (response.status_code, response.text)
    location_id = parsed(Location, response).id
    back = parsed(Location, HTTP.get(f"{BASE}Location/{location_id}", headers={"Accept": XML}))
    assert str(back.position.latitude) == "43.6500", repr(back.position.latitude)
    assert str(back.position.longitude) == "-79.3900", repr(back.position.longitude)
    assert '"latitude":43.6500' in HTTP.get(f"{BASE}Location/{location_id}").text


@check("a search Bundle with an _include, as XML, parses with the reports and their patient")
def search_bundle():
    response = HTTP.get(
        f"{BASE}DiagnosticReport",
        params={"subject": f"Patient/{STATE['patient']}", "_include": "DiagnosticReport:subject",
                "_format": "xml"},
    )
    assert response.status_code == 200, response.text
    bundle = parsed(Bundle, response)
    assert bundle.type == "searchset", bundle.type
    kinds = sorted((entry.resource.resource_type, entry.search.mode) for entry in bundle.entry)
    assert kinds == [("DiagnosticReport", "match"), ("Patient", "include")], kinds
    report = next(e.resource for e in bundle.entry if e.resource.resource_type == "DiagnosticReport")
    assert report.id == STATE["report"], report.id
    assert any(link.relation == "self" for link in bundle.link), bundle.link


@check("an error is an XML OperationOutcome")
def error_outcome():
    response = HTTP.get(f"{BASE}DiagnosticReport/does-not-exist", headers={"Accept": XML})
    assert response.status_code == 404, response.status_code
    outcome = parsed(OperationOutcome, response)
    assert outcome.issue[0].code == "not-found", outcome.issue[0].code


@check("XML that is not FHIR's is refused with an XML OperationOutcome saying where")
def refused():
    body = b'<Patient xmlns="http://hl7.org/fhir"><gender value="female"/><active value="true"/></Patient>'
    response = HTTP.post(BASE + "Patient", data=body, headers={"Content-Type": XML, "Accept": XML})
    assert response.status_code == 400, response.status_code
    outcome = parsed(OperationOutcome, response)
    assert "out of order" in outcome.issue[0].diagnostics, outcome.issue[0].diagnostics


failed = [name for name, error in RESULTS if error is not None]
print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
