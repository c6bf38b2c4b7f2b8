//! Typed settings: defaults, then a TOML file (`--config`), then `GRIDCASE_*` environment variables.
//!
//! A bad setting stops start-up with one line that names it; nothing is guessed.

use std::{
    collections::BTreeMap,
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use crate::domain::{
    alerts::{ANY_CLASS, AlertRules, Threshold, TierThresholds},
    calendar::{OfficeHours, SlaDuration},
    sla::ExtensionRules,
};
pub use crate::storage::redact_url;

/// Everything the service reads at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `sqlite://FILE?mode=rwc`, `sqlite::memory:` or `postgres://…`.
    pub database_url: String,
    pub listen: SocketAddr,
    /// Attachments and the generated development secret live here.
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    /// The largest gRPC message accepted or sent, in bytes (a directory bundle is one message).
    pub max_message_bytes: usize,
    /// How long in-flight calls get to finish after SIGINT/SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Database connection pool size (on PostgreSQL the intake writers open 3 more).
    pub db_max_connections: u32,
    /// The largest attachment accepted, in bytes.
    pub max_attachment_bytes: u64,
    /// The largest directory bundle `ImportDirectory` and `gridcase directory import` accept.
    pub max_bundle_bytes: usize,
    /// How often each replica scans for SLA levels that have come.
    #[serde(with = "humantime_serde")]
    pub sla_tick: Duration,
    /// The office hours of each working day, Asia/Shanghai: what `Nwh` SLA durations and the
    /// statistics' working hours count. `["08:30-12:00", "13:30-17:30"]` by default; periods
    /// `HH:MM-HH:MM`, in order, not overlapping. Every replica must be given the same.
    #[serde(deserialize_with = "office_hours")]
    pub office_hours: OfficeHours,
    /// The longest a case waits on the reporter (`AwaitReporter`) with its resolve clock
    /// paused: the wait then ends by itself and counts against no one. An SLA duration
    /// (`5wd` by default; `48h`, `3wd`, `16wh`).
    #[serde(deserialize_with = "sla_duration")]
    pub max_reporter_wait: SlaDuration,
    /// Extensions (延期) granted to a case's resolve clock in one cycle at most (1 by default;
    /// 0: none are granted).
    pub extensions_per_cycle: u32,
    /// How far extensions together may move a cycle's due time past where it fell before the
    /// first (`10wd` by default: the common 12345 rule).
    pub extension_ceiling: SlaDuration,
    /// How long after dispatch a unit returns a case as not theirs on its own word (`2wd` by
    /// default); later, the return is a request the holding center decides.
    pub return_window: SlaDuration,
    /// Early warning (研判预警): the hotspot thresholds per category class and tier and the
    /// repeat-reporter threshold, each `COUNT/WINDOW` (`5/72h`, `3/30d`):
    ///
    /// ```toml
    /// [alerts]
    /// repeat_reporter = "3/30d"
    /// [alerts.hotspot]
    /// "*" = { community = "5/72h", township = "5/72h" }
    /// dispute = { community = "3/72h", township = "3/72h" }
    /// ```
    ///
    /// A class not named takes `"*"`'s; a tier not named takes the class's default.
    #[serde(deserialize_with = "alert_rules")]
    pub alerts: AlertRules,
    /// After this much quiet on a connection the server sends an HTTP/2 ping, so that long-lived
    /// streams (WatchEvents) survive proxies and mobile networks that drop idle connections,
    /// and a peer that is gone is noticed (no answer within 20 s closes the connection).
    #[serde(with = "humantime_serde")]
    pub keepalive: Duration,
    /// A tile server on the deployment's own network (`https://tiles.example/{z}/{x}/{y}.png`)
    /// the console draws under the directory's shapes; none by default (fully offline).
    pub console_tile_url: Option<String>,
    /// Where Prometheus scrapes the metrics (`GET /metrics`); off by default.
    pub metrics_listen: Option<SocketAddr>,
    /// Which calls write an access log line: `off`, `errors` (the default), `sampled` (errors
    /// and one in `access_log_sample` successful calls) or `all`. Internal errors are always
    /// logged, whatever this says.
    pub access_log: AccessLog,
    pub access_log_sample: u32,
    pub limits: LimitSettings,
    pub jwt: JwtSettings,
}

