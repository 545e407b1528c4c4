//! `--auth smart`: reads the authorization config file (JSON), the key files it names, the access policy
//! (`--access-policy`, JSON) and the server's signing key (generated at first start), into a
//! [`cdr_api::SmartConfig`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use cdr_api::{AccessPolicy, ClientConfig, IssuerConfig, JwksSource, ServerKey, SmartConfig};
use serde::Deserialize;
use serde_json::Value;

/// The authorization config file (README: "Securing a deployment").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// The public FHIR base URL; `--base-url` when absent.
    fhir_base_url: Option<String>,
    /// Lifetime of the token endpoint's access tokens.
    #[serde(default = "default_token_seconds")]
    access_token_seconds: u64,
    #[serde(default)]
    issuers: Vec<IssuerFile>,
    #[serde(default)]
    clients: Vec<ClientFile>,
}

fn default_token_seconds() -> u64 {
    300
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerFile {
    iss: String,
    aud: Option<String>,
    jwks_file: Option<PathBuf>,
    jwks_url: Option<String>,
    /// Least time between two fetches of `jwks_url` (a token with an unknown `kid` triggers one).
    #[serde(default = "default_refresh_seconds")]
    jwks_refresh_seconds: u64,
}

fn default_refresh_seconds() -> u64 {
    300
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    client_id: String,
    jwks: Option<Value>,
    jwks_file: Option<PathBuf>,
    scopes: Vec<String>,
}

/// The configuration of `--auth smart` from the config file at `path`, the signing key at `key_path`
/// (a new one is written there when the file does not exist), the access policy at `policy_path` and
/// `--base-url`.
pub(crate) fn load(
    path: &Path,
    key_path: &Path,
    policy_path: Option<&Path>,
    base_url: Option<&str>,
) -> anyhow::Result<SmartConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the auth config file {}", path.display()))?;
    let file: File = serde_json::from_str(&text)
        .with_context(|| format!("the auth config file {} is not valid", path.display()))?;
    let folder = path.parent().unwrap_or_else(|| Path::new("."));
    let fhir_base_url = file
        .fhir_base_url
        .as_deref()
        .or(base_url)
        .ok_or_else(|| {
            anyhow!(
                "--auth smart needs the public FHIR base URL: fhir_base_url in {} or --base-url",
                path.display()
            )
        })?
        .trim_end_matches('/')
        .to_owned();
    let root = fhir_base_url.strip_suffix("/fhir").ok_or_else(|| {
        anyhow!("fhir_base_url {fhir_base_url} must end with /fhir, where this server serves FHIR")
    })?;
    let mut issuers = Vec::new();
    for issuer in file.issuers {
        let jwks = match (issuer.jwks_file, issuer.jwks_url) {
            (Some(file), None) => JwksSource::Document(read_jwks(&folder.join(file))?),
            (None, Some(url)) if url.starts_with("http://") => JwksSource::Url {
                url,
                min_refresh: Duration::from_secs(issuer.jwks_refresh_seconds),
            },
            (None, Some(url)) => {
                bail!("issuer {}: jwks_url {url} must be an http:// URL", issuer.iss)
            }
            _ => bail!("issuer {}: give exactly one of jwks_file and jwks_url", issuer.iss),
        };
        issuers.push(IssuerConfig { iss: issuer.iss, aud: issuer.aud, jwks });
    }
    let mut clients = Vec::new();
    for client in file.clients {
        let jwks = match (client.jwks, client.jwks_file) {
            (Some(jwks), None) => jwks,
            (None, Some(file)) => read_jwks(&folder.join(file))?,
            _ => bail!("client {}: give exactly one of jwks and jwks_file", client.client_id),
        };
        clients.push(ClientConfig { client_id: client.client_id, jwks, scopes: client.scopes });
    }
    let config = SmartConfig {
        token_endpoint: format!("{root}/auth/token"),
        jwks_uri: format!("{root}/auth/jwks"),
        fhir_base_url,
        access_token_lifetime: Duration::from_secs(file.access_token_seconds),
        issuers,
        clients,
        server_key: server_key(key_path)?,
        access_policy: policy_path.map(read_policy).transpose()?,
    };
    config.check().map_err(|error| anyhow!("the auth config file {}: {error}", path.display()))?;
    Ok(config)
}

/// The access policy file (README: "Securing a deployment").
fn read_policy(path: &Path) -> anyhow::Result<AccessPolicy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the access policy file {}", path.display()))?;
    let document: Value = serde_json::from_str(&text)
        .with_context(|| format!("the access policy file {} is not JSON", path.display()))?;
    AccessPolicy::from_json(&document)
        .map_err(|error| anyhow!("the access policy file {}: {error}", path.display()))
}

fn read_jwks(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the JWKS file {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("the JWKS file {} is not JSON", path.display()))
}

/// The key at `path`, or a new one written there (readable by its owner only) when there is no file.
fn server_key(path: &Path) -> anyhow::Result<ServerKey> {
    let pem = match std::fs::read_to_string(path) {
        Ok(pem) => pem,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let pem = ServerKey::generate_pem().map_err(|error| anyhow!(error))?;
            if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            write_private(path, &pem)?;
            tracing::info!(path = %path.display(), "generated the server's token signing key");
            pem
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read the signing key {}", path.display()));
        }
    };
    ServerKey::from_pem(&pem)
        .map_err(|error| anyhow!("the signing key {}: {error}", path.display()))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the signing key {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write the signing key {}", path.display()))
}
