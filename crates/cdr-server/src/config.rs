//! Command-line configuration, with environment-variable fallbacks.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use cdr_api::{CorsOrigins, Host, IpCidr, PublicBaseUrl};
use cdr_interactions::{PageLimits, ResourceLimits};
use cdr_search::QueryLimits;
use cdr_server::profiles::ProfileArgs;

use crate::config_file;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// imaging-cdr: an open FHIR R4 imaging repository server.
#[derive(Debug, Parser)]
#[command(name = "imaging-cdr", version, about)]
pub(crate) struct Cli {
    /// Log output format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// The command line, parsed; exits with a usage error as [`Parser::parse`] does. `import --base` and an
    /// explicit `--database-url` conflict, but a `DATABASE_URL` in the environment (as in the server's
    /// container) does not stand in the way of `--base`, which clap's `conflicts_with` cannot express.
    ///
    /// `serve --config FILE` adds the keys of the file that the command line and the environment leave
    /// unset (`config_file.rs`), and the command line is parsed again with them.
    pub(crate) fn parse_command_line() -> Cli {
        let mut arguments: Vec<OsString> = std::env::args_os().collect();
        let mut command = Cli::command();
        let mut matches = command
            .try_get_matches_from_mut(arguments.clone())
            .unwrap_or_else(|error| error.exit());
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
        if let Command::Serve(serve) = &cli.command
            && let Some(path) = &serve.config
        {
            command.build();
            let added =
                match (command.find_subcommand("serve"), matches.subcommand_matches("serve")) {
                    (Some(serve), Some(serve_matches)) => {
                        config_file::arguments(serve, serve_matches, path)
                    }
                    _ => Ok(Vec::new()),
                };
            match added {
                Ok(added) => arguments.extend(added),
                Err(message) => command.error(ErrorKind::InvalidValue, message).exit(),
            }
            command = Cli::command();
            matches =
                command.try_get_matches_from_mut(arguments).unwrap_or_else(|error| error.exit());
            cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
        }
        let explicit_database = matches
            .subcommand_matches("import")
            .and_then(|import| import.value_source("database_url"))
            == Some(ValueSource::CommandLine);
        if let Command::Import(args) = &cli.command
            && args.base.is_some()
            && explicit_database
        {
            let message =
                "import takes --base (a running server) or --database-url (in process), not both";
            let error = match command.find_subcommand_mut("import") {
                Some(import) => import.error(ErrorKind::ArgumentConflict, message),
                None => command.error(ErrorKind::ArgumentConflict, message),
            };
            error.exit();
        }
        cli
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve the FHIR API (applies pending migrations first).
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Validate resource files offline; exit status 1 when any has errors, 2 on usage or IO errors.
    Validate(ValidateArgs),
    /// Rebuild every search index row from the stored resources (after adding SearchParameters or upgrading).
    Reindex(ReindexArgs),
    /// Load Bundles and NDJSON files through the FHIR API's Bundle path, into the database or a running
    /// server; exit status 1 when anything failed, 2 on usage or setup errors.
    Import(Box<ImportArgs>),
    /// Run a conformance kit against a FHIR server over HTTP, or list its tests; exit status 3 when a test
    /// failed, 4 on bad input, 5 when the server is unreachable.
    #[command(subcommand)]
    Conformance(ConformanceCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConformanceCommand {
    /// Print the kit's groups and tests with their short ids, and its inputs.
    List(cdr_conformance::ListArgs),
    /// Run the kit (or the tests of --select) and report.
    Run(Box<ConformanceRunArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct ConformanceRunArgs {
    #[command(flatten)]
    pub(crate) run: cdr_conformance::RunArgs,
    /// The profiles returned resources are validated against.
    #[command(flatten)]
    pub(crate) conformance: ProfileArgs,
}

/// What kind of repository the server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// An open FHIR R4 server.
    Open,
    /// An Ontario miCDR: the contribution rules for submitted Bundles, strict (Ontario) validation, the
    /// viewer-search rule (--require-patient-identifier) and server-assigned ids.
    Micdr,
}

/// How much profile validation creates and updates go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Validation {
    /// Base R4, the resource's meta.profile, and the server's Ontario profile for its type.
    Strict,
    /// Base R4 and the resource's meta.profile.
    Base,
    /// Structural checks only (a JSON object with a known resourceType).
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum OutputFormat {
    /// One line per issue: `file: severity expression: message`.
    Text,
    /// An OperationOutcome (a Bundle of them for several files).
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// The resource files (FHIR JSON).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// A profile (canonical URL) every file must also conform to; repeatable.
    #[arg(long = "profile", value_name = "URL")]
    pub(crate) profiles: Vec<String>,
    #[command(flatten)]
    pub(crate) conformance: ProfileArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub(crate) format: OutputFormat,
}

#[derive(Debug, Args)]
pub(crate) struct ReindexArgs {
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
    /// Custom SearchParameters come from the conformance resources (the profiles folder and packages).
    #[command(flatten)]
    pub(crate) conformance: ProfileArgs,
    /// Resources indexed per database transaction.
    #[arg(long, env = "REINDEX_BATCH_SIZE", default_value_t = 500)]
    pub(crate) batch_size: u32,
}

/// The rules of `import`, shown by `import --help`.
const IMPORT_HELP: &str = "\
Inputs: files, and folders walked recursively for *.json and *.ndjson files, in sorted order.

A .json file holding a transaction or batch Bundle is submitted as it is: on a rerun, its conditional \
entries (ifNoneExist, conditional PUT) find the resources the first run wrote.

The resources of any other Bundle (a collection, a searchset...), of a .json file holding one resource and \
of an .ndjson file (one resource a line) go into batch Bundles of --batch-size entries, each written by \
the first rule that applies:
  1. it has an identifier with a system and a value: POST with ifNoneExist identifier=system|value (the \
first such identifier), so a rerun finds it and writes nothing;
  2. it has an id: PUT Type/id, which needs update-as-create on the target (--update-create), so a rerun \
writes a new version of the same resource;
  3. otherwise: POST, so a rerun stores it again (warned about once).
Those entries are independent of one another: references between them are stored as written, and a \
urn:uuid: reference resolves only within a transaction Bundle.

With --database-url (the default, as for serve), the store and the engine run in this process with serve's \
validation, profile and cost flags; with --base, the Bundles are posted to a running server (http:// only), \
which validates them by its own settings.

Each failed entry is printed on stderr with its file, line or entry, status and the OperationOutcome's \
issues; a summary (created, updated, unchanged, failed) goes to stdout.";

#[derive(Debug, Args)]
#[command(after_long_help = IMPORT_HELP)]
pub(crate) struct ImportArgs {
    /// Files and folders to import.
    #[arg(required = true, value_name = "FILE|DIR")]
    pub(crate) inputs: Vec<PathBuf>,
    /// Post each Bundle to the FHIR server at this base URL (`http://HOST:PORT/fhir`) instead of writing to
    /// the database in process; the database, validation and profile flags are then not used (and
    /// `--database-url` is refused, though `DATABASE_URL` in the environment is not).
    #[arg(long, value_name = "URL", value_parser = http_base)]
    pub(crate) base: Option<String>,
    /// Most entries of a batch Bundle made of loose resources (collection Bundles, NDJSON lines).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) batch_size: u32,
    /// Bundles in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) concurrency: u32,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
}

/// A FHIR base URL the import can post to: `http://` with a host, without its trailing slash.
fn http_base(text: &str) -> Result<String, String> {
    let base = text.trim_end_matches('/');
    let has_host =
        base.strip_prefix("http://").is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if !has_host || base.parse::<hyper::Uri>().is_err() {
        return Err(format!(
            "expected an http:// URL with a host, such as http://127.0.0.1:8080/fhir, not {text:?}"
        ));
    }
    Ok(base.to_owned())
}

#[derive(Debug, Args)]
pub(crate) struct DatabaseArgs {
    /// Database: `sqlite://PATH` (created if missing) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/imaging-cdr.db")]
    pub(crate) database_url: String,
    /// Most pooled database connections.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub(crate) max_connections: u32,
    /// Longest a single database statement may run, in seconds.
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT", default_value_t = 30)]
    pub(crate) statement_timeout_seconds: u64,
    /// Longest a request waits for a free database connection, in seconds, before it is answered 503.
    #[arg(long, env = "DATABASE_POOL_TIMEOUT", default_value_t = 5)]
    pub(crate) pool_timeout_seconds: u64,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// A TOML file of settings: the long flags below without their dashes as keys (`max-body-bytes =
    /// 1048576`). The command line and the environment override it; an unknown key is an error.
    #[arg(long, env = "CONFIG_FILE", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    /// Address and port to listen on.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Public FHIR base URL (absolute http or https) of every link and Location header. Without it links
    /// are `http://{Host}/fhir`, with the Host checked (see --allowed-hosts, --trusted-proxies).
    #[arg(long, env = "BASE_URL")]
    pub(crate) base_url: Option<PublicBaseUrl>,
    /// Without --base-url: the hosts requests may name (`name` allows every port, `name:port` one);
    /// other hosts get 400. Comma-separated; empty: any well-formed host.
    #[arg(long, env = "ALLOWED_HOSTS", value_delimiter = ',', value_name = "HOST")]
    pub(crate) allowed_hosts: Vec<Host>,
    /// Without --base-url: peers (IP addresses or CIDR blocks, comma-separated) whose `Forwarded` or
    /// `X-Forwarded-Proto`/`X-Forwarded-Host` headers decide the scheme and host of links.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_name = "CIDR")]
    pub(crate) trusted_proxies: Vec<IpCidr>,
    #[command(flatten)]
    pub(crate) http: HttpArgs,
    #[command(flatten)]
    pub(crate) async_jobs: AsyncArgs,
    #[command(flatten)]
    pub(crate) subscriptions: SubscriptionArgs,
    /// Largest accepted request body in bytes; larger requests get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub(crate) max_body_bytes: usize,
    #[command(flatten)]
    pub(crate) auth: AuthArgs,
    #[command(flatten)]
    pub(crate) audit: AuditArgs,
}

/// Whether the audit trail is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AuditMode {
    /// An AuditEvent for every FHIR interaction and token request, committed before the response leaves.
    On,
    /// No audit trail (test and development servers holding no personal information).
    Off,
}

/// The audit trail (PHIPA s.10.1): `--audit` and the observer name its events carry.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Keep the audit trail: `on` (the default) or `off`.
    #[arg(long, env = "AUDIT", value_enum, default_value_t = AuditMode::On)]
    pub(crate) audit: AuditMode,
    /// This server's name in its AuditEvents (`source.observer`).
    #[arg(long, env = "AUDIT_OBSERVER", default_value = "imaging-cdr", value_name = "NAME")]
    pub(crate) audit_observer: String,
}

impl AuditArgs {
    pub(crate) fn config(&self) -> Option<cdr_api::AuditConfig> {
        (self.audit == AuditMode::On)
            .then(|| cdr_api::AuditConfig { observer: self.audit_observer.clone() })
    }
}

/// Who may call the FHIR API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AuthMode {
    /// Everyone, without a token (the default on a loopback address).
    None,
    /// SMART on FHIR: bearer tokens from the built-in token endpoint and the configured issuers, checked
    /// against their scopes.
    Smart,
}

/// Authorization: `--auth`, its config file and the server's signing key.
#[derive(Debug, Args)]
pub(crate) struct AuthArgs {
    /// none or smart. Required when --listen is not a loopback address; none is the default on one.
    #[arg(long, env = "AUTH", value_enum)]
    pub(crate) auth: Option<AuthMode>,
    /// With --auth smart: the JSON file of issuers and clients (README: "Securing a deployment").
    #[arg(long, env = "AUTH_CONFIG", value_name = "FILE")]
    pub(crate) auth_config: Option<PathBuf>,
    /// With --auth smart: the PKCS#8 PEM P-256 key that signs the token endpoint's access tokens; generated
    /// there at first start when the file does not exist.
    #[arg(long, env = "AUTH_KEY", value_name = "FILE", default_value = "data/auth-key.pem")]
    pub(crate) auth_key: PathBuf,
    /// With --auth smart: the JSON file saying which practitioners user/ scopes grant access for (README:
    /// "Securing a deployment"); without it, user/ scopes grant nothing.
    #[arg(long, env = "ACCESS_POLICY", value_name = "FILE")]
    pub(crate) access_policy: Option<PathBuf>,
}

impl ServeArgs {
    /// The authorization in force, or why the server must not start: on a non-loopback address the
    /// choice must be explicit, and `smart` needs its config file. Warns when `none` is chosen there.
    pub(crate) fn auth_mode(&self) -> Result<AuthMode, String> {
        let loopback = self.listen.ip().is_loopback();
        if self.auth.access_policy.is_some() && self.auth.auth != Some(AuthMode::Smart) {
            return Err(
                "--access-policy needs --auth smart, whose user/ scopes it governs".to_owned()
            );
        }
        match (self.auth.auth, loopback) {
            (None, true) => Ok(AuthMode::None),
            (None, false) => Err(format!(
                "refusing to serve on {} without an explicit --auth choice: every client could read and \
                 write every record. Choose --auth smart (with --auth-config) to require tokens, or \
                 --auth none to serve everyone knowingly",
                self.listen
            )),
            (Some(AuthMode::Smart), _) if self.auth.auth_config.is_none() => {
                Err("--auth smart needs --auth-config FILE (README: \"Securing a deployment\")"
                    .to_owned())
            }
            (Some(AuthMode::None), false) => {
                tracing::warn!(
                    listen = %self.listen,
                    "--auth none on a non-loopback address: every client can read and write every record"
                );
                Ok(AuthMode::None)
            }
            (Some(mode), _) => Ok(mode),
        }
    }
}

/// The database, the conformance resources and the rules of the interaction layer: how `serve` and
/// `import --database-url` open the store and the engine, so that both validate and write alike.
#[derive(Debug, Args)]
pub(crate) struct EngineArgs {
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
    #[command(flatten)]
    pub(crate) cost: CostArgs,
    /// Let PUT create a resource at a client-chosen id (off: the server assigns every id).
    #[arg(long, env = "UPDATE_CREATE")]
    pub(crate) update_create: bool,
    /// Page size of history (and search) bundles when the client gives no _count.
    /// (At least 1 and at most --max-page-size.)
    #[arg(long, env = "DEFAULT_PAGE_SIZE", default_value_t = PageLimits::default().default_page_size,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) default_page_size: u32,
    /// Largest page size a client may ask for with _count (at least 1).
    #[arg(long, env = "MAX_PAGE_SIZE", default_value_t = PageLimits::default().max_page_size,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_page_size: u32,
    /// Profile validation of creates and updates.
    #[arg(long, env = "VALIDATION", value_enum, default_value_t = Validation::Base)]
    pub(crate) validation: Validation,
    #[command(flatten)]
    pub(crate) conformance: ProfileArgs,
    /// Refuse searches on ServiceRequest, DiagnosticReport, ImagingStudy and DocumentReference that do not
    /// name the patient by patient.identifier=system|value (the Ontario MI viewer rule).
    #[arg(long, env = "REQUIRE_PATIENT_IDENTIFIER")]
    pub(crate) require_patient_identifier: bool,
    /// open: an open R4 server; micdr: the Ontario miCDR contribution rules, which imply --validation strict
    /// and --require-patient-identifier (and refuse --update-create).
    #[arg(long, env = "MODE", value_enum, default_value_t = Mode::Open)]
    pub(crate) mode: Mode,
    /// miCDR mode: the known patients (HCN and birth date) and practitioners (licence), one JSON object a
    /// line (README: "Registry file"); submitted Patients and Practitioners are checked against it. Without
    /// it every Patient and Practitioner is accepted.
    #[arg(long, env = "REGISTRY_FILE")]
    pub(crate) registry_file: Option<PathBuf>,
}

impl EngineArgs {
    /// The validation mode in force: `strict` in miCDR mode, else `--validation`.
    pub(crate) fn effective_validation(&self) -> Validation {
        match self.mode {
            Mode::Micdr => Validation::Strict,
            Mode::Open => self.validation,
        }
    }
}

/// Bounds on what one request may cost.
#[derive(Debug, Args)]
pub(crate) struct CostArgs {
    /// Most JSON values (objects, arrays, primitives) in a resource body; more get 422 too-costly.
    #[arg(long, env = "MAX_RESOURCE_ELEMENTS", default_value_t = ResourceLimits::default().max_elements)]
    pub(crate) max_resource_elements: usize,
    /// Most contained resources in a resource body (at every level); more get 422 too-costly.
    #[arg(long, env = "MAX_CONTAINED_RESOURCES", default_value_t = ResourceLimits::default().max_contained)]
    pub(crate) max_contained_resources: usize,
    /// Most distinct meta.profile URLs in a resource body; more get 422 too-costly.
    #[arg(long, env = "MAX_PROFILES", default_value_t = ResourceLimits::default().max_profiles)]
    pub(crate) max_profiles: usize,
    /// Most entries in one transaction or batch Bundle; more get 422 too-costly.
    #[arg(long, env = "MAX_BUNDLE_ENTRIES", default_value_t = ResourceLimits::default().max_bundle_entries)]
    pub(crate) max_bundle_entries: usize,
    /// Most name=value pairs in one search (result parameters included); more get 400 too-costly.
    #[arg(long, env = "MAX_SEARCH_PARAMETERS", default_value_t = QueryLimits::default().max_parameters)]
    pub(crate) max_search_parameters: usize,
    /// Most AND-ed criteria in one search; more get 400 too-costly.
    #[arg(long, env = "MAX_SEARCH_CLAUSES", default_value_t = QueryLimits::default().max_clauses)]
    pub(crate) max_search_clauses: usize,
    /// Most OR-ed values in one search parameter; more get 400 too-costly.
    #[arg(long, env = "MAX_SEARCH_ALTERNATIVES", default_value_t = QueryLimits::default().max_alternatives)]
    pub(crate) max_search_alternatives: usize,
    /// Most bytes in one search parameter's value (all its alternatives); more get 400 too-costly.
    #[arg(long, env = "MAX_SEARCH_VALUE_BYTES", default_value_t = QueryLimits::default().max_value_bytes)]
    pub(crate) max_search_value_bytes: usize,
    /// Most values in one search, all parameters together; more get 400 too-costly.
    #[arg(long, env = "MAX_SEARCH_VALUES", default_value_t = QueryLimits::default().max_values)]
    pub(crate) max_search_values: usize,
    /// Most _sort keys in one search; more get 400 too-costly.
    #[arg(long, env = "MAX_SORT_KEYS", default_value_t = QueryLimits::default().max_sort_keys)]
    pub(crate) max_sort_keys: usize,
    /// Most validations running at once, off the request workers (default: one per core).
    #[arg(long, env = "CPU_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) cpu_concurrency: Option<u32>,
}

impl CostArgs {
    pub(crate) fn query_limits(&self) -> QueryLimits {
        QueryLimits {
            max_parameters: self.max_search_parameters,
            max_clauses: self.max_search_clauses,
            max_alternatives: self.max_search_alternatives,
            max_value_bytes: self.max_search_value_bytes,
            max_values: self.max_search_values,
            max_sort_keys: self.max_sort_keys,
            ..QueryLimits::default()
        }
    }