/// Which calls write an access log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    Off,
    Errors,
    Sampled,
    All,
}

impl std::str::FromStr for AccessLog {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(AccessLog::Off),
            "errors" => Ok(AccessLog::Errors),
            "sampled" => Ok(AccessLog::Sampled),
            "all" => Ok(AccessLog::All),
            _ => Err(format!("{s:?}: expected off, errors, sampled or all")),
        }
    }
}

/// A rate: requests a second, and how many may come at once after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// Overload protection.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Requests in flight at once (event streams not counted once open); beyond it a call is
    /// refused at once with RESOURCE_EXHAUSTED.
    pub max_in_flight: usize,
    /// Per subject, by role (`grid_member = { per_second = 20, burst = 40 }`); a rate of 0
    /// turns the role's limit off. Roles not named keep their defaults.
    pub rates: BTreeMap<String, Rate>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_in_flight: 2048,
            rates: BTreeMap::new(),
        }
    }
}

impl LimitSettings {
    /// No per-subject rate for any role (load tests, and tests that are not about limits);
    /// the ceiling on requests in flight stays.
    pub fn turn_rates_off(&mut self) {
        for role in crate::domain::Role::ALL {
            self.rates.insert(
                role.as_str().to_owned(),
                Rate {
                    per_second: 0,
                    burst: 0,
                },
            );
        }
    }

    /// The rate of one subject of `role`: configured, or the default: generous for a person at
    /// a handset or a desk, more for service identities.
    pub fn rate(&self, role: crate::domain::Role) -> Rate {
        use crate::domain::Role::*;
        if let Some(r) = self.rates.get(role.as_str()) {
            return *r;
        }
        let (per_second, burst) = match role {
            GridMember | UnitStaff => (20, 60),
            Dispatcher | Supervisor => (50, 150),
            Gateway => (500, 1000),
            Admin => (50, 150),
        };
        Rate { per_second, burst }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The one signing algorithm a deployment accepts; tokens of any other are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    HS256,
    RS256,
    EdDSA,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    pub algorithm: JwtAlgorithm,
    /// HS256 only. Without one, a random secret is made once and kept in `{data_dir}/jwt-secret`.
    pub secret: Option<SecretString>,
    /// RS256 / EdDSA: PEM public keys by `kid`.
    pub public_keys: BTreeMap<String, PathBuf>,
    /// RS256 / EdDSA: the PEM private key `gridcase token` signs with, and its `kid`.
    pub signing_key: Option<PathBuf>,
    pub signing_kid: Option<String>,
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "sqlite://gridcase.db?mode=rwc".to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("gridcase-data"),
            log_format: LogFormat::Text,
            max_message_bytes: 64 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
            db_max_connections: 16,
            max_bundle_bytes: 64 * 1024 * 1024,
            max_attachment_bytes: 20 * 1024 * 1024,
            sla_tick: Duration::from_secs(5),
            office_hours: OfficeHours::default(),
            max_reporter_wait: crate::service::cases::DEFAULT_MAX_REPORTER_WAIT,
            extensions_per_cycle: ExtensionRules::default().per_cycle,
            extension_ceiling: ExtensionRules::default().ceiling,
            return_window: crate::service::cases::DEFAULT_RETURN_WINDOW,
            alerts: AlertRules::default(),
            keepalive: Duration::from_secs(30),
            console_tile_url: None,
            metrics_listen: None,
            access_log: AccessLog::Errors,
            access_log_sample: 100,
            limits: LimitSettings::default(),
            jwt: JwtSettings::default(),
        }
    }
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            algorithm: JwtAlgorithm::HS256,
            secret: None,
            public_keys: BTreeMap::new(),
            signing_key: None,
            signing_kid: None,
            issuer: "gridcase".to_owned(),
            audience: "gridcase".to_owned(),
            leeway_secs: 30,
        }
    }
}

/// `max_reporter_wait = "5wd"`, checked as it is read.
fn sla_duration<'de, D: Deserializer<'de>>(d: D) -> Result<SlaDuration, D::Error> {
    let text = String::deserialize(d)?;
    text.parse()
        .map_err(|e| serde::de::Error::custom(format!("max_reporter_wait: {e}")))
}

