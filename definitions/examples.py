#!/usr/bin/env python3
"""Builds crates/cdr-validation/test_data/r4-examples/examples.tgz from the official hl7.fhir.r4.examples 4.0.1
package: every example of a resource type this server serves (the file name starts with the type), unchanged.

Usage: python3 definitions/examples.py path/to/hl7.fhir.r4.examples-4.0.1.tgz \
           crates/cdr-validation/test_data/r4-examples/examples.tgz

`Bundle-searchParams.json` is left out: it is the official search-parameters.json, which the repository holds
once, as crates/cdr-search/data/search-parameters.json (the test reads it from there).
The output is deterministic (sorted names, fixed mtime).
"""
import gzip
import io
import sys
import tarfile

SERVED = {"AuditEvent", "Binary", "Bundle", "DiagnosticReport", "DocumentReference", "Encounter", "Endpoint",
          "ImagingStudy", "Location", "OperationOutcome", "Organization", "Patient", "Practitioner",
          "PractitionerRole", "Provenance", "ServiceRequest"}
VENDORED_ELSEWHERE = {"Bundle-searchParams.json"}


def main(src, dst):
    files = {}
    with tarfile.open(src, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name.split("/", 1)[-1]
            if not member.isfile() or "/" in name or not name.endswith(".json"):
                continue
            if name.split("-")[0] in SERVED and name not in VENDORED_ELSEWHERE:
                files[name] = tar.extractfile(member).read()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    with open(dst, "wb") as out:
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
            gz.write(raw.getvalue())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