    pub(crate) fn resource_limits(&self) -> ResourceLimits {
        ResourceLimits {
            max_elements: self.max_resource_elements,
            max_contained: self.max_contained_resources,
            max_profiles: self.max_profiles,
            max_bundle_entries: self.max_bundle_entries,
        }
    }
}

/// Bounds on connections and requests.
#[derive(Debug, Args)]
pub(crate) struct HttpArgs {
    /// Longest wait for the whole header of a request (also how long an idle connection stays open).
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) header_read_timeout_seconds: u64,
    /// Longest wait for the next part of a request body; longer gets 408.
    #[arg(long, env = "BODY_READ_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) body_read_timeout_seconds: u64,
    /// Longest a FHIR request may take, body included; longer gets 503.
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) request_timeout_seconds: u64,
    /// Most open client connections; further ones wait in the listen backlog.
    #[arg(long, env = "MAX_HTTP_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_http_connections: u32,
    /// Most FHIR requests handled at once; more get 503 with Retry-After.
    #[arg(long, env = "MAX_IN_FLIGHT_REQUESTS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_in_flight_requests: u32,
    /// On SIGTERM or Ctrl-C, how long requests in progress may take to finish before connections are cut.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 30)]
    pub(crate) shutdown_timeout_seconds: u64,
    /// Origins whose browser scripts may call the API (CORS): `*`, or a comma-separated list such as
    /// `https://viewer.example.org,http://localhost:3000`. Without it no CORS headers are sent.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_name = "ORIGINS")]
    pub(crate) cors_allowed_origins: Option<CorsOrigins>,
    /// Smallest response body compressed with gzip or br (as Accept-Encoding asks), in bytes.
    #[arg(long, env = "COMPRESSION_MIN_BYTES", default_value_t = 1024)]
    pub(crate) compression_min_bytes: u16,
    /// Serve the Prometheus metrics at /metrics (beside /livez, outside the FHIR base): `true` or `false`.
    #[arg(long, env = "METRICS", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub(crate) metrics: bool,
}