/// The `[alerts]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsFile {
    enabled: Option<bool>,
    repeat_reporter: Option<String>,
    #[serde(default)]
    hotspot: BTreeMap<String, TiersFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TiersFile {
    community: Option<String>,
    township: Option<String>,
}

/// Sets one class's threshold at one tier (`community` or `township`) over `rules`; a class
/// named for the first time starts from `"*"`'s thresholds.
fn set_hotspot(rules: &mut AlertRules, class: &str, tier: &str, value: &str) -> Result<(), String> {
    let class = class.trim();
    if class.is_empty() {
        return Err("an empty class code".into());
    }
    let threshold: Threshold = value.parse()?;
    let base = rules
        .hotspot
        .get(class)
        .or_else(|| rules.hotspot.get(ANY_CLASS))
        .copied()
        .unwrap_or(TierThresholds::DEFAULT);
    let entry = rules.hotspot.entry(class.to_owned()).or_insert(base);
    match tier.trim() {
        "community" => entry.community = threshold,
        "township" => entry.township = threshold,
        other => return Err(format!("{other:?} is not a tier (community or township)")),
    }
    Ok(())
}

/// The `[alerts]` table over the defaults, checked as it is read.
fn alert_rules<'de, D: Deserializer<'de>>(d: D) -> Result<AlertRules, D::Error> {
    let file = AlertsFile::deserialize(d)?;
    let mut rules = AlertRules::default();
    if let Some(enabled) = file.enabled {
        rules.enabled = enabled;
    }
    if let Some(v) = file.repeat_reporter {
        rules.repeat_reporter = v
            .parse()
            .map_err(|e| serde::de::Error::custom(format!("alerts.repeat_reporter: {e}")))?;
    }
    for (class, tiers) in file.hotspot {
        for (tier, value) in [("community", tiers.community), ("township", tiers.township)] {
            if let Some(v) = value {
                set_hotspot(&mut rules, &class, tier, &v).map_err(|e| {
                    serde::de::Error::custom(format!("alerts.hotspot.{class}.{tier}: {e}"))
                })?;
            }
        }
    }
    Ok(rules)
}

/// `office_hours = ["08:30-12:00", "13:30-17:30"]`, checked as it is read.
fn office_hours<'de, D: Deserializer<'de>>(d: D) -> Result<OfficeHours, D::Error> {
    struct Periods;
    impl<'de> serde::de::Visitor<'de> for Periods {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(
                "office_hours: a list of periods such as [\"08:30-12:00\", \"13:30-17:30\"]",
            )
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut periods = Vec::new();
            while let Some(period) = seq.next_element::<String>()? {
                periods.push(period);
            }
            Ok(periods)
        }
    }
    let periods = d.deserialize_seq(Periods)?;
    OfficeHours::parse(&periods).map_err(|e| serde::de::Error::custom(format!("office_hours: {e}")))
}

/// A setting that cannot be used; the message is the one line start-up prints.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn new(msg: impl Into<String>) -> Self {
        ConfigError(msg.into())
    }
}

/// HS256 secrets shorter than this are refused (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET_BYTES: usize = 32;

