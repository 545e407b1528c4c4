"""Validates the server's /openapi.json with openapi-spec-validator, an implementation independent of the
utoipa types that build it (OpenAPI 3.1 schema and its semantic checks: unique operation ids, path
parameters declared, references that resolve).

Usage: check_openapi.py ROOT_URL (the server's root, e.g. http://127.0.0.1:8080)
"""

import sys

import requests
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator


def main() -> None:
    root = sys.argv[1]
    response = requests.get(f"{root}/openapi.json", timeout=30)
    response.raise_for_status()
    document = response.json()
    assert document["openapi"].startswith("3.1."), document["openapi"]
    validate(document, cls=OpenAPIV31SpecValidator)
    operations = sum(
        1 for item in document["paths"].values() for method in item if method in {"get", "post", "put", "patch", "delete"}
    )
    assert "/fhir/Patient/{id}" in document["paths"], sorted(document["paths"])
    print(f"openapi.json: valid OpenAPI {document['openapi']}, {len(document['paths'])} paths, {operations} operations")


if __name__ == "__main__":
    main()