/// Asynchronous Bundle submissions (`Prefer: respond-async`): the queue in the database and this process's
/// worker.
#[derive(Debug, Args)]
pub(crate) struct AsyncArgs {
    /// Most asynchronous submissions waiting or running at once (all processes together); more get 503
    /// with Retry-After.
    #[arg(long, env = "ASYNC_MAX_UNFINISHED", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) async_max_unfinished: u64,
    /// How long the response of a finished asynchronous submission stays readable at its status URL.
    #[arg(long, env = "ASYNC_RETENTION_SECONDS", default_value_t = 24 * 60 * 60)]
    pub(crate) async_retention_seconds: u64,
    /// How long a worker's claim of a submission lasts unless renewed (it renews every third of it while
    /// it runs): the submissions of a process that died run again, elsewhere or after a restart, once this
    /// has passed.
    #[arg(long, env = "ASYNC_LEASE_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) async_lease_seconds: u64,
    /// How often the worker looks for submissions queued by other processes (its own process wakes it).
    #[arg(long, env = "ASYNC_POLL_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) async_poll_seconds: u64,
}

/// Subscription notifications: retries and this process's dispatchers.
#[derive(Debug, Args)]
pub(crate) struct SubscriptionArgs {
    /// Seconds to wait after a first failed delivery; each further failure doubles the wait (each drawn
    /// between half of it and all of it).
    #[arg(long, env = "SUBSCRIPTION_FIRST_RETRY_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) subscription_first_retry_seconds: u64,
    /// Longest wait between two delivery attempts, in seconds.
    #[arg(long, env = "SUBSCRIPTION_MAX_RETRY_SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) subscription_max_retry_seconds: u64,
    /// How long a subscription may keep failing before the server sets it to error and stops trying, in
    /// seconds (its events are kept; setting it active again delivers them).
    #[arg(long, env = "SUBSCRIPTION_RETRY_HORIZON_SECONDS", default_value_t = 24 * 60 * 60)]
    pub(crate) subscription_retry_horizon_seconds: u64,
    /// Seconds to wait for a receiver's answer, unless its Subscription says (backport-timeout).
    #[arg(long, env = "SUBSCRIPTION_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) subscription_timeout_seconds: u64,
    /// How long a dispatcher's claim of a subscription lasts unless renewed: a process that died has its
    /// subscriptions delivered by another (or after a restart) once this has passed.
    #[arg(long, env = "SUBSCRIPTION_LEASE_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(3..))]
    pub(crate) subscription_lease_seconds: u64,
    /// How often an idle dispatcher looks for events recorded by other processes, in milliseconds (this
    /// process's own wake it at once).
    #[arg(long, env = "SUBSCRIPTION_POLL_MILLISECONDS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub(crate) subscription_poll_milliseconds: u64,
    /// Dispatchers in this process: how many receivers are waited for at once (0: this process delivers
    /// nothing, another does).
    #[arg(long, env = "SUBSCRIPTION_DISPATCHERS", default_value_t = 4)]
    pub(crate) subscription_dispatchers: usize,
    /// URL prefixes a Subscription's endpoint must start with, comma-separated (e.g.
    /// `http://emr.example.org/,http://10.1.2.3:8080/hooks/`); without it any `http` endpoint is accepted, so
    /// whoever may create Subscriptions may make the server send requests to any address it can reach.
    #[arg(
        long,
        env = "SUBSCRIPTION_ALLOWED_ENDPOINTS",
        value_delimiter = ',',
        value_name = "PREFIX"
    )]
    pub(crate) subscription_allowed_endpoints: Vec<String>,
}