impl Settings {
    /// Defaults, then the file (when given), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::load_from(file, |name| std::env::var(name).ok())
    }

    /// As [`Settings::load`], reading variables through `env` (tests pass their own).
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut settings = match file {
            None => Settings::default(),
            Some(path) => {
                let text = fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(format!("cannot read {}: {e}", path.display()))
                })?;
                toml::from_str(&text).map_err(|e| {
                    ConfigError::new(format!("{}: {}", path.display(), e.message().trim_end()))
                })?
            }
        };
        settings.apply_env(env)?;
        settings.validate()?;
        Ok(settings)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parsed<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value
                .parse()
                .map_err(|e| ConfigError::new(format!("{name}={value:?}: {e}")))
        }
        if let Some(v) = env("GRIDCASE_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = env("GRIDCASE_LISTEN") {
            self.listen = parsed("GRIDCASE_LISTEN", &v)?;
        }
        if let Some(v) = env("GRIDCASE_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("GRIDCASE_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::new(format!(
                        "GRIDCASE_LOG_FORMAT={v:?}: expected text or json"
                    )));
                }
            };
        }
        if let Some(v) = env("GRIDCASE_MAX_MESSAGE_BYTES") {
            self.max_message_bytes = parsed("GRIDCASE_MAX_MESSAGE_BYTES", &v)?;
        }
        if let Some(v) = env("GRIDCASE_MAX_BUNDLE_BYTES") {
            self.max_bundle_bytes = parsed("GRIDCASE_MAX_BUNDLE_BYTES", &v)?;
        }
        if let Some(v) = env("GRIDCASE_SLA_TICK") {
            self.sla_tick = humantime::parse_duration(&v)
                .map_err(|e| ConfigError::new(format!("GRIDCASE_SLA_TICK={v:?}: {e} (e.g. 5s)")))?;
        }
        if let Some(v) = env("GRIDCASE_OFFICE_HOURS") {
            self.office_hours = v.parse().map_err(|e| {
                ConfigError::new(format!(
                    "GRIDCASE_OFFICE_HOURS={v:?}: {e} (separate periods with commas: 08:30-12:00,13:30-17:30)"
                ))
            })?;
        }
        if let Some(v) = env("GRIDCASE_MAX_REPORTER_WAIT") {
            self.max_reporter_wait = v.parse().map_err(|e| {
                ConfigError::new(format!("GRIDCASE_MAX_REPORTER_WAIT={v:?}: {e} (e.g. 5wd)"))
            })?;
        }
        for (name, slot) in [
            ("GRIDCASE_EXTENSION_CEILING", &mut self.extension_ceiling),
            ("GRIDCASE_RETURN_WINDOW", &mut self.return_window),
        ] {
            if let Some(v) = env(name) {
                *slot = v
                    .parse()
                    .map_err(|e| ConfigError::new(format!("{name}={v:?}: {e} (e.g. 2wd)")))?;
            }
        }
        if let Some(v) = env("GRIDCASE_EXTENSIONS_PER_CYCLE") {
            self.extensions_per_cycle = parsed("GRIDCASE_EXTENSIONS_PER_CYCLE", &v)?;
        }
        if let Some(v) = env("GRIDCASE_ALERT_HOTSPOT") {
            for entry in v.split(',').filter(|e| !e.trim().is_empty()) {
                let set = entry
                    .split_once('=')
                    .and_then(|(key, value)| {
                        key.rsplit_once('.')
                            .map(|(class, tier)| (class, tier, value))
                    })
                    .ok_or_else(|| "not CLASS.TIER=COUNT/WINDOW".to_owned())
                    .and_then(|(class, tier, value)| {
                        set_hotspot(&mut self.alerts, class, tier, value.trim())
                    });
                set.map_err(|e| {
                    ConfigError::new(format!(
                        "GRIDCASE_ALERT_HOTSPOT={v:?}: {entry:?}: {e} (e.g. dispute.community=3/72h,*.township=5/72h)"
                    ))
                })?;
            }
        }
        if let Some(v) = env("GRIDCASE_ALERTS") {
            self.alerts.enabled = match v.as_str() {
                "on" => true,
                "off" => false,
                _ => {
                    return Err(ConfigError::new(format!(
                        "GRIDCASE_ALERTS={v:?}: expected on or off"
                    )));
                }
            };
        }
        if let Some(v) = env("GRIDCASE_ALERT_REPEAT_REPORTER") {
            self.alerts.repeat_reporter = v.parse().map_err(|e| {
                ConfigError::new(format!("GRIDCASE_ALERT_REPEAT_REPORTER={v:?}: {e}"))
            })?;
        }
        if let Some(v) = env("GRIDCASE_KEEPALIVE") {
            self.keepalive = humantime::parse_duration(&v).map_err(|e| {
                ConfigError::new(format!("GRIDCASE_KEEPALIVE={v:?}: {e} (e.g. 30s)"))
            })?;
        }
        if let Some(v) = env("GRIDCASE_METRICS_LISTEN") {
            self.metrics_listen = Some(parsed("GRIDCASE_METRICS_LISTEN", &v)?);
        }
        if let Some(v) = env("GRIDCASE_ACCESS_LOG") {
            self.access_log = v
                .parse()
                .map_err(|e| ConfigError::new(format!("GRIDCASE_ACCESS_LOG={e}")))?;
        }
        if let Some(v) = env("GRIDCASE_MAX_IN_FLIGHT") {
            self.limits.max_in_flight = parsed("GRIDCASE_MAX_IN_FLIGHT", &v)?;
        }
        if let Some(v) = env("GRIDCASE_RATE_LIMITS") {
            match v.as_str() {
                "off" => self.limits.turn_rates_off(),
                "on" => {}
                _ => {
                    return Err(ConfigError::new(format!(
                        "GRIDCASE_RATE_LIMITS={v:?}: expected on or off"
                    )));
                }
            }
        }
        if let Some(v) = env("GRIDCASE_CONSOLE_TILE_URL") {
            self.console_tile_url = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = env("GRIDCASE_JWT_SECRET") {
            self.jwt.secret = Some(SecretString::from(v));
        }
        if let Some(v) = env("GRIDCASE_JWT_ISSUER") {
            self.jwt.issuer = v;
        }
        if let Some(v) = env("GRIDCASE_JWT_AUDIENCE") {
            self.jwt.audience = v;
        }
        if let Some(v) = env("GRIDCASE_JWT_ALGORITHM") {
            self.jwt.algorithm = match v.as_str() {
                "HS256" => JwtAlgorithm::HS256,
                "RS256" => JwtAlgorithm::RS256,
                "EdDSA" => JwtAlgorithm::EdDSA,
                _ => {
                    return Err(ConfigError::new(format!(
                        "GRIDCASE_JWT_ALGORITHM={v:?}: expected HS256, RS256 or EdDSA"
                    )));
                }
            };
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let scheme_ok = ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| self.database_url.starts_with(p));
        if !scheme_ok {
            return Err(ConfigError::new(format!(
                "database_url {:?}: expected sqlite:… or postgres://…",
                redact_url(&self.database_url)
            )));
        }
        if self.max_message_bytes < 1024 {
            return Err(ConfigError::new("max_message_bytes must be at least 1024"));
        }
        if self.db_max_connections == 0 {
            return Err(ConfigError::new("db_max_connections must be at least 1"));
        }
        // tokio-cron-scheduler repeats jobs in whole seconds.
        if self.sla_tick < Duration::from_secs(1)
            || self.sla_tick > Duration::from_secs(3600)
            || self.sla_tick.subsec_nanos() != 0
        {
            return Err(ConfigError::new(
                "sla_tick must be whole seconds from 1s to 1h (how often SLA levels are looked for)",
            ));
        }
        if self.keepalive < Duration::from_secs(1) || self.keepalive > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "keepalive must be from 1s to 1h (the quiet after which a connection is pinged)",
            ));
        }
        if self.limits.max_in_flight == 0 {
            return Err(ConfigError::new("limits.max_in_flight must be at least 1"));
        }
        if self.access_log_sample == 0 {
            return Err(ConfigError::new("access_log_sample must be at least 1"));
        }
        for role in self.limits.rates.keys() {
            if role.parse::<crate::domain::Role>().is_err() {
                return Err(ConfigError::new(format!(
                    "limits.rates.{role}: not a role (grid_member, unit_staff, dispatcher, supervisor, gateway, admin)"
                )));
            }
        }
        if let Some(url) = &self.console_tile_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::new(
                "console_tile_url must be an http:// or https:// URL with {z}, {x} and {y}",
            ));
        }
        let jwt = &self.jwt;
        if jwt.issuer.is_empty() || jwt.audience.is_empty() {
            return Err(ConfigError::new(
                "jwt issuer and audience must not be empty",
            ));
        }
        match jwt.algorithm {
            JwtAlgorithm::HS256 => {
                if let Some(secret) = &jwt.secret
                    && secret.expose_secret().len() < MIN_SECRET_BYTES
                {
                    return Err(ConfigError::new(format!(
                        "GRIDCASE_JWT_SECRET is {} bytes; HS256 needs at least {MIN_SECRET_BYTES}",
                        secret.expose_secret().len()
                    )));
                }
                if !jwt.public_keys.is_empty() {
                    return Err(ConfigError::new(
                        "jwt.public_keys are for RS256/EdDSA; algorithm is HS256",
                    ));
                }
            }
            JwtAlgorithm::RS256 | JwtAlgorithm::EdDSA => {
                if jwt.public_keys.is_empty() {
                    return Err(ConfigError::new(format!(
                        "jwt.algorithm {:?} needs at least one entry in jwt.public_keys (kid = PEM file)",
                        jwt.algorithm
                    )));
                }
                if jwt.secret.is_some() {
                    return Err(ConfigError::new(format!(
                        "a JWT secret is set but jwt.algorithm is {:?}; refusing to guess which is meant",
                        jwt.algorithm
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_defaults_are_an_embedded_sqlite_on_the_local_port() {
        let s = Settings::load_from(None, env_of(&[])).unwrap();
        assert!(s.database_url.starts_with("sqlite://"));
        assert_eq!(s.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(s.jwt.issuer, "gridcase");
        assert_eq!(s.jwt.audience, "gridcase");
        assert_eq!(s.jwt.algorithm, JwtAlgorithm::HS256);
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gridcase.toml");
        fs::write(
            &path,
            "listen = \"127.0.0.1:6000\"\ndatabase_url = \"sqlite::memory:\"\n[jwt]\nissuer = \"file-iss\"\n",
        )
        .unwrap();
        let s = Settings::load_from(
            Some(&path),
            env_of(&[("GRIDCASE_LISTEN", "127.0.0.1:7000")]),
        )
        .unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(s.database_url, "sqlite::memory:");
        assert_eq!(s.jwt.issuer, "file-iss");
    }

    #[test]
    fn bad_settings_are_refused_with_one_line_naming_them() {
        let cases: &[(&'static [(&'static str, &'static str)], &str)] = &[
            (&[("GRIDCASE_LISTEN", "nowhere")], "GRIDCASE_LISTEN"),
            (&[("GRIDCASE_DATABASE_URL", "mysql://x")], "database_url"),
            (&[("GRIDCASE_JWT_SECRET", "short")], "GRIDCASE_JWT_SECRET"),
            (
                &[("GRIDCASE_JWT_ALGORITHM", "none")],
                "GRIDCASE_JWT_ALGORITHM",
            ),
            (&[("GRIDCASE_JWT_ALGORITHM", "RS256")], "public_keys"),
            (&[("GRIDCASE_LOG_FORMAT", "xml")], "GRIDCASE_LOG_FORMAT"),
            (
                &[("GRIDCASE_OFFICE_HOURS", "13:30-12:00")],
                "GRIDCASE_OFFICE_HOURS",
            ),
            (&[("GRIDCASE_OFFICE_HOURS", "")], "GRIDCASE_OFFICE_HOURS"),
        ];
        for (env, names) in cases {
            let err = Settings::load_from(None, env_of(env))
                .unwrap_err()
                .to_string();
            assert!(err.contains(names), "{err:?} should name {names}");
            assert!(!err.contains('\n'), "{err:?} should be one line");
        }
    }

    #[test]
    fn office_hours_come_from_the_file_or_the_environment() {
        let default = Settings::load_from(None, env_of(&[])).unwrap();
        assert_eq!(default.office_hours, OfficeHours::default());
        assert_eq!(default.office_hours.to_string(), "08:30-12:00,13:30-17:30");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gridcase.toml");
        fs::write(&path, "office_hours = [\"09:00-12:00\", \"13:00-17:00\"]\n").unwrap();
        let s = Settings::load_from(Some(&path), env_of(&[])).unwrap();
        assert_eq!(s.office_hours.to_string(), "09:00-12:00,13:00-17:00");
        let s = Settings::load_from(
            Some(&path),
            env_of(&[("GRIDCASE_OFFICE_HOURS", "08:00-16:00")]),
        )
        .unwrap();
        assert_eq!(s.office_hours.to_string(), "08:00-16:00");
        // Bad periods in the file: one line naming the setting and the period.
        for (value, says) in [
            ("[]", "no periods"),
            ("[\"13:30-17:30\", \"08:30-12:00\"]", "not overlap"),
            ("[\"08:30-12:00\", \"11:00-17:30\"]", "not overlap"),
            ("[\"17:30-13:30\"]", "does not end after it starts"),
            ("[\"8:30-12\"]", "not HH:MM-HH:MM"),
            ("[\"08:30-25:00\"]", "not HH:MM-HH:MM"),
            ("\"08:30-12:00\"", "office_hours"),
        ] {
            fs::write(&path, format!("office_hours = {value}\n")).unwrap();
            let err = Settings::load_from(Some(&path), env_of(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("office_hours"), "{value}: {err}");
            assert!(err.contains(says), "{value}: {err}");
            assert!(!err.contains('\n'), "{value}: {err:?} should be one line");
        }
    }

    #[test]
    fn alert_thresholds_come_from_the_file_or_the_environment() {
        use crate::domain::directory::Tier;
        let default = Settings::load_from(None, env_of(&[])).unwrap();
        assert_eq!(default.alerts, AlertRules::default());
        assert_eq!(default.alerts.hotspot("dispute", Tier::Community).count, 3);
        assert_eq!(
            default.alerts.hotspot("environment", Tier::Township).count,
            5
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gridcase.toml");
        fs::write(
            &path,
            "[alerts]\nrepeat_reporter = \"4/14d\"\n[alerts.hotspot]\n\"*\" = { township = \"8/48h\" }\nenvironment = { community = \"2/24h\" }\n",
        )
        .unwrap();
        let s = Settings::load_from(Some(&path), env_of(&[])).unwrap();
        assert_eq!(s.alerts.repeat_reporter.to_string(), "4/14d");
        assert_eq!(s.alerts.hotspot("fire", Tier::Township).to_string(), "8/2d");
        assert_eq!(
            s.alerts.hotspot("fire", Tier::Community).to_string(),
            "5/3d"
        );
        // A class named takes "*"'s for the tier it does not name.
        assert_eq!(
            s.alerts.hotspot("environment", Tier::Community).to_string(),
            "2/1d"
        );
        assert_eq!(
            s.alerts.hotspot("environment", Tier::Township).to_string(),
            "8/2d"
        );
        assert_eq!(
            s.alerts.hotspot("dispute", Tier::Township).to_string(),
            "3/3d"
        );
        let s = Settings::load_from(
            Some(&path),
            env_of(&[
                (
                    "GRIDCASE_ALERT_HOTSPOT",
                    "dispute.community=4/36h, fire.township=9/1d",
                ),
                ("GRIDCASE_ALERT_REPEAT_REPORTER", "5/30d"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.alerts.hotspot("dispute", Tier::Community).to_string(),
            "4/36h"
        );
        assert_eq!(s.alerts.hotspot("fire", Tier::Township).to_string(), "9/1d");
        assert_eq!(s.alerts.repeat_reporter.to_string(), "5/30d");
        assert!(s.alerts.enabled);
        let off = Settings::load_from(None, env_of(&[("GRIDCASE_ALERTS", "off")])).unwrap();
        assert!(!off.alerts.enabled);
        for (file, says) in [
            (
                "[alerts]\nrepeat_reporter = \"1/30d\"\n",
                "alerts.repeat_reporter",
            ),
            ("[alerts.hotspot]\ndispute = { grid = \"3/72h\" }\n", "grid"),
            (
                "[alerts.hotspot]\ndispute = { township = \"3/72\" }\n",
                "alerts.hotspot.dispute.township",
            ),
        ] {
            fs::write(&path, file).unwrap();
            let err = Settings::load_from(Some(&path), env_of(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{file}: {err}");
            assert!(!err.contains('\n'), "{file}: {err:?} should be one line");
        }
        for (env, says) in [
            (
                &[("GRIDCASE_ALERT_HOTSPOT", "dispute=3/72h")][..],
                "CLASS.TIER",
            ),
            (
                &[("GRIDCASE_ALERT_HOTSPOT", "dispute.grid=3/72h")][..],
                "not a tier",
            ),
            (
                &[("GRIDCASE_ALERT_REPEAT_REPORTER", "3")][..],
                "GRIDCASE_ALERT_REPEAT_REPORTER",
            ),
            (&[("GRIDCASE_ALERTS", "no")][..], "GRIDCASE_ALERTS"),
        ] {
            let env: &'static [(&'static str, &'static str)] = env;
            let err = Settings::load_from(None, env_of(env))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{err}");
            assert!(!err.contains('\n'), "{err:?} should be one line");
        }
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gridcase.toml");
        fs::write(&path, "listne = \"127.0.0.1:6000\"\n").unwrap();
        let err = Settings::load_from(Some(&path), env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listne"), "{err}");
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }
}
