//! Server configuration: flags and `TIDINGS_*` environment variables, with the defaults of
//! the contract (`127.0.0.1:3002`, data in `./data`, SQLite, bundled plugins).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ipnet::IpNet;

use crate::notifications::Retention;
use crate::plugin::Limits;
use crate::sessions::client_addr::parse_trusted_proxy;

/// `tidings serve` options. Each flag can also be set by its environment variable.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "TIDINGS_LISTEN", default_value = "127.0.0.1:3002")]
    pub listen: SocketAddr,
    /// Directory for the embedded SQLite database.
    #[arg(long, env = "TIDINGS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// A `postgres://` URL to use PostgreSQL instead of SQLite.
    #[arg(long, env = "TIDINGS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// A directory of extra plugin components (`*.wasm`) loaded at start.
    #[arg(long, env = "TIDINGS_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Extra origins (comma-separated, e.g. `https://app.example`) allowed for browser
    /// requests and Socket.IO handshakes, besides the server's own.
    #[arg(long, env = "TIDINGS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Mark the session cookie `Secure` (set this when served over TLS, e.g. behind a proxy).
    #[arg(long, env = "TIDINGS_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// A reverse proxy (IP address or CIDR range, e.g. `127.0.0.1` or `10.0.0.0/8`) whose
    /// `X-Forwarded-For` names the client; repeat the flag or separate with commas. From
    /// other peers the header is ignored. Default: none.
    #[arg(long = "trusted-proxy", env = "TIDINGS_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Budget of one plugin call, in milliseconds of guest code run; no call lasts longer
    /// than 10 times this in wall-clock time, whatever it waits on.
    #[arg(long, env = "TIDINGS_PLUGIN_TIMEOUT_MS", default_value_t = 100)]
    pub plugin_timeout_ms: u64,
    /// Linear memory cap of one plugin instance, in MiB.
    #[arg(long, env = "TIDINGS_PLUGIN_MEMORY_MIB", default_value_t = 64)]
    pub plugin_memory_mib: usize,
    /// Consecutive faults after which a plugin is isolated (answers 503 without being called).
    #[arg(long, env = "TIDINGS_PLUGIN_ISOLATE_AFTER", default_value_t = 5)]
    pub plugin_isolate_after: u64,
    /// How long an isolated plugin rests before it is tried again, in seconds.
    #[arg(long, env = "TIDINGS_PLUGIN_COOL_DOWN_SECS", default_value_t = 10)]
    pub plugin_cool_down_secs: u64,
    /// Limits for particular plugins, comma-separated `name.key=value` with the keys
    /// `timeout_ms`, `memory_mib`, `isolate_after`, `cool_down_secs`, `read_mib`, e.g.
    /// `department.timeout_ms=250,department.memory_mib=32`.
    #[arg(long, env = "TIDINGS_PLUGIN_LIMITS", value_delimiter = ',')]
    pub plugin_limits: Vec<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "TIDINGS_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Skip the bundled plugins (serve only those in the plugin directory).
    #[arg(long, env = "TIDINGS_NO_BUNDLED_PLUGINS")]
    pub no_bundled_plugins: bool,
    /// Keep notifications for resuming clients this many hours…
    #[arg(long, env = "TIDINGS_RETENTION_HOURS", default_value_t = 168)]
    pub retention_hours: u64,
    /// …and at most this many of them.
    #[arg(long, env = "TIDINGS_RETENTION_ENTRIES", default_value_t = 100_000)]
    pub retention_entries: i64,
    /// A bearer token that lets a scraper read `/metrics` without a session.
    #[arg(long, env = "TIDINGS_METRICS_TOKEN")]
    pub metrics_token: Option<String>,
    /// Let ADMINs pin the host clock with `PUT /api/v1/admin/clock` (for tests only).
    #[arg(long, env = "TIDINGS_TEST_CLOCK")]
    pub test_clock: bool,
}

/// The configuration the server runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub plugin_dir: Option<PathBuf>,
    pub allowed_origins: Vec<String>,
    pub secure_cookies: bool,
    /// Peers whose `X-Forwarded-For` is believed (see `sessions::client_addr`).
    pub trusted_proxies: Vec<IpNet>,
    pub limits: Limits,
    pub max_body_bytes: usize,
    pub bundled_plugins: bool,
    pub test_clock: bool,
    pub metrics_token: Option<String>,
    pub retention: Retention,
    /// Create this ADMIN on first start (`TIDINGS_ADMIN_EMAIL`, `TIDINGS_ADMIN_PASSWORD`).
    pub bootstrap_admin: Option<(String, String)>,
}

impl TryFrom<ServeArgs> for Config {
    type Error = anyhow::Error;

