//! Loading the conformance resources from disk: the compiled-in R4 core definitions, then each
//! `--package` archive, then every JSON file of the profiles folder and its subfolders; and the search
//! parameter registry made of the SearchParameters among them. The only filesystem reads of conformance
//! resources in the workspace happen here.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cdr_search::{RegistryError, SearchParamRegistry};
use cdr_validation::{ConformanceKind, LoadError, ProfileSet};
use clap::Args;

/// The folder read when `--profiles-dir` is not given (skipped when absent).
const DEFAULT_PROFILES_DIR: &str = "profiles";

/// Where the conformance resources (profiles, value sets, code systems, search parameters) come from, on
/// top of the compiled-in FHIR R4 core definitions.
#[derive(Debug, Clone, Default, Args)]
pub struct ProfileArgs {
    /// Folder of conformance resources: every `*.json` file in it and its subfolders (default:
    /// `profiles` in the working directory, when present).
    #[arg(long, env = "PROFILES_DIR", value_name = "DIR")]
    pub profiles_dir: Option<PathBuf>,
    /// A FHIR package (`.tgz`) to load; repeatable.
    #[arg(long = "package", value_name = "PATH")]
    pub packages: Vec<PathBuf>,
}

/// Why the conformance resources or the search parameters among them could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    /// The R4 core package compiled into `cdr-validation` does not load.
    #[error("the compiled-in R4 core package is corrupt")]
    Core(#[source] LoadError),
    /// A `--package` file cannot be read.
    #[error("cannot read the package {}", path.display())]
    ReadPackage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `--package` file is not a loadable FHIR package.
    #[error("cannot load the package {}", path.display())]
    Package {
        path: PathBuf,
        #[source]
        source: LoadError,
    },
    /// `--profiles-dir` names no folder.
    #[error("the profiles folder {} does not exist", .0.display())]
    MissingFolder(PathBuf),
    /// A folder of the profiles folder cannot be listed, or one of its files cannot be read.
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file of the profiles folder does not parse, or is a conformance resource without a url.
    #[error(transparent)]
    File(LoadError),
    /// A SearchParameter among the conformance resources that the registry refuses.
    #[error("invalid SearchParameter")]
    SearchParameter(#[source] RegistryError),
}

/// What was loaded, for the startup log.
#[derive(Debug)]
pub struct LoadStats {
    pub n_resources: usize,
    pub n_packages: usize,
    pub n_files: usize,
    pub profiles_dir: Option<PathBuf>,
    pub elapsed: Duration,
}

/// Builds the ProfileSet from the configuration.
///
/// # Errors
/// An unreadable package or file, a JSON file that does not parse, or an explicit profiles folder
/// that does not exist.
pub fn load(args: &ProfileArgs) -> Result<(ProfileSet, LoadStats), ConformanceError> {
    let started = Instant::now();
    let mut set = ProfileSet::r4_core().map_err(ConformanceError::Core)?;
    for package in &args.packages {
        let bytes = std::fs::read(package)
            .map_err(|source| ConformanceError::ReadPackage { path: package.clone(), source })?;
        set.add_package(&bytes)
            .map_err(|source| ConformanceError::Package { path: package.clone(), source })?;
    }
    let profiles_dir = match &args.profiles_dir {
        Some(dir) if !dir.is_dir() => return Err(ConformanceError::MissingFolder(dir.clone())),
        Some(dir) => Some(dir.clone()),
        None => Some(PathBuf::from(DEFAULT_PROFILES_DIR)).filter(|dir| dir.is_dir()),
    };
    let mut n_files = 0;
    if let Some(dir) = &profiles_dir {
        let mut files = Vec::new();
        json_files(dir, &mut files)?;
        for path in &files {
            let text = std::fs::read_to_string(path).map_err(|source| ConformanceError::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
            match set.add_json(&path.display().to_string(), &text) {
                // A JSON file that is not a resource (e.g. a package.json) is not ours to load.
                Ok(()) | Err(LoadError::NotAResource(_)) => n_files += 1,
                Err(error) => return Err(ConformanceError::File(error)),
            }
        }
    }
    let stats = LoadStats {
        n_resources: set.len(),
        n_packages: args.packages.len(),
        n_files,
        profiles_dir,
        elapsed: started.elapsed(),
    };
    Ok((set, stats))
}

/// The R4 search parameters plus every SearchParameter among the loaded conformance resources (the
/// profiles folder and packages).
///
/// # Errors
/// When one of those SearchParameters is invalid.
pub fn search_registry(set: &ProfileSet) -> Result<SearchParamRegistry, ConformanceError> {
    let texts: Vec<String> = set
        .canonicals(ConformanceKind::SearchParameter)
        .filter_map(|url| set.resource(ConformanceKind::SearchParameter, url))
        .map(|resource| resource.to_string())
        .collect();
    let borrowed: Vec<&str> = texts.iter().map(String::as_str).collect();
    let registry =
        SearchParamRegistry::with_extra(&borrowed).map_err(ConformanceError::SearchParameter)?;
    tracing::info!(custom = texts.len(), "search parameters loaded");
    Ok(registry)
}

/// Every `*.json` file under `dir`, sorted, recursively.
fn json_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), ConformanceError> {
    let list_error = |source| ConformanceError::Io { action: "list", path: dir.to_owned(), source };
    let mut entries = std::fs::read_dir(dir)
        .map_err(list_error)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(list_error)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            json_files(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        }
    }
    Ok(())
}
