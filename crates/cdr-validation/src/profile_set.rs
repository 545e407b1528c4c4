//! `ProfileSet`: the conformance resources (StructureDefinition, ValueSet, CodeSystem, SearchParameter)
//! a validation runs against, indexed by canonical URL and parsed lazily.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use crate::snapshot;
use crate::structure::{CompiledSd, str_field};
use crate::terminology::Expansion;

/// The trimmed `hl7.fhir.r4.core` 4.0.1 package (see `definitions/README.md`), compiled in.
pub const R4_CORE_PACKAGE: &[u8] =
    include_bytes!("../../../definitions/hl7.fhir.r4.core-4.0.1-trimmed.tgz");

/// Why conformance resources could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The package is not a readable gzip-compressed tar archive.
    #[error("package archive is unreadable: {0}")]
    Archive(#[source] std::io::Error),
    /// A JSON document (named) does not parse.
    #[error("{name} is not valid JSON: {source}")]
    Json {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    /// A JSON document is not a FHIR resource (no `resourceType`).
    #[error("{0} is not a FHIR resource")]
    NotAResource(String),
    /// A conformance resource has no `url`.
    #[error("{0} has no canonical url")]
    MissingUrl(String),
}

/// Which conformance resources a `ProfileSet` indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConformanceKind {
    StructureDefinition,
    ValueSet,
    CodeSystem,
    SearchParameter,
}

impl ConformanceKind {
    fn parse(resource_type: &str) -> Option<ConformanceKind> {
        match resource_type {
            "StructureDefinition" => Some(ConformanceKind::StructureDefinition),
            "ValueSet" => Some(ConformanceKind::ValueSet),
            "CodeSystem" => Some(ConformanceKind::CodeSystem),
            "SearchParameter" => Some(ConformanceKind::SearchParameter),
            _ => None,
        }
    }
}

/// Conformance resources indexed by canonical URL (`url` and `url|version`).
///
/// Later additions override earlier ones with the same canonical, so profiles loaded after the core
/// package win. Resources read from a package are kept as bytes and parsed on first use; profile
/// snapshots and ValueSet expansions are computed on first use and cached. `ProfileSet` is `Sync`:
/// one instance serves concurrent validations.
#[derive(Debug, Default)]
pub struct ProfileSet {
    entries: Vec<Entry>,
    by_canonical: HashMap<String, usize>,
}

#[derive(Debug)]
struct Entry {
    kind: ConformanceKind,
    url: String,
    raw: Option<Box<[u8]>>,
    parsed: OnceLock<Option<Arc<Value>>>,
    compiled: OnceLock<Result<Arc<CompiledSd>, String>>,
    expansion: OnceLock<Arc<Expansion>>,
}

impl ProfileSet {
    /// An empty set.
    #[must_use]
    pub fn new() -> ProfileSet {
        ProfileSet::default()
    }

    /// The base FHIR R4 definitions (the compiled-in trimmed core package).
    ///
    /// # Errors
    /// Only if the compiled-in package were corrupt.
    pub fn r4_core() -> Result<ProfileSet, LoadError> {
        ProfileSet::from_package(R4_CORE_PACKAGE)
    }

    /// A set holding the conformance resources of one FHIR package (`.tgz` bytes).
    ///
    /// # Errors
    /// When the archive or one of its JSON files cannot be read.
    pub fn from_package(package_tgz: &[u8]) -> Result<ProfileSet, LoadError> {
        let mut set = ProfileSet::new();
        set.add_package(package_tgz)?;
        Ok(set)
    }

