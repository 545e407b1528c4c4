//! The inputs of an import: which files ([`files`]), and the Bundles each becomes ([`read`]).
//!
//! A transaction or batch Bundle is submitted as it is, byte for byte. Loose resources (the entries of any
//! other Bundle, a file of one resource, the lines of an NDJSON file) go into batch Bundles of at most
//! `batch_size` entries, each written by the first [`Rule`] that applies to it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Split};
use std::path::{Path, PathBuf};

use anyhow::Context;
use cdr_model::{LogicalId, ResourceType};
use hyper::body::Bytes;
use serde_json::{Map, Value, json};

/// Whether a Bundle commits as a whole or entry by entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Transaction,
    Batch,
}

/// One Bundle to submit, and where each of its entries comes from.
#[derive(Debug)]
pub(crate) struct Job {
    /// The index of the file in the list of [`files`].
    pub(crate) file: usize,
    pub(crate) kind: Kind,
    /// The Bundle's JSON.
    pub(crate) body: Bytes,
    /// One per entry, in entry order.
    pub(crate) entries: Vec<Source>,
}

/// Where an entry of a [`Job`] comes from, and how it is requested.
#[derive(Debug)]
pub(crate) struct Source {
    /// The entry's `request.method`, when it is one of FHIR's.
    pub(crate) method: Option<Method>,
    pub(crate) place: Place,
    /// For a loose resource, what it is and the rule it is written by; `None` for an entry of a submitted
    /// transaction or batch.
    pub(crate) loose: Option<Loose>,
}

/// A place in an input file.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Place {
    /// `Bundle.entry[n]` of the file's Bundle.
    Entry(usize),
    /// Line `n` (from 1) of an NDJSON file.
    Line(usize),
    /// The file as a whole.
    File,
}

/// A loose resource put into a batch entry.
#[derive(Debug)]
pub(crate) struct Loose {
    pub(crate) resource_type: ResourceType,
    pub(crate) rule: Rule,
}

/// How a loose resource is written, the first that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// It has an identifier with a system and a value: `POST Type` with
    /// `ifNoneExist: identifier=system|value` (the first such identifier); a rerun writes nothing.
    Conditional,
    /// It has an id: `PUT Type/id`, which needs update-as-create; a rerun writes a new version.
    AtId,
    /// Neither: `POST Type`; a rerun stores it again.
    Plain,
}

/// The HTTP methods of Bundle requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
}

/// What reading a file yields.
#[derive(Debug)]
pub(crate) enum Item {
    Job(Job),
    /// A line, an entry or a whole file that cannot be imported (not JSON, not a resource, not readable).
    Unreadable {
        file: usize,
        place: Place,
        message: String,
    },
}

