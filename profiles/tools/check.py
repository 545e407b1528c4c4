#!/usr/bin/env python3
"""Static checks for the Ontario MI conformance resources in profiles/.

Usage: python3 profiles/tools/check.py [--core PATH/TO/hl7.fhir.r4.core-4.0.1.tgz]
           [--search-parameters PATH/TO/search-parameters.json] [--schema PATH/TO/fhir.schema.json]

The R4 definitions default to the repository's own copies: the trimmed core package in definitions/ and the
official search-parameters.json Bundle in crates/cdr-search/data/ (the full official package works as well).
The JSON-schema pass runs only with --schema (the official R4 fhir.schema.json, not vendored) and the
`jsonschema` module installed.

Checks (stdlib only):
  * every *.json under profiles/ parses;
  * StructureDefinitions: fhirVersion 4.0.1, status draft, derivation constraint, differential only,
    baseDefinition resolvable, every differential path starts with the type and exists in the base type
    (walking into data types), id/path agree, slices have a slicing declared, our elements carry a
    comment that starts with "Guide:" or "Reading:", constraint keys are unique;
  * every binding valueSet, type profile and targetProfile resolves to profiles/, profiles/ca-baseline/
    or the core package (CA Baseline's own unresolvable references are listed, not failed);
  * ValueSets: enumerated codes exist in the code system when we have it (core package or profiles/);
  * SearchParameters: base, type, code, expression paths, component definitions, derivedFrom;
  * examples: meta.profile known, every invalid example has a one-line .expected.txt, every profile
    has at least one valid and two invalid examples; optionally each example against fhir.schema.json.
"""
import argparse
import json
import os
import re
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REPO = os.path.dirname(ROOT)
DEFAULT_CORE = os.path.join(REPO, 'definitions', 'hl7.fhir.r4.core-4.0.1-trimmed.tgz')
DEFAULT_SEARCH_PARAMETERS = os.path.join(REPO, 'crates', 'cdr-search', 'data', 'search-parameters.json')

errors = []
notes = []


def err(msg):
    errors.append(msg)


def load_core(path):
    core = {}
    with tarfile.open(path) as tf:
        for m in tf.getmembers():
            if not m.name.endswith('.json') or not m.isfile():
                continue
            base = os.path.basename(m.name)
            if not base.split('-')[0] in ('StructureDefinition', 'ValueSet', 'CodeSystem', 'SearchParameter'):
                continue
            d = json.load(tf.extractfile(m))
            if 'url' in d:
                core[d['url']] = d
    return core


def load_search_parameters(path, core):
    """Adds the SearchParameters of a Bundle (the official search-parameters.json) to `core`."""
    with open(path) as f:
        bundle = json.load(f)
    for entry in bundle.get('entry', []):
        d = entry.get('resource', {})
        if d.get('resourceType') == 'SearchParameter' and 'url' in d:
            core.setdefault(d['url'], d)


def load_local():
    local, files = {}, []
    for dirpath, _, names in os.walk(ROOT):
        for n in sorted(names):
            if not n.endswith('.json'):
                continue
            p = os.path.join(dirpath, n)
            try:
                with open(p) as f:
                    d = json.load(f)
            except ValueError as e:
                err('%s: not well-formed JSON: %s' % (p, e))
                continue
            files.append((p, d))
            if 'examples' not in p.split(os.sep) and 'url' in d:
                local[d['url']] = (p, d)
    return local, files


def strip_version(url):
    return url.split('|')[0]


class Resolver:
    def __init__(self, core, local):
        self.core, self.local = core, local

    def get(self, url):
        url = strip_version(url)
        if url in self.local:
            return self.local[url][1]
        return self.core.get(url)

    def exists(self, url):
        return self.get(url) is not None

    def type_sd(self, code):
        return self.core.get('http://hl7.org/fhir/StructureDefinition/' + code)

    def path_exists(self, path):
        """Does `path` (no slice names) exist in the R4 type tree?"""
        segs = path.split('.')
        sd = self.type_sd(segs[0])
        if sd is None:
            return False
        return self._walk(sd, segs[0], segs[1:])

    @staticmethod
    def _choice(ids, cur, seg):
        for pth, el in ids.items():
            if pth.startswith(cur + '.') and pth.endswith('[x]') and pth.count('.') == cur.count('.') + 1:
                stem = pth.rsplit('.', 1)[1][:-3]
                for t in el.get('type', []):
                    if seg == stem + t['code'][0].upper() + t['code'][1:]:
                        return pth, t['code']
        return None

    def _walk(self, sd, prefix, rest):
        ids = {e['path']: e for e in sd['snapshot']['element']}
        cur = prefix
        for i, seg in enumerate(rest):
            cand = cur + '.' + seg
            if cand in ids:
                cur = cand
                continue
            choice = self._choice(ids, cur, seg)
            if choice is not None:  # valueString -> value[x] restricted to string
                tsd = self.type_sd(choice[1])
                return tsd is not None and self._walk(tsd, choice[1], rest[i + 1:])
            el = ids.get(cur)
            if el is None:
                return False
            if 'contentReference' in el:
                ref = el['contentReference'].lstrip('#')
                return self._walk(sd, ref, rest[i:])
            types = [t['code'] for t in el.get('type', [])]
            if len(types) != 1:
                return False
            tsd = self.type_sd(types[0])
            if tsd is None:
                return False
            return self._walk(tsd, types[0], rest[i:])
        return True


