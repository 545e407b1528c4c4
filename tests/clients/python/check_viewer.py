"""Drives the web viewer at `/` and the API docs page at `/docs` of a running imaging-cdr in headless Chromium
(Debian's /usr/bin/chromium, through Playwright), after loading one patient's imaging record through the API.

The record: a patient with an MRN and a health card number (and a second patient elsewhere with the same MRN
value), an order, a CT study of two series, a report with an HTML and a PDF presentedForm that is then amended
(version 2), and an addendum (a second report with the Ontario `ext-di-addendum-of` extension). The checks find
the patient by MRN, read the timeline, open the report (its text, the PDF frame and the PDF's bytes, the earlier
version), follow the addendum, see an OperationOutcome shown as text, and find a known path on /docs. Under
`--auth smart` (an access token given) the viewer first shows the 401 and then works with the token typed in.

Usage: check_viewer.py ROOT_URL [ACCESS_TOKEN] [--screenshot PATH] [--expect-size-of PNG]
ROOT_URL is the server's root (e.g. http://127.0.0.1:8080). --screenshot saves the viewer showing the report;
--expect-size-of checks that it has the size of that PNG (the committed docs/viewer.png), so a change of the
page's layout asks for a new one (UPDATE_SCREENSHOT=1 tests/clients/run writes it).
Prints one line per check and a closing 'N passed, N failed' line; exits 1 on any failure.
"""

import argparse
import base64
import hashlib
import re
import struct
import sys
import tempfile

import requests
from playwright.sync_api import expect, sync_playwright

ARGUMENTS = argparse.ArgumentParser()
ARGUMENTS.add_argument("root")
ARGUMENTS.add_argument("token", nargs="?")
ARGUMENTS.add_argument("--screenshot")
ARGUMENTS.add_argument("--expect-size-of")
OPTIONS = ARGUMENTS.parse_args()
ROOT = OPTIONS.root.rstrip("/")
BASE = f"{ROOT}/fhir"
HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
if OPTIONS.token:
    HEADERS["Authorization"] = f"Bearer {OPTIONS.token}"
# Tall enough for the whole page with a report open.
VIEWPORT = {"width": 1120, "height": 1800}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

MRN = "https://fhir.hospital.example/mrn"
OTHER_MRN = "https://fhir.other-hospital.example/mrn"
HCN = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
PROCEDURE = {
    "system": "urn:oid:2.16.840.1.113883.3.239.99.1",
    "code": "CTHEADWO",
    "display": "CT HEAD WITHOUT CONTRAST",
}
ADDENDUM_OF = "http://ontariohealth.ca/fhir/mi/StructureDefinition/ext-di-addendum-of"
# Markup in a name the viewer must show as text, and a script it must never run.
INJECTED_NAME = 'Tremblay <img src="x" onerror="window.injected = true">'
CONCLUSION_1 = "No acute intracranial abnormality."
CONCLUSION_2 = "No acute intracranial abnormality. Small left frontal scalp haematoma."
ADDENDUM = "Compared with the CT of 2025-11-04: no change."


def minimal_pdf(lines):
    """A one-page PDF 1.4 document showing `lines` in Helvetica, with a correct cross-reference table."""
    text = " ".join(
        "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj T*" for line in lines
    )
    stream = f"BT /F1 14 Tf 16 TL 56 780 Td {text} ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
    ]
    document = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(document))
        document += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(document)
    document += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    document += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    document += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return document


def attachment(content_type, data, title):
    return {
        "contentType": content_type,
        "language": "en-CA",
        "data": base64.b64encode(data).decode(),
        "size": len(data),
        "hash": base64.b64encode(hashlib.sha1(data).digest()).decode(),
        "title": title,
    }


PDF_1 = minimal_pdf(["CT HEAD WITHOUT CONTRAST", "", f"Impression: {CONCLUSION_1}"])
PDF_2 = minimal_pdf(["CT HEAD WITHOUT CONTRAST (amended)", "", f"Impression: {CONCLUSION_2}"])
HTML_2 = f"<p>CT head without contrast: {CONCLUSION_2}</p><script>parent.document.title = 'scripted'</script>".encode()
STATE = {}
CHECKS = []
# What a check returns when what it checks is not asked for.
SKIPPED = "skipped"


