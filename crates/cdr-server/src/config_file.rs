//! The optional config file of `serve` (`--config imaging-cdr.toml`): a TOML table whose keys are the long
//! flags of `serve` without their dashes (`database-url = "postgres://..."`, `max-body-bytes = 1048576`,
//! `allowed-hosts = ["cdr.example.org"]`, `update-create = true`). Each key the command line and the
//! environment leave unset becomes that flag, so the precedence is command line, then environment, then
//! file, then the built-in default. An unknown key is an error naming it.

use std::ffi::OsString;
use std::path::Path;

use clap::ArgMatches;
use clap::parser::ValueSource;

/// The flags the file at `path` adds to the `serve` command line whose parse is `matches`.
///
/// # Errors
/// A message naming the file and, where there is one, the key: the file cannot be read or is not TOML, a
/// key is not a flag of `serve`, or a value is not of a kind the flag takes.
pub(crate) fn arguments(
    serve: &clap::Command,
    matches: &ArgMatches,
    path: &Path,
) -> Result<Vec<OsString>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read the config file {}: {error}", path.display()))?;
    arguments_of(serve, matches, &text).map_err(|error| format!("{}: {error}", path.display()))
}

fn arguments_of(
    serve: &clap::Command,
    matches: &ArgMatches,
    text: &str,
) -> Result<Vec<OsString>, String> {
    let table: toml::Table = text.parse().map_err(|error| format!("not a TOML file: {error}"))?;
    let mut arguments = Vec::new();
    for (key, value) in &table {
        let flag = serve
            .get_arguments()
            .find(|argument| argument.get_long() == Some(key.as_str()))
            .filter(|argument| !matches!(argument.get_id().as_str(), "config" | "help" | "version"))
            .ok_or_else(|| {
                format!(
                    "unknown key '{key}': the keys are the flags of `imaging-cdr serve --help` without \
                     their dashes, such as database-url"
                )
            })?;
        if matches!(
            matches.value_source(flag.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        if !flag.get_action().takes_values() {
            match value {
                toml::Value::Boolean(true) => arguments.push(OsString::from(format!("--{key}"))),
                toml::Value::Boolean(false) => {}
                _ => return Err(format!("'{key}' is a switch: write {key} = true or false")),
            }
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            scalar => vec![scalar],
        };
        for value in values {
            let text = match value {
                toml::Value::String(text) => text.clone(),
                toml::Value::Integer(number) => number.to_string(),
                toml::Value::Float(number) => number.to_string(),
                toml::Value::Boolean(flag) => flag.to_string(),
                _ => return Err(format!("'{key}' takes a string, a number or a boolean")),
            };
            arguments.push(OsString::from(format!("--{key}={text}")));
        }
    }
    Ok(arguments)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::config::Cli;

    /// The flags a file adds to `serve` given `command_line` (after `serve`).
    fn added(command_line: &[&str], text: &str) -> Result<Vec<String>, String> {
        let mut command = Cli::command();
        command.build();
        let serve = command.find_subcommand("serve").unwrap();
        let matches = serve
            .clone()
            .try_get_matches_from(std::iter::once("serve").chain(command_line.iter().copied()))
            .unwrap();
        let added = arguments_of(serve, &matches, text)?;
        Ok(added.into_iter().map(|argument| argument.into_string().unwrap()).collect())
    }

    #[test]
    fn keys_become_flags() {
        let file = r#"
            database-url = "postgres://cdr@db:5432/cdr"
            max-body-bytes = 1048576
            allowed-hosts = ["cdr.example.org", "localhost:8080"]
            update-create = true
            require-patient-identifier = false
            metrics = false
            log-format = "json"
        "#;
        assert_eq!(
            added(&[], file).unwrap(),
            [
                "--allowed-hosts=cdr.example.org",
                "--allowed-hosts=localhost:8080",
                "--database-url=postgres://cdr@db:5432/cdr",
                "--log-format=json",
                "--max-body-bytes=1048576",
                "--metrics=false",
                "--update-create",
            ]
        );
    }

    #[test]
    fn the_example_file_is_read_in_full() {
        let example = include_str!("../../../imaging-cdr.example.toml");
        let added = added(&[], example).unwrap();
        assert!(added.contains(&"--cors-allowed-origins=https://viewer.example.org".to_owned()));
        let mut command = Cli::command();
        let parsed = command.try_get_matches_from_mut(
            ["imaging-cdr", "serve"]
                .into_iter()
                .map(OsString::from)
                .chain(added.into_iter().map(OsString::from)),
        );
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn the_command_line_wins() {
        let file = "max-body-bytes = 1048576\nlisten = \"0.0.0.0:8080\"";
        assert_eq!(added(&["--max-body-bytes", "10"], file).unwrap(), ["--listen=0.0.0.0:8080"]);
    }

    #[test]
    fn bad_files_are_refused_naming_the_key() {
        let unknown = added(&[], "max-body-byte = 1").unwrap_err();
        assert!(unknown.contains("unknown key 'max-body-byte'"), "{unknown}");
        assert!(
            added(&[], "config = \"other.toml\"").unwrap_err().contains("unknown key 'config'")
        );
        assert!(added(&[], "update-create = \"yes\"").unwrap_err().contains("'update-create'"));
        assert!(added(&[], "[http]\nlisten = \"x\"").unwrap_err().contains("unknown key 'http'"));
        assert!(added(&[], "listen = {a = 1}").unwrap_err().contains("'listen' takes"));
        assert!(added(&[], "listen = ").unwrap_err().contains("not a TOML file"));
    }
}