def check_sd(p, d, res):
    name = os.path.relpath(p, ROOT)
    ours = 'ca-baseline' not in p.split(os.sep)
    for k, v in (('fhirVersion', '4.0.1'), ('derivation', 'constraint')):
        if ours and d.get(k) != v:
            err('%s: %s must be %s' % (name, k, v))
    if ours and d.get('status') != 'draft':
        err('%s: status must be draft' % name)
    if 'snapshot' in d:
        err('%s: differential only, found a snapshot' % name)
    if not res.exists(d.get('baseDefinition', '')):
        err('%s: baseDefinition %s does not resolve' % (name, d.get('baseDefinition')))
    t = d['type']
    if d.get('kind') == 'complex-type' and t == 'Extension' and ours:
        if not d.get('context'):
            err('%s: extension without context' % name)
    sliced = set()
    base = res.get(d.get('baseDefinition', ''))
    while base is not None:  # slicings declared by bases (differentials)
        for e in base.get('differential', {}).get('element', []):
            if 'slicing' in e:
                sliced.add(e['id'])
        base = res.get(base.get('baseDefinition', '')) if base.get('derivation') == 'constraint' else None
    keys = set()
    for e in d['differential']['element']:
        eid, path = e.get('id', ''), e.get('path', '')
        if not path.startswith(t) or (path != t and not path.startswith(t + '.')):
            err('%s: element %s does not start with %s' % (name, path, t))
        expect = '.'.join(part.split(':')[0] for part in eid.split('.'))
        if expect != path:
            err('%s: id %s does not match path %s' % (name, eid, path))
        if not res.path_exists(path):
            (err if ours else notes.append)('%s: path %s does not exist in R4 %s' % (name, path, t))
        if 'slicing' in e:
            sliced.add(eid)
        if 'sliceName' in e:
            owner = eid.rsplit(':', 1)[0]
            last = eid.split('.')[-1]
            sname = last.split(':', 1)[1]
            if sname != e['sliceName']:
                err('%s: %s sliceName %s does not match id' % (name, eid, e['sliceName']))
            if '/' in sname:  # re-slice: slicing on the parent slice
                owner = owner + ':' + sname.split('/')[0]
            if owner not in sliced and not path.endswith('.extension'):
                err('%s: slice %s has no slicing on %s' % (name, eid, owner))
        if ours and not (e.get('comment', '').startswith(('Guide:', 'Reading:')) or path == 'Extension.url'):
            err('%s: %s has no Guide:/Reading: comment' % (name, eid))
        b = e.get('binding', {})
        if 'valueSet' in b and not res.exists(b['valueSet']):
            (err if ours else notes.append)('%s: binding %s on %s does not resolve' % (name, b['valueSet'], eid))
        for ty in e.get('type', []):
            for u in ty.get('profile', []) + ty.get('targetProfile', []):
                if not res.exists(u):
                    (err if ours else notes.append)('%s: %s on %s does not resolve' % (name, u, eid))
        for c in e.get('constraint', []):
            for k in ('key', 'severity', 'human', 'expression'):
                if k not in c:
                    err('%s: constraint on %s lacks %s' % (name, eid, k))
            if c.get('key') in keys:
                err('%s: duplicate constraint key %s' % (name, c.get('key')))
            keys.add(c.get('key'))
            if ours and c.get('expression', '').count('(') != c.get('expression', '').count(')'):
                err('%s: unbalanced parentheses in %s' % (name, c.get('key')))


def codes_of(cs):
    out = set()

    def walk(cs_):
        for c in cs_:
            out.add(c['code'])
            walk(c.get('concept', []))
    walk(cs.get('concept', []))
    return out


def check_vs(p, d, res):
    name = os.path.relpath(p, ROOT)
    for inc in d.get('compose', {}).get('include', []):
        cs = res.get(inc['system'])
        if cs is None:
            notes.append('%s: code system %s is external (not checked)' % (name, inc['system']))
            continue
        known = codes_of(cs)
        for c in inc.get('concept', []):
            if c['code'] not in known:
                err('%s: code %s not in %s' % (name, c['code'], inc['system']))


RESOURCE_TYPES = None