def check(name):
    def register(function):
        CHECKS.append((name, function))
        return function

    return register


def fhir(method, path, body=None):
    response = requests.request(method, f"{BASE}/{path}", json=body, headers=HEADERS, timeout=30)
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


def entry(url, resource):
    kind = resource["resourceType"]
    identifier = resource["identifier"][0]
    return {
        "fullUrl": url,
        "resource": resource,
        "request": {"method": "PUT", "url": f"{kind}?identifier={identifier['system']}|{identifier['value']}"},
    }


def coded(code):
    return {"coding": [{"system": V2, "code": code}]}


@check("load the record through the API: a transaction, an amended report, an addendum")
def load_record():
    patient = {
        "resourceType": "Patient",
        "identifier": [
            {"type": coded("MR"), "system": MRN, "value": "MRN-30001"},
            {"type": coded("JHN"), "system": HCN, "value": "9000000011"},
        ],
        "name": [{"family": "Lavoie", "given": ["Martine"]}],
        "gender": "female",
        "birthDate": "1968-11-23",
    }
    other = {
        "resourceType": "Patient",
        "identifier": [{"type": coded("MR"), "system": OTHER_MRN, "value": "MRN-30001"}],
        "name": [{"family": INJECTED_NAME, "given": ["Paul"]}],
        "gender": "male",
        "birthDate": "1950-01-02",
    }
    order = {
        "resourceType": "ServiceRequest",
        "identifier": [
            {"type": coded("ACSN"), "system": "https://fhir.hospital.example/accession", "value": "ACC-30001"}
        ],
        "status": "completed",
        "intent": "order",
        "code": {"coding": [PROCEDURE]},
        "subject": {"reference": "urn:uuid:p"},
        "authoredOn": "2026-03-01T14:30:00-05:00",
    }
    series = [
        {
            "uid": f"2.25.3000{number}",
            "number": number,
            "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"},
            "numberOfInstances": count,
        }
        for number, count in [(1, 80), (2, 40)]
    ]
    study = {
        "resourceType": "ImagingStudy",
        "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:2.25.30001"}],
        "status": "available",
        "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}],
        "subject": {"reference": "urn:uuid:p"},
        "started": "2026-03-02T09:12:00-05:00",
        "basedOn": [{"reference": "urn:uuid:o"}],
        "description": "Head without contrast",
        "numberOfSeries": 2,
        "numberOfInstances": 120,
        "series": series,
    }
    report = {
        "resourceType": "DiagnosticReport",
        "identifier": [{"type": coded("FILL"), "system": "https://fhir.hospital.example/report", "value": "RPT-30001"}],
        "basedOn": [{"reference": "urn:uuid:o"}],
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "CT"}]}],
        "code": {"coding": [PROCEDURE]},
        "subject": {"reference": "urn:uuid:p"},
        "effectiveDateTime": "2026-03-02T09:12:00-05:00",
        "issued": "2026-03-02T11:40:00-05:00",
        "imagingStudy": [{"reference": "urn:uuid:s"}],
        "conclusion": CONCLUSION_1,
        "presentedForm": [attachment("application/pdf", PDF_1, "CT head report")],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry("urn:uuid:p", patient),
            entry("urn:uuid:q", other),
            entry("urn:uuid:o", order),
            entry("urn:uuid:s", study),
            entry("urn:uuid:r", report),
        ],
    }
    response = fhir("POST", "", bundle)
    locations = [item["response"]["location"].split("/_history")[0] for item in response["entry"]]
    STATE["patient"], _, STATE["order"], STATE["study"], STATE["report"] = locations
    report_id = STATE["report"].split("/")[-1]
    amended = dict(report, id=report_id, status="amended", conclusion=CONCLUSION_2, issued="2026-03-02T16:20:00-05:00")
    amended.update(
        subject={"reference": STATE["patient"]},
        basedOn=[{"reference": STATE["order"]}],
        imagingStudy=[{"reference": STATE["study"]}],
    )
    amended["presentedForm"] = [
        attachment("text/html", HTML_2, "CT head report (HTML)"),
        attachment("application/pdf", PDF_2, "CT head report"),
    ]
    written = fhir("PUT", f"DiagnosticReport/{report_id}", amended)
    assert written["meta"]["versionId"] == "2", written["meta"]
    addendum = dict(
        report,
        identifier=[{"type": coded("FILL"), "system": "https://fhir.hospital.example/report", "value": "RPT-30001-A1"}],
        extension=[{"url": ADDENDUM_OF, "valueReference": {"reference": STATE["report"]}}],
        conclusion=ADDENDUM,
        issued="2026-03-03T08:05:00-05:00",
        subject={"reference": STATE["patient"]},
        basedOn=[{"reference": STATE["order"]}],
        imagingStudy=[{"reference": STATE["study"]}],
        presentedForm=[attachment("text/plain", ADDENDUM.encode(), "Addendum")],
    )
    STATE["addendum"] = "DiagnosticReport/" + fhir("POST", "DiagnosticReport", addendum)["id"]


