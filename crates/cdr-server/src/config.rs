//! Command-line configuration, with environment-variable fallbacks.

use std::net::SocketAddr;
use std::path::PathBuf;

use cdr_interactions::PageLimits;
use cdr_server::profiles::ProfileArgs;
use clap::{Args, Parser, Subcommand, ValueEnum};

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

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve the FHIR API (applies pending migrations first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Validate resource files offline; exit status 1 when any has errors, 2 on usage or IO errors.
    Validate(ValidateArgs),
    /// Rebuild every search index row from the stored resources (after adding SearchParameters or upgrading).
    Reindex(ReindexArgs),
}

/// How much profile validation creates and updates go through.
#[derive(Debug, Clone, Copy, ValueEnum)]
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
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
    /// Address and port to listen on.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Public FHIR base URL used in links and Location headers (default: http://{Host header}/fhir).
    #[arg(long, env = "BASE_URL")]
    pub(crate) base_url: Option<String>,
    /// Largest accepted request body in bytes; larger requests get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub(crate) max_body_bytes: usize,
    /// Let PUT create a resource at a client-chosen id (off: the server assigns every id).
    #[arg(long, env = "UPDATE_CREATE")]
    pub(crate) update_create: bool,
    /// Page size of history (and search) bundles when the client gives no _count.
    #[arg(long, env = "DEFAULT_PAGE_SIZE", default_value_t = PageLimits::default().default_page_size)]
    pub(crate) default_page_size: u32,
    /// Largest page size a client may ask for with _count.
    #[arg(long, env = "MAX_PAGE_SIZE", default_value_t = PageLimits::default().max_page_size)]
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
}