    fn try_from(args: ServeArgs) -> anyhow::Result<Self> {
        let bootstrap_admin = match (std::env::var("TIDINGS_ADMIN_EMAIL"), std::env::var("TIDINGS_ADMIN_PASSWORD")) {
            (Ok(email), Ok(password)) if !email.is_empty() => Some((email, password)),
            _ => None,
        };
        let mut limits = Limits {
            timeout: Duration::from_millis(args.plugin_timeout_ms),
            max_memory: args.plugin_memory_mib << 20,
            isolate_after: args.plugin_isolate_after.max(1),
            cool_down: Duration::from_secs(args.plugin_cool_down_secs),
            ..Limits::default()
        };
        limits.per_plugin = per_plugin_limits(&args.plugin_limits, &limits)?;
        let trusted_proxies = args
            .trusted_proxies
            .iter()
            .filter(|p| !p.trim().is_empty())
            .map(|p| parse_trusted_proxy(p).map_err(|e| anyhow::anyhow!("--trusted-proxy: {e}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(Config {
            listen: args.listen,
            data_dir: args.data_dir,
            database_url: args.database_url.filter(|u| !u.is_empty()),
            plugin_dir: args.plugin_dir,
            allowed_origins: args
                .allowed_origins
                .into_iter()
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            secure_cookies: args.secure_cookies,
            trusted_proxies,
            limits,
            max_body_bytes: args.max_body_bytes,
            bundled_plugins: !args.no_bundled_plugins,
            test_clock: args.test_clock,
            metrics_token: args.metrics_token.filter(|t| !t.is_empty()),
            retention: Retention {
                max_age: Duration::from_secs(args.retention_hours * 3600),
                max_entries: args.retention_entries.max(0),
            },
            bootstrap_admin,
        })
    }
}

/// Parse `name.key=value` overrides, each plugin starting from the global `base` limits.
fn per_plugin_limits(specs: &[String], base: &Limits) -> anyhow::Result<BTreeMap<String, Limits>> {
    let mut per_plugin: BTreeMap<String, Limits> = BTreeMap::new();
    for spec in specs.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let (target, value) = spec.split_once('=').with_context(|| format!("{spec:?}: expected name.key=value"))?;
        let (name, key) = target.split_once('.').with_context(|| format!("{spec:?}: expected name.key=value"))?;
        let n: u64 = value.trim().parse().with_context(|| format!("{spec:?}: {value:?} is not a whole number"))?;
        let limits = per_plugin
            .entry(name.trim().to_owned())
            .or_insert_with(|| Limits { per_plugin: BTreeMap::new(), ..base.clone() });
        match key.trim() {
            "timeout_ms" => limits.timeout = Duration::from_millis(n),
            "memory_mib" => limits.max_memory = usize::try_from(n)? << 20,
            "isolate_after" => limits.isolate_after = n.max(1),
            "cool_down_secs" => limits.cool_down = Duration::from_secs(n),
            "read_mib" => limits.max_bytes_read = usize::try_from(n)? << 20,
            other => anyhow::bail!(
                "{spec:?}: unknown limit {other:?} (timeout_ms, memory_mib, isolate_after, cool_down_secs, read_mib)"
            ),
        }
    }
    Ok(per_plugin)
}

impl Config {
    /// A configuration for tests: a free port, the given data directory, bundled plugins.
    pub fn for_tests(data_dir: PathBuf) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            database_url: None,
            plugin_dir: None,
            allowed_origins: Vec::new(),
            secure_cookies: false,
            trusted_proxies: Vec::new(),
            limits: Limits::default(),
            max_body_bytes: 1 << 20,
            bundled_plugins: true,
            test_clock: true,
            metrics_token: None,
            retention: Retention::default(),
            bootstrap_admin: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_plugin_limits_start_from_the_global_ones() {
        let base = Limits::default();
        let specs = ["department.timeout_ms=250".to_owned(), " department.memory_mib=32".to_owned()];
        let parsed = per_plugin_limits(&specs, &base).unwrap();
        let department = &parsed["department"];
        assert_eq!((department.timeout, department.max_memory), (Duration::from_millis(250), 32 << 20));
        assert_eq!(department.isolate_after, base.isolate_after);
        assert!(per_plugin_limits(&["department.speed=1".to_owned()], &base).is_err());
        assert!(per_plugin_limits(&["department=1".to_owned()], &base).is_err());
        assert!(per_plugin_limits(&["department.timeout_ms=fast".to_owned()], &base).is_err());
    }

    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn serve(flags: &[&str]) -> anyhow::Result<Config> {
        let args = <Serve as clap::Parser>::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))?;
        Config::try_from(args.args)
    }

    #[test]
    fn trusted_proxies_repeat_or_separate_with_commas_and_default_to_none() {
        let config = serve(&["--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "127.0.0.1, ::1"]).unwrap();
        let expected: Vec<IpNet> = ["10.0.0.0/8", "127.0.0.1/32", "::1/128"].map(|n| n.parse().unwrap()).to_vec();
        assert_eq!(config.trusted_proxies, expected);
        assert!(serve(&[]).unwrap().trusted_proxies.is_empty());
        assert!(serve(&["--trusted-proxy", "proxy.internal"]).is_err());
    }
}
