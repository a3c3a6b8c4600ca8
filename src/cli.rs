//! The command line as typed (first stage); `config.rs` turns it into checked settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The version `--version` prints: the package's and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RUNBOOK_COMMIT"),
    ")"
);

/// This program, as runs record it.
pub const PROGRAM: &str = concat!(
    "runbook ",
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RUNBOOK_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "runbook",
    version = VERSION,
    about = "A durable runbook engine for Keycloak multi-site operations",
    long_about = "Runs the Keycloak multi-site procedures (failover, switchover, recovery of an \
out-of-sync passive site, switch back) step by step, journaling every step so that a halted or \
crashed run resumes exactly where it stopped.",
    after_help = crate::exit::Code::help()
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The journal: a directory (sled), or a postgres:// URL shared by a team
    /// [default: the environment file's `journal:`, else a per-user data directory]
    #[arg(long, global = true, env = "RUNBOOK_JOURNAL", value_name = "DIR|URL")]
    pub journal: Option<PathBuf>,
    /// How long a driver's lease on its sites lasts without renewal (PostgreSQL
    /// journal); the driver renews it every third of that
    #[arg(long, global = true, env = "RUNBOOK_LEASE_TTL", value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub lease_ttl: std::time::Duration,
    /// The environment file describing the sites [default: the context in use's]
    #[arg(long = "env", global = true, env = "RUNBOOK_ENV", value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// A named context (`runbook context list`) for this command only, instead of the
    /// one in use; not beside --env or --journal
    #[arg(long, global = true, env = "RUNBOOK_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,
    /// How long a command that writes the journal waits while another process holds
    /// it (a local journal) before giving up, as terraform's -lock-timeout
    #[arg(long, global = true, env = "RUNBOOK_LOCK_TIMEOUT", value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub lock_timeout: std::time::Duration,
    /// A directory of runbooks besides the built-in ones
    #[arg(long, global = true, env = "RUNBOOK_DIR", value_name = "DIR")]
    pub runbooks: Option<PathBuf>,
    /// The procedure pack whose runbooks answer to their bare names (`runbook list`
    /// shows them) [default: the environment file's `pack:`, else detected from it,
    /// else keycloak-24]
    #[arg(long, global = true, env = "RUNBOOK_PACK", value_name = "NAME")]
    pub pack: Option<String>,
    /// More logs on stderr (-v debug, -vv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors and the final result on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the built-in runbooks and those in --runbooks DIR
    List(ListArgs),
    /// Show a runbook's parameters and steps
    Show(ShowArgs),
    /// List every action a runbook can name: its effect, arguments, outputs and timeout
    Actions(ActionsArgs),
    /// Name deployments (an environment file and its journal) and switch between them
    #[command(subcommand)]
    Context(ContextCommand),
    /// Preview what a run would do, without doing anything
    Plan(PlanArgs),
    /// Run a runbook
    Run(RunArgs),
    /// Continue a halted or failed run where it stopped
    Resume(ResumeArgs),
    /// Show a run's state (the latest run without an id)
    Status(StatusArgs),
    /// List past and current runs
    History(HistoryArgs),
    /// Abort a run: it will not be resumed, and its site locks are released
    Abort(AbortArgs),
    /// Check runbook files (a file or every *.yaml in a directory)
    Validate(ValidateArgs),
    /// Start the lab: a simulated two-site deployment on 127.0.0.1 to rehearse on
    Lab(LabArgs),
    /// What state the deployment is in, and which runbook fixes it (read-only)
    Check(CheckArgs),
    /// Measure the engine (journaled step overhead, resume, plan, memory, a procedure
    /// against the lab) and print a table
    Bench(BenchArgs),
    /// Work on a journal itself
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Work on an environment file
    #[command(subcommand)]
    Env(EnvCommand),
    /// Print a shell completion script (`runbook completion bash > /etc/bash_completion.d/runbook`)
    Completion(CompletionArgs),
    /// A run's report for a post-incident review (Markdown, one HTML file, or JSON)
    Report(ReportArgs),
    /// A read-only web page of the runs, live while they run (loopback by default)
    Serve(ServeArgs),
    /// Answer Alertmanager's SiteOffline alerts with journaled, guarded fence-site runs,
    /// and serve the deployment's state as Prometheus metrics (loopback by default)
    Respond(RespondArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run (e.g. r-3)
    pub run_id: String,
    /// md (default), html (one self-contained file) or json
    #[arg(long, default_value = "md", value_parser = ["md", "html", "json"])]
    pub format: String,
    /// Write to this file instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RespondArgs {
    /// Where to listen (Alertmanager's webhook URL is http(s)://ADDR/alerts; metrics on /metrics)
    #[arg(long, default_value = "127.0.0.1:9095")]
    pub listen: std::net::SocketAddr,
    /// Judge every procedure's guards against the deployment this often (read only) and
    /// export which would be accepted (`runbook_procedure_ready`); 0 turns it off
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub readiness_every: std::time::Duration,
    /// Listen on an address other than loopback (give TLS too)
    #[arg(long)]
    pub allow_remote: bool,
    /// HTTP basic auth: the user Alertmanager sends (with --basic-password-file)
    #[arg(long, value_name = "USER")]
    pub basic_user: Option<String>,
    /// HTTP basic auth: a file holding the password (its first line), or env:NAME
    #[arg(long, value_name = "FILE|env:NAME")]
    pub basic_password_file: Option<String>,
    /// A bearer token instead: a file holding it, or env:NAME
    #[arg(long, value_name = "FILE|env:NAME")]
    pub bearer_token_file: Option<String>,
    /// Serve /metrics without credentials (a Prometheus that cannot send them); the
    /// webhook stays authenticated. The metrics say which site is fenced and which
    /// procedure would be refused: keep the listener on loopback or a trusted network
    #[arg(long)]
    pub metrics_open: bool,
    /// Serve https with this certificate (PEM; with --tls-key)
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM)
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Listen on an address other than loopback: with --users (and TLS) for the page's
    /// own login, or behind a proxy that authenticates
    #[arg(long)]
    pub allow_remote: bool,
    /// The users file: names, password hashes, bearer-token hashes and roles (viewer,
    /// operator, approver). With it every request is authenticated and the page can
    /// approve, skip, retry, abort and resume; without it the page is read-only
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Read a password from stdin, print its hash for the users file, and exit
    #[arg(long, conflicts_with = "new_token")]
    pub hash_password: bool,
    /// Print a new bearer token and the hash the users file keeps of it, and exit
    #[arg(long)]
    pub new_token: bool,
    /// A host name the page is served under besides the loopback ones (the name the
    /// authenticating proxy forwards); a request naming another host is refused (421),
    /// so a page elsewhere cannot read this one through DNS rebinding
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_hosts: Vec<String>,
    /// How long a client may take to send a request's head before it is disconnected
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// bash, zsh, fish, elvish or powershell
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Ask every endpoint of every site which site it is (read-only): exit 0 when each
    /// proves its site, 8 when one does not or cannot, 2 for a file that does not load
    Check(EnvCheckArgs),
}

