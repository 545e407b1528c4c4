#!/usr/bin/env python3
"""Builds hl7.fhir.r4.core-4.0.1-trimmed.tgz from the official hl7.fhir.r4.core 4.0.1 package.

Usage: python3 definitions/trim.py path/to/hl7.fhir.r4.core-4.0.1.tgz definitions/hl7.fhir.r4.core-4.0.1-trimmed.tgz

Keeps every StructureDefinition, ValueSet and CodeSystem, minus documentation (text, descriptions,
mappings, displays, definitions) and minus differentials of definitions that carry a snapshot.
Writes a package/.index.json so that loaders can index the files without parsing them.
The output is deterministic (sorted names, fixed mtime).
"""
import io, json, sys, tarfile, gzip

KEEP_SD = ["resourceType", "id", "url", "version", "name", "status", "kind", "abstract", "context",
           "type", "baseDefinition", "derivation", "snapshot", "differential"]
KEEP_ED = ["id", "path", "sliceName", "min", "max", "base", "contentReference", "type", "binding",
           "constraint", "slicing", "maxLength", "mustSupport", "isModifier", "isSummary"]
ED_PREFIXES = ("fixed", "pattern", "minValue", "maxValue")
TYPE_EXT = {"http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"}
CONCEPT_PROPS = {"parent", "child", "subsumedBy", "notSelectable", "status", "inactive", "deprecated"}


def trim_element(ed):
    out = {}
    for key, value in ed.items():
        if key in KEEP_ED or key.startswith(ED_PREFIXES):
            out[key] = value
    if "type" in out:
        types = []
        for t in out["type"]:
            nt = {k: v for k, v in t.items() if k in ("code", "profile", "targetProfile", "aggregation")}
            exts = [e for e in t.get("extension", []) if e.get("url") in TYPE_EXT]
            if exts:
                nt["extension"] = exts
            types.append(nt)
        out["type"] = types
    if "binding" in out:
        out["binding"] = {k: v for k, v in out["binding"].items() if k in ("strength", "valueSet")}
    if "constraint" in out:
        out["constraint"] = [{k: v for k, v in c.items() if k in ("key", "severity", "human", "expression", "source")}
                             for c in out["constraint"]]
    if "base" in out:
        out["base"] = {k: v for k, v in out["base"].items() if k in ("path", "min", "max")}
    return out


def trim_sd(sd):
    out = {k: sd[k] for k in KEEP_SD if k in sd}
    if "snapshot" in out:
        out.pop("differential", None)
        out["snapshot"] = {"element": [trim_element(e) for e in sd["snapshot"]["element"]]}
    elif "differential" in out:
        out["differential"] = {"element": [trim_element(e) for e in sd["differential"]["element"]]}
    return out


def trim_concepts(concepts):
    out = []
    for c in concepts:
        nc = {"code": c["code"]}
        props = [p for p in c.get("property", []) if p.get("code") in CONCEPT_PROPS]
        if props:
            nc["property"] = props
        if "concept" in c:
            nc["concept"] = trim_concepts(c["concept"])
        out.append(nc)
    return out


def trim_cs(cs):
    out = {k: cs[k] for k in ("resourceType", "id", "url", "version", "name", "status", "caseSensitive",
                              "valueSet", "hierarchyMeaning", "content") if k in cs}
    if "concept" in cs:
        out["concept"] = trim_concepts(cs["concept"])
    return out


def trim_include(inc):
    out = {k: inc[k] for k in ("system", "version", "filter", "valueSet") if k in inc}
    if "concept" in inc:
        out["concept"] = [{"code": c["code"]} for c in inc["concept"]]
    return out


def trim_vs(vs):
    out = {k: vs[k] for k in ("resourceType", "id", "url", "version", "name", "status") if k in vs}
    if "compose" in vs:
        compose = {k: vs["compose"][k] for k in ("inactive",) if k in vs["compose"]}
        for part in ("include", "exclude"):
            if part in vs["compose"]:
                compose[part] = [trim_include(i) for i in vs["compose"][part]]
        out["compose"] = compose
    elif "expansion" in vs:
        out["expansion"] = {"contains": [{k: c[k] for k in ("system", "code") if k in c}
                                         for c in vs["expansion"].get("contains", [])]}
    return out


def main(src, dst):
    files = {}
    index = []
    with tarfile.open(src, "r:gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            name = member.name.split("/", 1)[-1]
            if not member.isfile() or not name.endswith(".json") or "/" in name:
                continue
            data = json.load(tar.extractfile(member))
            if name == "package.json":
                data["name"] = data["name"]
                data["description"] = "Trimmed copy of hl7.fhir.r4.core 4.0.1 (validation definitions only)"
                files[name] = data
                continue
            rt = data.get("resourceType")
            if rt == "StructureDefinition":
                data = trim_sd(data)
            elif rt == "CodeSystem":
                data = trim_cs(data)
            elif rt == "ValueSet":
                data = trim_vs(data)
            else:
                continue
            files[name] = data
            entry = {"filename": name, "resourceType": rt, "id": data.get("id"), "url": data.get("url")}
            if "version" in data:
                entry["version"] = data["version"]
            if rt == "StructureDefinition":
                entry["kind"] = data.get("kind")
                entry["type"] = data.get("type")
            index.append(entry)
    files[".index.json"] = {"index-version": 1, "files": index}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            body = json.dumps(files[name], separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            info = tarfile.TarInfo("package/" + name)
            info.size = len(body)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(body))
    with open(dst, "wb") as out:
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
            gz.write(raw.getvalue())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
