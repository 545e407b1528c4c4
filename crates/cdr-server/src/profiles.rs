//! Loading the conformance resources from disk: the compiled-in R4 core definitions, then each
//! `--package` archive, then every JSON file of the profiles folder. The only filesystem reads of
//! conformance resources in the workspace happen here.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use cdr_validation::{LoadError, ProfileSet};

use crate::config::ProfileArgs;

/// The folder read when `--profiles-dir` is not given (skipped when absent).
const DEFAULT_PROFILES_DIR: &str = "profiles";

/// What was loaded, for the startup log.
#[derive(Debug)]
pub(crate) struct LoadStats {
    pub(crate) n_resources: usize,
    pub(crate) n_packages: usize,
    pub(crate) n_files: usize,
    pub(crate) profiles_dir: Option<PathBuf>,
    pub(crate) elapsed: Duration,
}

/// Builds the ProfileSet from the configuration.
///
/// # Errors
/// An unreadable package or file, a JSON file that does not parse, or an explicit profiles folder
/// that does not exist.
pub(crate) fn load(args: &ProfileArgs) -> anyhow::Result<(ProfileSet, LoadStats)> {
    let started = Instant::now();
    let mut set = ProfileSet::r4_core().context("the compiled-in R4 core package is corrupt")?;
    for package in &args.packages {
        let bytes = std::fs::read(package)
            .with_context(|| format!("cannot read the package {}", package.display()))?;
        set.add_package(&bytes)
            .with_context(|| format!("cannot load the package {}", package.display()))?;
    }
    let profiles_dir = match &args.profiles_dir {
        Some(dir) if !dir.is_dir() => {
            anyhow::bail!("the profiles folder {} does not exist", dir.display())
        }
        Some(dir) => Some(dir.clone()),
        None => Some(PathBuf::from(DEFAULT_PROFILES_DIR)).filter(|dir| dir.is_dir()),
    };
    let mut n_files = 0;
    if let Some(dir) = &profiles_dir {
        let mut files = Vec::new();
        json_files(dir, &mut files)?;
        for path in &files {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            match set.add_json(&path.display().to_string(), &text) {
                // A JSON file that is not a resource (e.g. a package.json) is not ours to load.
                Ok(()) | Err(LoadError::NotAResource(_)) => n_files += 1,
                Err(error) => return Err(error.into()),
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

/// Every `*.json` file under `dir`, sorted, recursively.
fn json_files(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
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