/// The files to import, in the order of `inputs`: each file as it is, each folder walked recursively for
/// `*.json` and `*.ndjson` files, sorted by path.
///
/// # Errors
/// An input that does not exist, or a folder that cannot be listed.
pub(crate) fn files(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        let metadata =
            std::fs::metadata(input).with_context(|| format!("cannot read {}", input.display()))?;
        if !metadata.is_dir() {
            files.push(input.clone());
            continue;
        }
        let mut found = Vec::new();
        walk(input, &mut found)?;
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

fn walk(folder: &Path, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(folder).with_context(|| format!("cannot list {}", folder.display()))?;
    for entry in entries {
        let path = entry.with_context(|| format!("cannot list {}", folder.display()))?.path();
        if path.is_dir() {
            walk(&path, found)?;
        } else if path
            .extension()
            .is_some_and(|extension| extension == "json" || extension == "ndjson")
        {
            found.push(path);
        }
    }
    Ok(())
}

/// The Bundles of file number `file` at `path`, read lazily for NDJSON (`*.ndjson`), at once otherwise.
pub(crate) fn read(path: &Path, file: usize, batch_size: usize) -> Reader {
    let mut reader = Reader {
        batch: Batch::new(file, batch_size),
        lines: None,
        line: 0,
        ready: VecDeque::new(),
    };
    let unreadable = |error: std::io::Error| Item::Unreadable {
        file,
        place: Place::File,
        message: format!("cannot read the file: {error}"),
    };
    if path.extension().is_some_and(|extension| extension == "ndjson") {
        match File::open(path) {
            Ok(opened) => reader.lines = Some(BufReader::new(opened).split(b'\n')),
            Err(error) => reader.ready.push_back(unreadable(error)),
        }
        return reader;
    }
    match std::fs::read(path) {
        Ok(bytes) => reader.read_json(bytes),
        Err(error) => reader.ready.push_back(unreadable(error)),
    }
    reader
}

/// The items of one file, in order.
#[derive(Debug)]
pub(crate) struct Reader {
    batch: Batch,
    /// The lines still to read of an NDJSON file.
    lines: Option<Split<BufReader<File>>>,
    /// The number of the last line read.
    line: usize,
    ready: VecDeque<Item>,
}

impl Iterator for Reader {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            let Some(lines) = &mut self.lines else {
                return self.batch.flush().map(Item::Job);
            };
            let Some(line) = lines.next() else {
                self.lines = None;
                continue;
            };
            self.line += 1;
            let place = Place::Line(self.line);
            let file = self.batch.file;
            let line = match line {
                Ok(line) => line,
                Err(error) => {
                    self.lines = None;
                    self.ready.push_back(Item::Unreadable {
                        file,
                        place,
                        message: format!("cannot read the file: {error}"),
                    });
                    continue;
                }
            };
            if line.trim_ascii().is_empty() {
                continue;
            }
            let item = match serde_json::from_slice::<Value>(&line) {
                Ok(resource) => self.batch.push(resource, place),
                Err(error) => Some(Item::Unreadable {
                    file,
                    place,
                    message: format!("not valid JSON: {error}"),
                }),
            };
            self.ready.extend(item);
        }
    }
}

impl Reader {
    /// A `.json` file: a transaction or batch Bundle as it is, the entries of another Bundle or the one
    /// resource as loose resources.
    fn read_json(&mut self, bytes: Vec<u8>) {
        let file = self.batch.file;
        let mut value: Value = match serde_json::from_slice(&bytes) {
            Ok(value) => value,
            Err(error) => {
                let message = format!("not valid JSON: {error}");
                self.ready.push_back(Item::Unreadable { file, place: Place::File, message });
                return;
            }
        };
        let is_bundle = value.get("resourceType").and_then(Value::as_str) == Some("Bundle");
        let kind = match value.get("type").and_then(Value::as_str) {
            Some("transaction") if is_bundle => Some(Kind::Transaction),
            Some("batch") if is_bundle => Some(Kind::Batch),
            _ => None,
        };
        if let Some(kind) = kind {
            let entries =
                value.get("entry").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
            let entries = entries
                .iter()
                .enumerate()
                .map(|(index, entry)| Source {
                    method: entry
                        .pointer("/request/method")
                        .and_then(Value::as_str)
                        .and_then(Method::parse),
                    place: Place::Entry(index),
                    loose: None,
                })
                .collect();
            self.ready.push_back(Item::Job(Job { file, kind, body: Bytes::from(bytes), entries }));
            return;
        }
        if !is_bundle {
            self.ready.extend(self.batch.push(value, Place::File));
            return;
        }
        let entries = match value.get_mut("entry").map(Value::take) {
            Some(Value::Array(entries)) => entries,
            None => Vec::new(),
            Some(_) => {
                let message = "Bundle.entry is not an array".to_owned();
                self.ready.push_back(Item::Unreadable { file, place: Place::File, message });
                return;
            }
        };
        for (index, mut entry) in entries.into_iter().enumerate() {
            let place = Place::Entry(index);
            let item = match entry.get_mut("resource").map(Value::take) {
                Some(resource) => self.batch.push(resource, place),
                None => Some(Item::Unreadable {
                    file,
                    place,
                    message: format!("Bundle.entry[{index}] has no resource"),
                }),
            };
            self.ready.extend(item);
        }
    }
}

/// The loose resources of a file gathered into batch Bundles.
#[derive(Debug)]
struct Batch {
    file: usize,
    size: usize,
    entries: Vec<Value>,
    sources: Vec<Source>,
}