@check("the viewer page names the server and its version from /fhir/metadata, and links to the API")
def server_name(page):
    capabilities = requests.get(f"{BASE}/metadata", timeout=30).json()
    page.goto(f"{ROOT}/")
    expect(page.locator("#server-name")).to_have_text("imaging-cdr")
    expect(page.locator("#server-version")).to_have_text(f"version {capabilities['software']['version']}")
    links = page.locator("header nav a")
    expect(links).to_have_text(["/fhir/metadata", "/docs", "/openapi.json"])
    hrefs = [links.nth(index).evaluate("(link) => link.href") for index in range(3)]
    assert hrefs == [f"{ROOT}/fhir/metadata", f"{ROOT}/docs", f"{ROOT}/openapi.json"], hrefs


@check("an OperationOutcome from the server is shown as text")
def shows_outcome(page):
    if OPTIONS.token:
        # Without the token the server refuses: 401 and its OperationOutcome.
        page.fill("#identifier", "MRN-30001")
        page.click("#find button[type=submit]")
        expect(page.locator("#error strong")).to_have_text(
            re.compile(r"^The server answered 401 Unauthorized to fhir/Patient\?identifier=MRN-30001")
        )
        expect(page.locator("#error li")).to_have_count(1)
        page.click("#access summary")
        page.fill("#token", OPTIONS.token)
    page.fill("#identifier", "x" * 17000)
    page.click("#find button[type=submit]")
    expect(page.locator("#error li")).to_have_text(
        "error (too-costly): search parameter 'identifier' exceeds the limit of 16384 bytes per parameter value (max_value_bytes)"
    )
    expect(page.locator("#error strong")).to_contain_text(
        "The server answered 400 Bad Request to fhir/Patient?identifier=xxx"
    )


@check("a bare MRN value matches two patients; markup in a name is shown as text, never run")
def pick_patient(page):
    page.fill("#identifier", "MRN-30001")
    page.click("#find button[type=submit]")
    expect(page.locator("#error")).to_be_hidden()
    choices = page.locator("#patient-list li")
    expect(choices).to_have_count(2)
    expect(page.locator("#patient-list")).to_contain_text(f"Paul {INJECTED_NAME}")
    expect(page.locator("#patient-list img")).to_have_count(0)
    assert page.evaluate("window.injected") is None, "the injected handler ran"
    page.locator("#patient-list li", has_text="Martine Lavoie").get_by_role("button").click()
    expect(page.locator("#patient-name")).to_have_text("Martine Lavoie")
    expect(page.locator("#patient-facts")).to_have_text("female, born 1968-11-23")