    /// Adds the conformance resources of a FHIR package (`.tgz` bytes, files under `package/`).
    ///
    /// When the package has a `package/.index.json`, files are indexed from it and parsed lazily;
    /// otherwise every JSON file is parsed now. Other resource types are skipped.
    ///
    /// # Errors
    /// When the archive or (without an index) one of its JSON files cannot be read.
    pub fn add_package(&mut self, package_tgz: &[u8]) -> Result<(), LoadError> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(package_tgz));
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut index = None;
        for file in archive.entries().map_err(LoadError::Archive)? {
            let mut file = file.map_err(LoadError::Archive)?;
            let path = file.path().map_err(LoadError::Archive)?.to_string_lossy().into_owned();
            let Some(name) = path.strip_prefix("package/") else { continue };
            if name.contains('/') || !name.ends_with(".json") || name == "package.json" {
                continue;
            }
            let mut bytes = Vec::with_capacity(usize::try_from(file.size()).unwrap_or(0));
            file.read_to_end(&mut bytes).map_err(LoadError::Archive)?;
            if name == ".index.json" {
                let parsed: Value = serde_json::from_slice(&bytes)
                    .map_err(|source| LoadError::Json { name: path.clone(), source })?;
                index = Some(parsed);
            } else {
                files.push((name.to_owned(), bytes));
            }
        }
        let index_entries = index
            .as_ref()
            .and_then(|index| index.get("files"))
            .and_then(Value::as_array)
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|entry| Some((str_field(entry.as_object()?, "filename")?, entry)))
                    .collect::<HashMap<_, _>>()
            });
        for (name, bytes) in files {
            match &index_entries {
                Some(index_entries) => {
                    let Some(entry) = index_entries.get(name.as_str()) else { continue };
                    let Some(kind) = entry
                        .get("resourceType")
                        .and_then(Value::as_str)
                        .and_then(ConformanceKind::parse)
                    else {
                        continue;
                    };
                    let Some(url) = entry.get("url").and_then(Value::as_str) else { continue };
                    let version = entry.get("version").and_then(Value::as_str);
                    self.insert(kind, url, version, Some(bytes.into_boxed_slice()), None);
                }
                None => {
                    let value: Value = serde_json::from_slice(&bytes)
                        .map_err(|source| LoadError::Json { name: name.clone(), source })?;
                    self.add_resource(&name, value)?;
                }
            }
        }
        Ok(())
    }

    /// Adds one JSON document: a conformance resource, or a Bundle of them. Other resource types
    /// are skipped. `name` (e.g. the file name) only appears in errors.
    ///
    /// # Errors
    /// When the text is not JSON, not a resource, or a conformance resource without `url`.
    pub fn add_json(&mut self, name: &str, json: &str) -> Result<(), LoadError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|source| LoadError::Json { name: name.to_owned(), source })?;
        self.add_resource(name, value)
    }

    /// Adds one parsed resource (or a Bundle of them); see [`ProfileSet::add_json`].
    ///
    /// # Errors
    /// When the value is not a resource, or a conformance resource has no `url`.
    pub fn add_resource(&mut self, name: &str, resource: Value) -> Result<(), LoadError> {
        let Some(resource_type) = resource.get("resourceType").and_then(Value::as_str) else {
            return Err(LoadError::NotAResource(name.to_owned()));
        };
        if resource_type == "Bundle" {
            let entries =
                resource.get("entry").and_then(Value::as_array).cloned().unwrap_or_default();
            for entry in entries {
                if let Some(inner) = entry.get("resource") {
                    self.add_resource(name, inner.clone())?;
                }
            }
            return Ok(());
        }
        let Some(kind) = ConformanceKind::parse(resource_type) else { return Ok(()) };
        let Some(url) = resource.get("url").and_then(Value::as_str).map(str::to_owned) else {
            return Err(LoadError::MissingUrl(name.to_owned()));
        };
        let version = resource.get("version").and_then(Value::as_str).map(str::to_owned);
        self.insert(kind, &url, version.as_deref(), None, Some(resource));
        Ok(())
    }

    fn insert(
        &mut self,
        kind: ConformanceKind,
        url: &str,
        version: Option<&str>,
        raw: Option<Box<[u8]>>,
        parsed: Option<Value>,
    ) {
        let idx = self.entries.len();
        let parsed_cell = OnceLock::new();
        if let Some(parsed) = parsed {
            let _ = parsed_cell.set(Some(Arc::new(parsed)));
        }
        self.entries.push(Entry {
            kind,
            url: url.to_owned(),
            raw,
            parsed: parsed_cell,
            compiled: OnceLock::new(),
            expansion: OnceLock::new(),
        });
        self.by_canonical.insert(url.to_owned(), idx);
        if let Some(version) = version {
            self.by_canonical.insert(format!("{url}|{version}"), idx);
        }
    }

    /// Number of indexed conformance resources.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The canonical URLs of every resource of one kind, in load order.
    pub fn canonicals(&self, kind: ConformanceKind) -> impl Iterator<Item = &str> {
        self.entries.iter().filter(move |entry| entry.kind == kind).map(|entry| entry.url.as_str())
    }

    /// The resource with this canonical (`url` or `url|version`; an unknown version falls back to the
    /// url), parsed. `None` when unknown or unparsable.
    #[must_use]
    pub fn resource(&self, kind: ConformanceKind, canonical: &str) -> Option<Arc<Value>> {
        let idx = self.find(kind, canonical)?;
        self.parsed(idx)
    }

    /// The snapshot elements of a StructureDefinition, generated from its differential (and its
    /// base's snapshot, recursively) when it has none.
    ///
    /// # Errors
    /// A message when the definition is unknown or its differential cannot be applied.
    pub fn snapshot(&self, canonical: &str) -> Result<Vec<Value>, String> {
        self.snapshot_elements(canonical, 0)
    }

    fn find(&self, kind: ConformanceKind, canonical: &str) -> Option<usize> {
        let idx = match self.by_canonical.get(canonical) {
            Some(&idx) => idx,
            None => {
                let (url, _version) = canonical.split_once('|')?;
                *self.by_canonical.get(url)?
            }
        };
        (self.entries[idx].kind == kind).then_some(idx)
    }

    fn parsed(&self, idx: usize) -> Option<Arc<Value>> {
        let entry = &self.entries[idx];
        entry
            .parsed
            .get_or_init(|| {
                let raw = entry.raw.as_deref()?;
                serde_json::from_slice::<Value>(raw).ok().map(Arc::new)
            })
            .clone()
    }

    /// The compiled StructureDefinition (snapshot generated if needed), cached.
    pub(crate) fn compiled(&self, canonical: &str) -> Result<Arc<CompiledSd>, String> {
        let Some(idx) = self.find(ConformanceKind::StructureDefinition, canonical) else {
            return Err(format!("unknown StructureDefinition {canonical}"));
        };
        self.entries[idx]
            .compiled
            .get_or_init(|| {
                let parsed =
                    self.parsed(idx).ok_or_else(|| format!("{canonical} does not parse"))?;
                let object =
                    parsed.as_object().ok_or_else(|| format!("{canonical} is not an object"))?;
                let elements = self.snapshot_elements(canonical, 0)?;
                CompiledSd::compile(object, &elements).map(Arc::new)
            })
            .clone()
    }

    fn snapshot_elements(&self, canonical: &str, depth: usize) -> Result<Vec<Value>, String> {
        if depth > 16 {
            return Err(format!("base definition chain of {canonical} is too long"));
        }
        let sd = self
            .resource(ConformanceKind::StructureDefinition, canonical)
            .ok_or_else(|| format!("unknown StructureDefinition {canonical}"))?;
        let sd = sd.as_object().ok_or_else(|| format!("{canonical} is not an object"))?;
        if let Some(elements) = element_list(sd, "snapshot") {
            return Ok(elements.to_vec());
        }
        let differential = element_list(sd, "differential")
            .ok_or_else(|| format!("{canonical} has neither snapshot nor differential"))?;
        let base_url = str_field(sd, "baseDefinition")
            .ok_or_else(|| format!("{canonical} has no baseDefinition"))?;
        let base = self.snapshot_elements(base_url, depth + 1)?;
        let type_snapshots = |url: &str| self.snapshot_elements(url, depth + 1);
        snapshot::generate(&base, differential, &type_snapshots)
            .map_err(|message| format!("{canonical}: {message}"))
    }

    /// The expansion of a ValueSet, cached. Unknown value sets expand to "unknown".
    pub(crate) fn expansion(&self, canonical: &str) -> Arc<Expansion> {
        match self.find(ConformanceKind::ValueSet, canonical) {
            Some(idx) => self.entries[idx]
                .expansion
                .get_or_init(|| Arc::new(Expansion::compute(self, canonical, &mut Vec::new())))
                .clone(),
            None => Arc::new(Expansion::unknown()),
        }
    }
}

fn element_list<'a>(sd: &'a Map<String, Value>, key: &str) -> Option<&'a [Value]> {
    sd.get(key)?.get("element")?.as_array().map(Vec::as_slice)
}