impl Batch {
    fn new(file: usize, size: usize) -> Batch {
        Batch { file, size, entries: Vec::new(), sources: Vec::new() }
    }

    /// Adds a resource; the batch when it is full, or the reason the resource cannot be imported.
    fn push(&mut self, resource: Value, place: Place) -> Option<Item> {
        let (entry, method, loose) = match batch_entry(resource) {
            Ok(built) => built,
            Err(message) => {
                let message = match place {
                    Place::Entry(index) => format!("Bundle.entry[{index}].resource: {message}"),
                    Place::Line(_) | Place::File => message,
                };
                return Some(Item::Unreadable { file: self.file, place, message });
            }
        };
        self.entries.push(entry);
        self.sources.push(Source { method: Some(method), place, loose: Some(loose) });
        if self.entries.len() < self.size {
            return None;
        }
        self.flush().map(Item::Job)
    }

    /// The batch of the resources gathered so far, if any.
    fn flush(&mut self) -> Option<Job> {
        if self.entries.is_empty() {
            return None;
        }
        let mut bundle = Map::new();
        bundle.insert("resourceType".to_owned(), Value::from("Bundle"));
        bundle.insert("type".to_owned(), Value::from("batch"));
        bundle.insert("entry".to_owned(), Value::Array(std::mem::take(&mut self.entries)));
        let bundle = Value::Object(bundle);
        Some(Job {
            file: self.file,
            kind: Kind::Batch,
            body: Bytes::from(bundle.to_string()),
            entries: std::mem::take(&mut self.sources),
        })
    }
}

/// The batch entry of a loose resource, by the first [`Rule`] that applies.
fn batch_entry(resource: Value) -> Result<(Value, Method, Loose), String> {
    let Some(object) = resource.as_object() else {
        return Err("not a JSON object".to_owned());
    };
    let Some(type_name) = object.get("resourceType").and_then(Value::as_str) else {
        return Err("not a resource: no resourceType".to_owned());
    };
    let resource_type = ResourceType::parse(type_name)
        .map_err(|_| format!("'{type_name}' is not an R4 resource type"))?;
    let (rule, method, request) = if let Some((system, value)) = first_identifier(object) {
        let criteria = form_urlencoded::Serializer::new(String::new())
            .append_pair("identifier", &format!("{}|{}", escape(system), escape(value)))
            .finish();
        let request = json!({"method": "POST", "url": type_name, "ifNoneExist": criteria});
        (Rule::Conditional, Method::Post, request)
    } else if let Some(id) = object.get("id") {
        let id = id
            .as_str()
            .and_then(|id| LogicalId::parse(id).ok())
            .ok_or_else(|| format!("the id {id} is not a valid FHIR id"))?;
        let request = json!({"method": "PUT", "url": format!("{type_name}/{}", id.as_str())});
        (Rule::AtId, Method::Put, request)
    } else {
        (Rule::Plain, Method::Post, json!({"method": "POST", "url": type_name}))
    };
    let mut entry = Map::new();
    entry.insert("resource".to_owned(), resource);
    entry.insert("request".to_owned(), request);
    Ok((Value::Object(entry), method, Loose { resource_type, rule }))
}

/// The system and value of the first identifier that has both (`identifier` is a list in most resources,
/// a single Identifier in a few).
fn first_identifier(resource: &Map<String, Value>) -> Option<(&str, &str)> {
    let identifiers = match resource.get("identifier")? {
        Value::Array(identifiers) => identifiers.as_slice(),
        single @ Value::Object(_) => std::slice::from_ref(single),
        _ => return None,
    };
    identifiers.iter().find_map(|identifier| {
        let text =
            |name| identifier.get(name).and_then(Value::as_str).filter(|text| !text.is_empty());
        Some((text("system")?, text("value")?))
    })
}

/// A token part with the search escapes (`\`, `|`, `,`, `$`) the criteria parser undoes.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '\\' | '|' | ',' | '$') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

impl Method {
    fn parse(text: &str) -> Option<Method> {
        match text {
            "GET" => Some(Method::Get),
            "HEAD" => Some(Method::Head),
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "DELETE" => Some(Method::Delete),
            "PATCH" => Some(Method::Patch),
            _ => None,
        }
    }
}