@check(
    "system|value finds the one patient; the timeline lists the addendum, the report, the study and the order, newest first"
)
def timeline(page):
    page.fill("#identifier", f"{MRN}|MRN-30001")
    page.click("#find button[type=submit]")
    expect(page.locator("#patients")).to_be_hidden()
    expect(page.locator("#patient-name")).to_have_text("Martine Lavoie")
    entries = page.locator("#timeline li.entry")
    expect(entries).to_have_count(4)
    expect(entries.locator("time")).to_have_text(
        [
            "2026-03-03 08:05:00-05:00",
            "2026-03-02 16:20:00-05:00",
            "2026-03-02 09:12:00-05:00",
            "2026-03-01 14:30:00-05:00",
        ]
    )
    expect(entries.locator(".kind")).to_have_text(["Report", "Report", "Study", "Order"])
    expect(entries.locator(".title")).to_have_text(
        ["CT HEAD WITHOUT CONTRAST", "CT HEAD WITHOUT CONTRAST", "CT Head without contrast", "CT HEAD WITHOUT CONTRAST"]
    )
    expect(entries.locator(".facts")).to_have_text(
        [
            f"final · addendum to CT HEAD WITHOUT CONTRAST · {ADDENDUM}",
            f"amended · {CONCLUSION_2}",
            "available · 2 series · 120 instances",
            "completed · accession ACC-30001",
        ]
    )


def download(page, link):
    with page.expect_download() as started:
        link.click()
    return open(started.value.path(), "rb").read()


@check("open the report: status, code, issued, conclusion, the HTML form sandboxed and the PDF in a blob: frame")
def open_report(page):
    report_id = STATE["report"].split("/")[-1]
    page.locator(f"#timeline li[data-id='{report_id}'] button.title").click()
    expect(page.locator("#report-title")).to_have_text("CT HEAD WITHOUT CONTRAST")
    facts = page.locator("#report-facts")
    expect(facts.locator("dt")).to_have_text(
        ["Status", "Code", "Category", "Issued", "Effective", "Version", "Orders", "Studies"]
    )
    expect(facts.locator("dd").nth(0)).to_have_text("amended")
    expect(facts.locator("dd").nth(3)).to_have_text("2026-03-02 16:20:00-05:00")
    expect(facts.locator("dd").nth(5)).to_have_text(re.compile(r"^2, written \d{4}-\d\d-\d\d "))
    expect(facts.locator("dd").nth(6)).to_have_text("CT HEAD WITHOUT CONTRAST (accession ACC-30001)")
    expect(facts.locator("dd").nth(7)).to_have_text("CT 2026-03-02 09:12:00-05:00")
    expect(page.locator("#report-conclusion")).to_have_text(CONCLUSION_2)
    html_frame = page.locator("#report-forms iframe.html")
    expect(html_frame).to_have_attribute("sandbox", "")
    expect(page.frame_locator("#report-forms iframe.html").locator("p")).to_have_text(
        f"CT head without contrast: {CONCLUSION_2}"
    )
    assert page.title() == "imaging-cdr", "the report's HTML ran a script"
    pdf_frame = page.locator("#report-forms iframe.pdf")
    expect(pdf_frame).to_have_count(1)
    source = pdf_frame.get_attribute("src")
    assert source.startswith(f"blob:{ROOT}/"), source
    pdf_link = page.locator("#report-forms a", has_text="application/pdf")
    expect(pdf_link).to_have_text(f"Download (application/pdf, {len(PDF_2)} bytes)")
    assert pdf_link.get_attribute("href") == source.split("#")[0]
    assert download(page, pdf_link) == PDF_2, "the frame's PDF is the amended version's"
    # Chromium's own PDF viewer, in the frame, read the document: one page.
    expect(pdf_viewer(page).locator("viewer-page-selector #pagelength")).to_have_text("1")


def pdf_viewer(page):
    """The frame of Chromium's PDF viewer, once the PDF frame has opened it (within 10 s)."""
    for _ in range(200):
        viewer = next((frame for frame in page.frames if frame.url.startswith("chrome-extension://")), None)
        if viewer is not None:
            return viewer
        page.wait_for_timeout(50)
    raise AssertionError(f"no PDF viewer in the frames {[frame.url for frame in page.frames]}")