#[derive(Debug, Args)]
pub struct EnvCheckArgs {
    /// The environment file (default: --env / RUNBOOK_ENV)
    pub file: Option<PathBuf>,
    /// One JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Copy a sled journal's runs into a PostgreSQL journal (idempotent: a run already
    /// there is left as it is)
    Copy(CopyArgs),
    /// Walk every run's hash chain: say which run and event was edited, removed or
    /// reordered (exit 12), or that none was (0)
    Verify(VerifyArgs),
    /// Write the journal as JSON lines (one event each, with its hash), for a SIEM
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Only this run
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    /// One JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only this run
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    /// Write to this file instead of stdout
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The sled journal directory to copy from
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// The postgres:// URL to copy to
    #[arg(long, value_name = "URL")]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Steps in the long runbook
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Past runs in the journal when measuring resume
    #[arg(long, default_value_t = 10_000)]
    pub past_runs: usize,
    /// Repetitions of the resume, plan and lab measurements
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The primary site, used only when the Route53 failover records cannot be read
    /// (otherwise the PRIMARY record's site is the primary, whatever this says)
    /// [default: the pack's, site-a for keycloak-24]
    #[arg(long)]
    pub primary: Option<String>,
    /// The secondary site, used only when the Route53 failover records cannot be read
    /// [default: the pack's, site-b for keycloak-24]
    #[arg(long)]
    pub secondary: Option<String>,
    /// The Keycloak caches to compare (comma-separated) [default: the pack's, the 8
    /// caches of the Keycloak 24 guide]
    #[arg(long, value_delimiter = ',')]
    pub caches: Option<Vec<String>>,
    /// The path a failed-over primary's health check points at [default: the pack's,
    /// /health/down for keycloak-24]
    #[arg(long)]
    pub down_path: Option<String>,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Keep checking, and serve the state as Prometheus metrics on this address
    /// (`/metrics`; loopback only) until stopped
    #[arg(long, value_name = "ADDR")]
    pub watch: Option<std::net::SocketAddr>,
    /// With --watch: judge every procedure's guards against the deployment this often
    /// (read only) and export which would be accepted (`runbook_procedure_ready`); 0
    /// turns it off (AWS ARC evaluates its plans every 30 minutes; a bridge wants to
    /// know sooner)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub readiness_every: std::time::Duration,
}

