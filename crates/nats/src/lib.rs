//! # NATS for Omnia
//!
//! [`NatsKeyValue`] is a `"keyvalue"` entry for [`omnia::runtime!`]: `wasi:keyvalue` stored in
//! NATS JetStream key-value buckets. [`NatsKvStore`] is the [`KeyValueStore`] behind it, for
//! runtimes that choose their backend at start-up.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `NATS_URL` | required | `nats://[user:password@ \| token@]host[:port]`, several separated by commas |
//! | `NATS_USER`, `NATS_PASSWORD` | unset | user and password, instead of putting them in the URL |
//! | `NATS_TOKEN` | unset | an authentication token, instead of putting it in the URL |
//! | `NATS_CREDS` | unset | a credentials file (JWT and `NKey` seed, as `nsc` writes them) |
//! | `OMNIA_NATS_KV_CREATE` | `false` | create a missing bucket on first `open` (history 1, file storage) instead of answering `no-such-store` |
//!
//! Credentials are given once, either in the URL (the same for every server of the list) or in
//! the variables; passwords and tokens never appear in logs or errors.
//!
//! See [`keyvalue`] for how `wasi:keyvalue` maps onto JetStream KV.
//!
//! [`KeyValueStore`]: omnia_wasi_keyvalue::KeyValueStore

pub mod keyvalue;
pub mod messaging;

use std::time::Duration;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use omnia::FromEnv;
use omnia::config::{Secrets, Setting, parse_bool, redact_url, url_var, var};
use omnia::secrets::percent_decode;

pub use keyvalue::{NatsKeyValue, NatsKvStore};
pub use messaging::{NatsBroker, NatsMessaging};

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request (a read, or the acknowledgement of a write) may wait for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How a client proves who it is to NATS.
#[derive(Clone, PartialEq, Eq)]
pub enum NatsAuth {
    /// No credentials.
    None,
    /// A user and password.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// A token.
    Token(String),
    /// A credentials file (JWT and `NKey` seed).
    CredsFile(PathBuf),
}

impl NatsAuth {
    /// The secrets to keep out of every message.
    fn secrets(&self) -> Secrets {
        match self {
            Self::UserPassword { password, .. } => Secrets::new([password.clone()]),
            Self::Token(token) => Secrets::new([token.clone()]),
            Self::None | Self::CredsFile(_) => Secrets::default(),
        }
    }
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::UserPassword { user, .. } => write!(f, "UserPassword({user}, ***)"),
            Self::Token(_) => f.write_str("Token(***)"),
            Self::CredsFile(path) => write!(f, "CredsFile({})", path.display()),
        }
    }
}

/// Settings of the NATS connection and its key-value use.
#[derive(Clone)]
pub struct NatsOptions {
    /// `NATS_URL`: the server(s) to connect to (credentials removed, see `auth`).
    pub url: String,
    /// The credentials, from the URL or from `NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN` or
    /// `NATS_CREDS`.
    pub auth: NatsAuth,
    /// `OMNIA_NATS_KV_CREATE`: create missing key-value buckets on demand.
    pub create_buckets: bool,
    /// Every secret of the settings, scrubbed from anything shown.
    pub secrets: Secrets,
}

impl std::fmt::Debug for NatsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsOptions")
            .field("url", &redact_url(&self.url))
            .field("auth", &self.auth)
            .field("create_buckets", &self.create_buckets)
            .field("secrets", &self.secrets)
            .finish()
    }
}

impl FromEnv for NatsOptions {
    fn from_env() -> Result<Self> {
        let (url, from_url) = url_var("NATS_URL", parse_servers)?.context(
            "NATS_URL is not set: set it to the NATS server to use, e.g. nats://127.0.0.1:4222",
        )?;
        let user = var("NATS_USER", |s| Ok(s.to_owned()))?;
        // Read as they are (the only error is invalid UTF-8, which shows no value).
        let password = var("NATS_PASSWORD", |s| Ok(s.to_owned()))?;
        let token = var("NATS_TOKEN", |s| Ok(s.to_owned()))?;
        let creds = var("NATS_CREDS", |s| {
            let path = PathBuf::from(s);
            if !path.is_file() {
                bail!("{s} is not a file: expected the path of a NATS credentials file");
            }
            Ok(path)
        })?;
        let mut given = Vec::new();
        if from_url != NatsAuth::None {
            given.push(("the user-info of NATS_URL", from_url));
        }
        match (user, password) {
            (Some(user), Some(password)) => {
                given.push((
                    "NATS_USER and NATS_PASSWORD",
                    NatsAuth::UserPassword { user, password },
                ));
            }
            (None, None) => {}
            _ => bail!("NATS_USER and NATS_PASSWORD go together: set both or neither"),
        }
        if let Some(token) = token {
            given.push(("NATS_TOKEN", NatsAuth::Token(token)));
        }
        if let Some(path) = creds {
            given.push(("NATS_CREDS", NatsAuth::CredsFile(path)));
        }
        if given.len() > 1 {
            let sources: Vec<&str> = given.iter().map(|(source, _)| *source).collect();
            bail!(
                "NATS credentials are given more than once ({}): use one way",
                sources.join(", ")
            );
        }
        let auth = given.pop().map_or(NatsAuth::None, |(_, auth)| auth);
        let create_buckets = var("OMNIA_NATS_KV_CREATE", parse_bool)?.unwrap_or(false);
        Ok(Self {
            secrets: auth.secrets(),
            url,
            auth,
            create_buckets,
        })
    }