@check("the report's versions: the amended current one and the earlier final one, which opens")
def versions(page):
    rows = page.locator("#report-versions tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("td").nth(0)).to_have_text("2 (current)")
    expect(rows.nth(0).locator("td").nth(2)).to_have_text("amended")
    expect(rows.nth(1).locator("td").nth(2)).to_have_text("final")
    expect(rows.nth(1).locator("td").nth(3)).to_have_text(CONCLUSION_1)
    expect(page.locator("#report-addenda li")).to_have_text(
        [re.compile(f"^CT HEAD WITHOUT CONTRAST final · 2026-03-03 08:05:00-05:00 · {re.escape(ADDENDUM)}$")]
    )
    if OPTIONS.screenshot:
        # The whole page fits the viewport: a full-page capture would resize it, and the PDF viewer redraw.
        page.evaluate("window.scrollTo(0, 0)")
        height = page.evaluate("Math.ceil(document.querySelector('main').getBoundingClientRect().bottom)")
        assert height <= VIEWPORT["height"], f"the page is {height} px high"
        page.screenshot(path=OPTIONS.screenshot, clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height})
    rows.nth(1).get_by_role("button", name="1").click()
    expect(page.locator("#report-version-note")).to_contain_text("An earlier version: version 1 of 2, written ")
    expect(page.locator("#report-facts dd").nth(0)).to_have_text("final")
    expect(page.locator("#report-conclusion")).to_have_text(CONCLUSION_1)
    expect(page.locator("#report-forms iframe.html")).to_have_count(0)
    assert download(page, page.locator("#report-forms a", has_text="application/pdf")) == PDF_1
    page.get_by_role("button", name="Show the current version").click()
    expect(page.locator("#report-conclusion")).to_have_text(CONCLUSION_2)
    expect(page.locator("#report-version-note")).to_be_hidden()


@check("the addendum opens from the report, names the report it adds to, and shows its text")
def addendum(page):
    page.locator("#report-addenda button").click()
    expect(page.locator("#report-conclusion")).to_have_text(ADDENDUM)
    expect(page.locator("#report-facts dt").last).to_have_text("Addendum to")
    expect(page.locator("#report-facts dd").last).to_have_text(
        "CT HEAD WITHOUT CONTRAST, issued 2026-03-02 16:20:00-05:00"
    )
    expect(page.locator("#report-forms pre")).to_have_text(ADDENDUM)
    page.locator("#report-facts dd").last.get_by_role("button").click()
    expect(page.locator("#report-conclusion")).to_have_text(CONCLUSION_2)


@check("the screenshot has the size of the committed one (else: UPDATE_SCREENSHOT=1 tests/clients/run)")
def screenshot_size(page):
    if not (OPTIONS.screenshot and OPTIONS.expect_size_of):
        return SKIPPED

    def size(path):
        with open(path, "rb") as image:
            header = image.read(24)
        assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
        return struct.unpack(">II", header[16:24])

    assert size(OPTIONS.screenshot) == size(OPTIONS.expect_size_of), (
        size(OPTIONS.screenshot),
        size(OPTIONS.expect_size_of),
    )


@check("/docs renders /openapi.json: the read of Patient and the viewer's own route appear")
def docs(page):
    page.goto(f"{ROOT}/docs")
    read = page.locator("details[data-path='/fhir/Patient/{id}']", has_text="GET")
    expect(read.locator("summary")).to_have_text(re.compile(r"^GET/fhir/Patient/\{id\}\s+read \(Patient\)$"))
    expect(page.locator("details[data-path='/'] summary")).to_have_text(
        re.compile(r"^GET/\s+the imaging record viewer$")
    )


def main():
    failed = 0
    skipped = 0
    violations = []
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS, viewport=VIEWPORT, accept_downloads=True
        )
        page = context.new_page()
        page.on(
            "console",
            lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
        )
        page.on("pageerror", lambda error: violations.append(f"page error: {error}"))
        for name, function in CHECKS:
            try:
                outcome = function() if function is load_record else function(page)
                if outcome == SKIPPED:
                    skipped += 1
                    print(f"skip {name}")
                else:
                    print(f"ok   {name}")
            except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the run
                failed += 1
                print(f"FAIL {name}: {error!r}")
        context.close()
    if violations:
        failed += 1
        print(f"FAIL no Content-Security-Policy violation or script error: {violations!r}")
    else:
        print("ok   no Content-Security-Policy violation or script error")
    print(f"{len(CHECKS) + 1 - failed - skipped} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


sys.exit(main())