#[derive(Debug, Args, Clone)]
pub struct LabOptions {
    /// Multiply every production duration (push-state, scaling, failover, health
    /// checks) by this: 0.001 turns minutes into fractions of a second, 1 is real time
    #[arg(long, default_value_t = 0.001, value_name = "X")]
    pub time_scale: f64,
    /// Inject a fault from the start (repeatable): offline-not-sticking:SITE[:NODE],
    /// cache-error:CACHE,
    /// push-error:CACHE[:TIMES], http-5xx:SHARE[:SITE], latency:DURATION,
    /// slow-scale-down:DURATION, partition, batch-stuck, site-down:SITE; with --pack
    /// keycloak-26: nlb-unhealthy:SITE, nlb-site-tag:SITE[:VALUE],
    /// accelerator-writer:SITE[:READS], accelerator-busy:COUNT
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<String>,
    /// Sessions per second that users create on the serving site
    #[arg(long, default_value_t = 0.0, value_name = "N")]
    pub workload: f64,
    /// The Keycloak caches: kc24 (8 caches) or kc25 (4) [default: the pack's lab]
    #[arg(long, value_parser = ["kc24", "kc25"])]
    pub caches: Option<String>,
    /// The Infinispan version the lab plays: 14 (Data Grid 8.4, what Keycloak 24 ships:
    /// only /rest/v2/cache-managers/default routes), 15 (only /rest/v2/container) or 16
    /// (both, the cache-managers ones deprecated) [default: the pack's lab]
    #[arg(long, value_parser = ["14", "15", "16"])]
    pub infinispan: Option<String>,
    /// Keycloak's database: aurora (the lab's RDS API), pgo (CrunchyData PGO at each
    /// site over real PostgreSQL servers, the primary at the first site and a standby
    /// cluster streaming from it at the second; needs the PostgreSQL server binaries)
    /// or cnpg (CloudNativePG's distributed topology over real PostgreSQL servers: a
    /// primary Cluster and a replica Cluster, demotion and promotion tokens)
    #[arg(long, value_parser = ["aurora", "pgo", "cnpg"])]
    pub database: Option<String>,
    /// What sends clients to the sites: route53 (failover records), accelerator (AWS
    /// Global Accelerator) or haproxy (a real HAProxy in front of both sites, started
    /// from the PATH; Debian: apt-get install haproxy) [default: the pack's lab]
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(lab::world::Traffic::NAMES))]
    pub traffic: Option<String>,
    /// Keycloak's multi-cluster v2 (`stateless`): the environment file names no
    /// external Infinispan, so the Keycloak 26 pack runs its v2 shape
    #[arg(long)]
    pub stateless: bool,
    /// With --database cnpg: how the Clusters replicate between the sites: sync (every
    /// commit waits for the other site, as Keycloak's multi-site guide requires) or
    /// async (no `spec.postgresql.synchronous`: a move's guard refuses it unless forced)
    #[arg(long, value_parser = ["sync", "async"], default_value = "sync")]
    pub replication: String,
    /// Serve Infinispan and the Kubernetes API over HTTPS with a CA of the lab's own
    /// (written as DIR/ca.pem); the Kubernetes API then requires the kubeconfig's token
    #[arg(long)]
    pub tls: bool,
}

