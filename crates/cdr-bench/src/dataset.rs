//! The data set on disk: one ndjson file per [`DataFile`], a `manifest.json`, and, after a load, the map
//! from generator-local ids to the server's ids (`server-ids.tsv`).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::BenchError;
use crate::generate::{DataFile, GenerateConfig, ResourceSink, generate};

const ID_MAP_FILE: &str = "server-ids.tsv";

/// Generates the data set into `dir` (created if missing) and returns the number of resources per file.
///
/// # Errors
/// When a file cannot be written.
pub fn write_data_set(
    dir: &Path,
    config: GenerateConfig,
) -> Result<BTreeMap<DataFile, u64>, BenchError> {
    std::fs::create_dir_all(dir).map_err(|source| io_error("create", dir, source))?;
    let mut writers = HashMap::new();
    for file in DataFile::ALL {
        let path = dir.join(file.file_name());
        let handle = File::create(&path).map_err(|source| io_error("create", &path, source))?;
        writers.insert(file, BufWriter::new(handle));
    }
    let mut sink = DirectorySink { dir: dir.to_owned(), writers, counts: BTreeMap::new() };
    generate(config, &mut sink)?;
    for (file, writer) in &mut sink.writers {
        writer.flush().map_err(|source| io_error("write", &dir.join(file.file_name()), source))?;
    }
    let counts: serde_json::Map<String, Value> = sink
        .counts
        .iter()
        .map(|(file, count)| (file.file_name().to_owned(), json!(count)))
        .collect();
    let manifest = json!({ "patients": config.patients, "seed": config.seed, "resources": counts });
    let manifest_path = dir.join("manifest.json");
    std::fs::write(&manifest_path, format!("{manifest:#}\n"))
        .map_err(|source| io_error("write", &manifest_path, source))?;
    Ok(sink.counts)
}

struct DirectorySink {
    dir: PathBuf,
    writers: HashMap<DataFile, BufWriter<File>>,
    counts: BTreeMap<DataFile, u64>,
}

impl ResourceSink for DirectorySink {
    fn emit(&mut self, file: DataFile, resource: &Value) -> Result<(), BenchError> {
        let path = self.dir.join(file.file_name());
        let Some(writer) = self.writers.get_mut(&file) else {
            return Err(BenchError::Data(format!("no open file for {}", path.display())));
        };
        writeln!(writer, "{resource}").map_err(|source| io_error("write", &path, source))?;
        *self.counts.entry(file).or_default() += 1;
        Ok(())
    }
}

/// Every resource of one file of the data set, in file order.
///
/// # Errors
/// When the file cannot be read or a line is not JSON.
pub fn read_resources(dir: &Path, file: DataFile) -> Result<Vec<Value>, BenchError> {
    let path = dir.join(file.file_name());
    let handle = File::open(&path).map_err(|source| io_error("open", &path, source))?;
    let mut resources = Vec::new();
    for (line_index, line) in BufReader::new(handle).lines().enumerate() {
        let line = line.map_err(|source| io_error("read", &path, source))?;
        if line.trim().is_empty() {
            continue;
        }
        let resource = serde_json::from_str(&line).map_err(|source| BenchError::Json {
            path: path.clone(),
            line: line_index + 1,
            source,
        })?;
        resources.push(resource);
    }
    Ok(resources)
}

/// Generator-local ids (`Patient/pat-7`) to the ids one server assigned (`Patient/3f2c…`).
#[derive(Debug, Clone, Default)]
pub struct IdMap {
    /// The FHIR base the data was loaded into.
    pub base: String,
    ids: HashMap<String, String>,
}

impl IdMap {
    #[must_use]
    pub fn new(base: &str) -> IdMap {
        IdMap { base: base.to_owned(), ids: HashMap::new() }
    }

    /// The server id of `{res_type}/{local_id}`.
    #[must_use]
    pub fn get(&self, local_reference: &str) -> Option<&str> {
        self.ids.get(local_reference).map(String::as_str)
    }

    pub fn insert(&mut self, local_reference: String, server_id: String) {
        self.ids.insert(local_reference, server_id);
    }

    /// Writes the map into the data set folder.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, dir: &Path) -> Result<(), BenchError> {
        let path = dir.join(ID_MAP_FILE);
        let mut entries: Vec<(&String, &String)> = self.ids.iter().collect();
        entries.sort();
        let mut text = format!("# base\t{}\n", self.base);
        for (local_reference, server_id) in entries {
            text.push_str(&format!("{local_reference}\t{server_id}\n"));
        }
        std::fs::write(&path, text).map_err(|source| io_error("write", &path, source))
    }

    /// Reads the map a load wrote.
    ///
    /// # Errors
    /// When there is none (the data set was never loaded) or it is malformed.
    pub fn load(dir: &Path) -> Result<IdMap, BenchError> {
        let path = dir.join(ID_MAP_FILE);
        let text =
            std::fs::read_to_string(&path).map_err(|source| io_error("read", &path, source))?;
        let mut map = IdMap::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('\t') else {
                return Err(BenchError::Data(format!(
                    "{}: malformed line {line:?}",
                    path.display()
                )));
            };
            match key {
                "# base" => value.clone_into(&mut map.base),
                _ => map.insert(key.to_owned(), value.to_owned()),
            }
        }
        Ok(map)
    }
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> BenchError {
    BenchError::Io { action, path: path.to_owned(), source }
}
