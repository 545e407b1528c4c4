#!/usr/bin/env python3
"""One-off converter of the FHIRPath suite's XML inputs (xml/*.xml) to FHIR JSON (input/*.json).

Array-ness and JSON primitive types come from the official R4 fhir.schema.json.
Usage: python3 convert_xml.py /path/to/fhir.schema.json
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


def prop_info(type_name, prop):
    props = schema.get(type_name, {}).get("properties", {})
    p = props.get(prop)
    if p is None:
        raise KeyError(f"{type_name}.{prop}")
    is_array = p.get("type") == "array"
    item = p["items"] if is_array else p
    if "$ref" not in item:
        # Inline primitive: the schema gives the JSON type directly.
        return is_array, {"number": "decimal", "boolean": "boolean"}.get(item.get("type"), "string")
    return is_array, item["$ref"].rsplit("/", 1)[1]


def primitive_value(type_name, text):
    if type_name == "boolean":
        return text == "true"
    if type_name in NUMBER_TYPES:
        # Numbers keep their lexical form: a marker string is unquoted after serialization.
        return NUMBER_MARK + text + NUMBER_MARK
    return text


NUMBER_MARK = "@@NUMBER@@"


def convert_resource(element):
    name = element.tag[len(NS):]
    out = {"resourceType": name}
    convert_children(element, name, out)
    return out


def convert_children(element, type_name, out):
    for attr_id in [element.get("id")]:
        if attr_id is not None and type_name not in ("Resource",):
            out["id"] = attr_id
    for child in element:
        if not isinstance(child.tag, str):
            continue
        if child.tag.startswith(XHTML):
            s = ET.tostring(child, encoding="unicode", short_empty_elements=True)
            s = s.replace("ns0:", "").replace(":ns0", "").replace("html:", "").replace(":html", "")
            out["div"] = s
            continue
        prop = child.tag[len(NS):]
        is_array, child_type = prop_info(type_name, prop)
        if child_type == "ResourceList":
            resource = next(c for c in child if isinstance(c.tag, str))
            value = convert_resource(resource)
            put(out, prop, value, is_array)
            continue
        definition = schema.get(child_type, {})
        if "properties" not in definition:
            # A primitive type: a value attribute plus optional id and extension children.
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
    """Drops `_x` arrays that hold only nulls and `x` arrays whose values all live in `_x`."""
    if isinstance(out, dict):
        for key in list(out):
            value = out[key]
            if isinstance(value, list) and all(v is None for v in value):
                del out[key]
            else:
                tidy(value)
    elif isinstance(out, list):
        for v in out:
            tidy(v)


here = Path(__file__).parent
for path in sorted((here / "xml").glob("*.xml")):
    root = ET.parse(path).getroot()
    resource = convert_resource(root)
    tidy(resource)
    text = json.dumps(resource, indent=2, ensure_ascii=False)
    text = re.sub('"' + NUMBER_MARK + '([^"@]*)' + NUMBER_MARK + '"', lambda m: m.group(1), text)
    (here / "input" / (path.stem + ".json")).write_text(text + "\n")
    print("converted", path.name)