    fn settings() -> Vec<Setting> {
        let setting = Setting::env_only;
        vec![
            setting(
                "NATS_URL",
                "URL",
                "unset",
                "nats://[user:password@|token@]host[:port], comma-separated for several servers",
            ),
            setting(
                "NATS_USER",
                "USER",
                "unset",
                "NATS user (with NATS_PASSWORD)",
            ),
            setting(
                "NATS_PASSWORD",
                "PASSWORD",
                "unset",
                "NATS password (with NATS_USER)",
            ),
            setting("NATS_TOKEN", "TOKEN", "unset", "NATS authentication token"),
            setting(
                "NATS_CREDS",
                "FILE",
                "unset",
                "NATS credentials file (JWT and `NKey` seed)",
            ),
            setting(
                "OMNIA_NATS_KV_CREATE",
                "BOOL",
                "false",
                "create missing NATS KV buckets on first use",
            ),
        ]
    }
}

/// Parses `NATS_URL`: the servers without credentials, and the credentials (which must be the
/// same for every server, as one connection authenticates once).
fn parse_servers(s: &str) -> Result<(String, NatsAuth)> {
    let mut servers = Vec::new();
    let mut auth: Option<NatsAuth> = None;
    for server in s.split(',').map(str::trim) {
        let addr = server
            .parse::<async_nats::ServerAddr>()
            .map_err(|err| anyhow::anyhow!("{err}: expected nats://host:port"))?;
        let this = match (addr.username(), addr.password()) {
            (Some(user), Some(password)) => NatsAuth::UserPassword {
                user: percent_decode(user),
                password: percent_decode(password),
            },
            (Some(token), None) => NatsAuth::Token(percent_decode(token)),
            _ => NatsAuth::None,
        };
        match &auth {
            Some(first) if *first != this => {
                bail!("every server must carry the same credentials (or none)")
            }
            _ => auth = Some(this),
        }
        let mut url = addr.into_inner();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        servers.push(url.to_string().trim_end_matches('/').to_owned());
    }
    Ok((servers.join(","), auth.unwrap_or(NatsAuth::None)))
}

/// The process's connection to the NATS of `options`: made on first use, then shared by every
/// capability (key-value and messaging use one connection).
pub async fn shared_client(options: &NatsOptions) -> Result<async_nats::Client> {
    static CLIENTS: tokio::sync::Mutex<Vec<(String, async_nats::Client)>> =
        tokio::sync::Mutex::const_new(Vec::new());
    let key = options.connection_key();
    let mut clients = CLIENTS.lock().await;
    if let Some((_, client)) = clients.iter().find(|(k, _)| *k == key) {
        return Ok(client.clone());
    }
    let client = connect(options).await?;
    clients.push((key, client.clone()));
    Ok(client)
}

impl NatsOptions {
    /// What identifies a connection: the servers and the credentials.
    fn connection_key(&self) -> String {
        let auth = match &self.auth {
            NatsAuth::None => String::new(),
            NatsAuth::UserPassword { user, password } => format!("user:{user}:{password}"),
            NatsAuth::Token(token) => format!("token:{token}"),
            NatsAuth::CredsFile(path) => format!("creds:{}", path.display()),
        };
        format!("{}\0{auth}", self.url)
    }
}

/// Connects to `options.url`, failing at once if no server answers. Once connected, the client
/// reconnects by itself for as long as the process runs.
pub async fn connect(options: &NatsOptions) -> Result<async_nats::Client> {
    let url = redact_url(&options.url);
    let servers: Vec<async_nats::ServerAddr> = options
        .url
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .with_context(|| format!("NATS_URL={url:?} is not valid"))?;
    let mut connect = async_nats::ConnectOptions::new();
    connect = match &options.auth {
        NatsAuth::None => connect,
        NatsAuth::UserPassword { user, password } => {
            connect.user_and_password(user.clone(), password.clone())
        }
        NatsAuth::Token(token) => connect.token(token.clone()),
        NatsAuth::CredsFile(path) => connect.credentials_file(path).await.with_context(|| {
            format!(
                "NATS_CREDS={}: cannot read the credentials file",
                path.display()
            )
        })?,
    };
    let connected = connect
        .connection_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Disconnected => {
                    tracing::warn!("nats: disconnected, reconnecting");
                }
                async_nats::Event::Connected => tracing::info!("nats: connected"),
                other => tracing::debug!(event = %other, "nats: event"),
            }
        })
        .connect(servers)
        .await;
    let client = match connected {
        Ok(client) => client,
        Err(err) => {
            let why = match err.kind() {
                async_nats::ConnectErrorKind::AuthorizationViolation
                | async_nats::ConnectErrorKind::Authentication => {
                    "the server refused the credentials (check NATS_URL's user-info, NATS_USER \
                     and NATS_PASSWORD, NATS_TOKEN or NATS_CREDS)"
                }
                _ => "is it running and reachable?",
            };
            let err = options.secrets.scrub_error(&anyhow::Error::new(err));
            return Err(err.context(format!("cannot connect to NATS at {url} (NATS_URL): {why}")));
        }
    };
    tracing::debug!(url = %url, "nats: first connection made");
    Ok(client)
}