def check_sp(p, d, res, core_sp_urls):
    name = os.path.relpath(p, ROOT)
    if d.get('type') not in ('number', 'date', 'string', 'token', 'reference', 'composite', 'quantity', 'uri', 'special'):
        err('%s: bad type %s' % (name, d.get('type')))
    if not re.match(r'^[A-Za-z_][A-Za-z0-9_-]*$', d.get('code', '')):
        err('%s: bad code %s' % (name, d.get('code')))
    for b in d.get('base', []):
        if res.type_sd(b) is None or res.type_sd(b).get('kind') != 'resource':
            err('%s: base %s is not a resource type' % (name, b))
    if 'expression' not in d:
        # A parameter whose values the server computes from other resources (DiagnosticReport recipient):
        # its description must say so.
        if 'no expression' not in d.get('description', ''):
            err('%s: no expression, and the description does not say why' % name)
        notes.append('%s: no expression (computed by the server)' % name)
    for alt in (d['expression'].split('|') if 'expression' in d else []):
        alt = alt.strip()
        # extension('url').value selects an extension's value: checked as the path to the extension.
        alt = re.sub(r"\.extension\('[^']+'\)\.value$", '.extension', alt)
        m = re.match(r'^([A-Za-z]+(\.[A-Za-z]+)*)$', alt)
        if not m:
            err('%s: expression branch %r is not a plain path' % (name, alt))
            continue
        if alt.split('.')[0] not in d.get('base', []):
            err('%s: expression %s does not start with a base' % (name, alt))
        if not res.path_exists(alt):
            err('%s: expression path %s does not exist' % (name, alt))
        if d.get('type') == 'composite':
            for comp in d.get('component', []):
                if comp['definition'] not in core_sp_urls:
                    err('%s: component %s unknown' % (name, comp['definition']))
                if not res.path_exists(alt + '.' + comp['expression']):
                    err('%s: component expression %s does not exist on %s' % (name, comp['expression'], alt))
    for t in d.get('target', []):
        if res.type_sd(t) is None:
            err('%s: target %s unknown' % (name, t))
    df = d.get('derivedFrom')
    if df and df.startswith('http://hl7.org/fhir/') and df not in core_sp_urls:
        err('%s: derivedFrom %s unknown' % (name, df))


def check_examples(files, res, schema_path):
    validator = None
    if schema_path:
        try:
            import jsonschema
            with open(schema_path) as f:
                schema = json.load(f)
            validator = jsonschema
        except ImportError:
            notes.append('jsonschema not installed: examples not checked against fhir.schema.json')
    counts = {}
    for p, d in files:
        if 'examples' not in p.split(os.sep):
            continue
        name = os.path.relpath(p, ROOT)
        prof = d.get('meta', {}).get('profile', [])
        if len(prof) != 1 or prof[0] not in res.local:
            err('%s: meta.profile must name one profile in profiles/' % name)
            continue
        folder = os.path.basename(os.path.dirname(p))
        kind = 'valid' if os.path.basename(p).startswith('valid') else 'invalid'
        counts.setdefault(folder, {'valid': 0, 'invalid': 0})[kind] += 1
        if kind == 'invalid':
            exp = p[:-len('.json')] + '.expected.txt'
            if not os.path.exists(exp):
                err('%s: no .expected.txt' % name)
            else:
                with open(exp) as f:
                    lines = [line for line in f.read().splitlines() if line.strip()]
                if len(lines) != 1 or not lines[0].startswith(d['resourceType']):
                    err('%s: .expected.txt must be one line starting with %s' % (name, d['resourceType']))
        if validator is not None:
            sub = dict(schema)
            sub['oneOf'] = [{'$ref': '#/definitions/' + d['resourceType']}]
            sub.pop('discriminator', None)
            for e in validator.Draft6Validator(sub).iter_errors(d):
                err('%s: schema: %s at %s' % (name, e.message[:120], '/'.join(map(str, e.absolute_path))))
    for folder, c in sorted(counts.items()):
        if c['valid'] < 1 or c['invalid'] < 2:
            err('examples/%s: needs >=1 valid and >=2 invalid, has %s' % (folder, c))
    return counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--core', default=DEFAULT_CORE)
    ap.add_argument('--search-parameters', default=DEFAULT_SEARCH_PARAMETERS)
    ap.add_argument('--schema')
    args = ap.parse_args()
    core = load_core(args.core)
    load_search_parameters(args.search_parameters, core)
    local, files = load_local()
    res = Resolver(core, local)
    core_sp_urls = {u for u, d in core.items() if d.get('resourceType') == 'SearchParameter'}
    n = {}
    for p, d in files:
        if 'examples' in p.split(os.sep):
            continue
        rt = d.get('resourceType')
        n[rt] = n.get(rt, 0) + 1
        if rt == 'StructureDefinition':
            check_sd(p, d, res)
        elif rt == 'ValueSet':
            check_vs(p, d, res)
        elif rt == 'SearchParameter':
            check_sp(p, d, res, core_sp_urls)
    counts = check_examples(files, res, args.schema)
    for m in notes:
        print('note:', m)
    print('checked:', ', '.join('%s %d' % kv for kv in sorted(n.items())),
          '| examples:', sum(c['valid'] + c['invalid'] for c in counts.values()))
    for m in errors:
        print('ERROR:', m)
    print('%d error(s)' % len(errors))
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