#[derive(Debug, Args)]
pub struct LabArgs {
    /// Where to write env.yaml and the lab's secrets [default: a per-user data directory]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub options: LabOptions,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ActionsArgs {
    /// One JSON array on stdout
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// The reference table (docs/actions.md)
    #[arg(long)]
    pub markdown: bool,
}

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Use a context from now on; with --env (and --journal, --pack), create or update
    /// it first
    Use {
        /// Its name (letters, digits, '-', '_', '.')
        name: String,
    },
    /// List the contexts; `*` marks the one in use
    List {
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// What a context names (the one in use without a name)
    Show { name: Option<String> },
    /// Use no context: each command reads --env / RUNBOOK_ENV again
    Unset,
    /// Forget a context (its environment file and journal are left alone)
    Delete { name: String },
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Runbook name or path to a YAML file
    pub runbook: String,
    /// One JSON object on stdout (`format` 1: name, title, origin, description,
    /// params, guards, steps; fields are only ever added)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ParamArgs {
    /// A parameter: -p name=value (repeatable)
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Runbook name or path to a YAML file
    pub runbook: String,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Also probe current state (read-only calls only)
    #[arg(long)]
    pub live: bool,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Runbook name or path to a YAML file
    pub runbook: String,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Do not ask before destructive steps
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// End with one JSON object on stdout
    #[arg(long)]
    pub json: bool,
    /// Only show the plan (same as `runbook plan`)
    #[arg(long)]
    pub dry_run: bool,
    /// Run against a lab started in this process (its own journal unless --journal)
    #[arg(long)]
    pub lab: bool,
    /// Journal this run as refused with this reason, doing nothing and taking no site,
    /// its parameters as given (`runbook respond`, for an alert it cannot map)
    #[arg(long, value_name = "REASON", hide = true)]
    pub refused: Option<String>,
    #[command(flatten)]
    pub lab_options: LabOptions,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("directive").args(["retry_step", "skip_step", "approve"])))]
pub struct ResumeArgs {
    /// The run id (e.g. r-12)
    pub run_id: String,
    /// Apply this step again (a destructive step in doubt, or a failed one)
    #[arg(long, value_name = "STEP")]
    pub retry_step: Option<String>,
    /// Mark this step done without doing it (needs --reason)
    #[arg(long, value_name = "STEP", requires = "reason")]
    pub skip_step: Option<String>,
    /// Why the step may be skipped (journaled)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Pass this manual gate
    #[arg(long, value_name = "STEP")]
    pub approve: Option<String>,
    /// Secret parameters again (they are never stored): -p name=value
    #[command(flatten)]
    pub params: ParamArgs,
    /// End with one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run id (default: the latest run)
    pub run_id: Option<String>,
    /// Refresh until the run is over (completed, aborted, refused): a halted or failed
    /// run is followed on when it is resumed, from a terminal or the page
    #[arg(long)]
    pub watch: bool,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only runs of this runbook
    #[arg(long, value_name = "NAME")]
    pub runbook: Option<String>,
    /// Only runs in this state
    #[arg(long, value_parser = ["running", "halted", "failed", "completed", "aborted"])]
    pub status: Option<String>,
    /// The newest N runs (0: all)
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: usize,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AbortArgs {
    /// The run id (e.g. r-12)
    pub run_id: String,
    /// Why (journaled)
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A runbook file, or a directory of them
    pub path: PathBuf,
}
