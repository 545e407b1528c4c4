#!/usr/bin/env python3
"""One-off converter of the HL7 FHIRPath Patch tests (fhir-patch-tests.xml) to fhir-patch-tests.json.

Each case becomes {"name", "input", "patch", and "output" or "error"}, the resources in FHIR JSON. Array-ness
and JSON primitive types come from the official R4 fhir.schema.json, as in cdr-fhirpath's convert_xml.py.
Usage: python3 convert.py /path/to/fhir.schema.json
"""
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

NS = "{http://hl7.org/fhir}"
XHTML = "{http://www.w3.org/1999/xhtml}"
schema = json.load(open(sys.argv[1]))["definitions"]
NUMBER_TYPES = {"decimal", "integer", "positiveInt", "unsignedInt"}
NUMBER_MARK = "@@NUMBER@@"


def prop_info(type_name, prop):
    p = schema.get(type_name, {}).get("properties", {})[prop]
    is_array = p.get("type") == "array"
    item = p["items"] if is_array else p
    if "$ref" not in item:
        return is_array, {"number": "decimal", "boolean": "boolean"}.get(item.get("type"), "string")
    return is_array, item["$ref"].rsplit("/", 1)[1]


def primitive_value(type_name, text):
    if type_name == "boolean":
        return text == "true"
    if type_name in NUMBER_TYPES:
        return NUMBER_MARK + text + NUMBER_MARK
    return text


def convert_resource(element):
    name = element.tag[len(NS):]
    out = {"resourceType": name}
    convert_children(element, name, out)
    return out


def convert_children(element, type_name, out):
    if element.get("id") is not None:
        out["id"] = element.get("id")
    for child in element:
        if not isinstance(child.tag, str):
            continue
        if child.tag.startswith(XHTML):
            ET.register_namespace("", "http://www.w3.org/1999/xhtml")
            out["div"] = ET.tostring(child, encoding="unicode", short_empty_elements=True).strip()
            continue
        prop = child.tag[len(NS):]
        is_array, child_type = prop_info(type_name, prop)
        if child_type == "ResourceList":
            resource = next(c for c in child if isinstance(c.tag, str))
            put(out, prop, convert_resource(resource), is_array)
            continue
        if "properties" not in schema.get(child_type, {}):
            value = child.get("value")
            extras = {}
            if child.get("id") is not None:
                extras["id"] = child.get("id")
            exts = [c for c in child if isinstance(c.tag, str) and c.tag == NS + "extension"]
            if exts:
                extras["extension"] = [convert_complex(e, "Extension") for e in exts]
            put(out, prop, None if value is None else primitive_value(child_type, value), is_array)
            put(out, "_" + prop, extras or None, is_array)
            continue
        put(out, prop, convert_complex(child, child_type), is_array)


def convert_complex(element, type_name):
    out = {}
    if element.get("url") is not None:
        out["url"] = element.get("url")
    convert_children(element, type_name, out)
    return out


def put(out, prop, value, is_array):
    if is_array:
        out.setdefault(prop, []).append(value)
    elif value is not None:
        out[prop] = value


def tidy(out):
    if isinstance(out, dict):
        for key in list(out):
            if isinstance(out[key], list) and all(v is None for v in out[key]):
                del out[key]
            else:
                tidy(out[key])
    elif isinstance(out, list):
        for v in out:
            tidy(v)


def resource_in(case, tag):
    holder = case.find(tag)
    element = next(c for c in holder if isinstance(c.tag, str))
    resource = convert_resource(element)
    tidy(resource)
    return resource


here = Path(__file__).parent
cases = []
for case in ET.parse(here / "fhir-patch-tests.xml").getroot():
    converted = {"name": case.get("name"), "input": resource_in(case, "input"), "patch": resource_in(case, "diff")}
    error = case.find("error")
    if error is not None:
        converted["error"] = error.get("msg")
    else:
        converted["output"] = resource_in(case, "output")
    cases.append(converted)
text = json.dumps(cases, indent=2, ensure_ascii=False)
text = re.sub('"' + NUMBER_MARK + '([^"@]*)' + NUMBER_MARK + '"', lambda m: m.group(1), text)
(here / "fhir-patch-tests.json").write_text(text + "\n")
print("converted", len(cases), "cases")
