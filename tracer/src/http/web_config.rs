//! `--web-config FILE`: the web configuration file of prometheus/exporter-toolkit
//! (`docs/web-configuration.md`), the one node_exporter and every exporter built on the toolkit
//! read: `tls_server_config`, `http_server_config.headers`, `basic_auth_users`. Parsed strictly,
//! as the toolkit does (`yaml.UnmarshalStrict`): an unknown key is an error, and so is a key the
//! toolkit knows that tracer does not implement (rather than silently serving less than asked).
//! Relative paths are relative to the file's directory, as in the toolkit.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::tls;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    tls_server_config: Option<TlsFormat>,
    http_server_config: Option<HttpFormat>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    /// Known to newer toolkits; refused with a message rather than as an unknown key.
    rate_limit: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFormat {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_ca_file: Option<String>,
    client_auth_type: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFormat {
    /// Accepted and without effect: the agent speaks HTTP/1.1, which every scraper speaks.
    #[allow(dead_code)]
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// A PEM document: a file (re-read at every reload) or the text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(String),
}

/// The client certificate policy (Go's `tls.ClientAuthType`, by the toolkit's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// `tls_server_config`, checked.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert: Pem,
    pub key: Pem,
    pub client_ca: Option<Pem>,
    pub client_auth: ClientAuth,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// Go names of the TLS 1.2 suites allowed (empty: the provider's defaults).
    pub cipher_suites: Vec<String>,
    pub prefer_server_cipher_suites: bool,
    /// Go names of the key exchange groups, in preference order (empty: defaults).
    pub curves: Vec<String>,
}

/// A loaded, valid web config: what the endpoints serve with.
#[derive(Clone)]
pub struct WebConfig {
    /// None: plain HTTP (a file may ask for basic auth alone).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// User name -> bcrypt hash; empty: no authentication.
    pub users: BTreeMap<String, String>,
    /// Added to every answer.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The file and the certificate files it names: a change to any of them reloads.
    pub files: Vec<PathBuf>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the hashes.
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("headers", &self.headers)
            .field("files", &self.files)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read the web config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("web config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Headers the toolkit lets a config set, with the values it accepts (None: any).
/// (exporter-toolkit `web/handler.go`, `extraHTTPHeaders`.)
const EXTRA_HEADERS: [(&str, Option<&[&str]>); 5] = [
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

impl WebConfig {
    /// Reads and checks the file, and loads the certificates and keys it names.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, dir)
            .map_err(|message| WebConfigError::Invalid {
                path: path.to_owned(),
                message,
            })
            .map(|mut c| {
                c.files.insert(0, path.to_owned());
                c
            })
    }

    /// Checks `text`; relative paths are taken from `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<WebConfig, String> {
        let file = parse_format(text)?;
        if file.rate_limit.is_some() {
            return Err("rate_limit is not supported by tracer (the agent bounds its connections itself)".into());
        }
        let users = file.basic_auth_users.unwrap_or_default();
        for (user, hash) in &users {
            check_bcrypt(hash).map_err(|why| {
                format!(
                    "basic_auth_users: the password of {user:?} is not a bcrypt hash ({why}); make one with \
                     `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                )
            })?;
        }
        let headers = headers(file.http_server_config.and_then(|h| h.headers).unwrap_or_default())?;
        let mut files = Vec::new();
        let tls = match file.tls_server_config {
            Some(t) if tls_enabled(&t) => {
                let settings = tls_settings(t, dir)?;
                for pem in [Some(&settings.cert), Some(&settings.key), settings.client_ca.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    if let Pem::File(p) = pem {
                        files.push(p.clone());
                    }
                }
                Some(Arc::new(tls::server_config(&settings)?))
            }
            _ => None,
        };
        Ok(WebConfig {
            tls,
            users,
            headers,
            files,
        })
    }
}

fn parse_format(text: &str) -> Result<FileFormat, String> {
    // An empty file (or only comments) is a valid config that changes nothing, as in the toolkit.
    let blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
    if blank {
        return Ok(FileFormat::default());
    }
    serde_saphyr::from_str::<Option<FileFormat>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|e| e.to_string())
}

/// The toolkit's `TLSConfig.IsEnabled`: any certificate, key, CA or client policy turns TLS on;
/// a section with only versions or suites does not.
fn tls_enabled(t: &TlsFormat) -> bool {
    [
        &t.cert,
        &t.key,
        &t.client_ca,
        &t.cert_file,
        &t.key_file,
        &t.client_ca_file,
        &t.client_auth_type,
    ]
    .iter()
    .any(|f| f.as_deref().is_some_and(|s| !s.is_empty()))
}

/// One of `inline` (the PEM text) or `file` (a path), not both.
fn pem(what: &str, inline: Option<String>, file: Option<String>, dir: &Path) -> Result<Option<Pem>, String> {
    let inline = inline.filter(|s| !s.is_empty());
    let file = file.filter(|s| !s.is_empty());
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!("tls_server_config: give {what} or {what}_file, not both")),
        (Some(text), None) => Ok(Some(Pem::Inline(text))),
        (None, Some(f)) => Ok(Some(Pem::File(dir.join(f)))),
        (None, None) => Ok(None),
    }
}

fn tls_settings(t: TlsFormat, dir: &Path) -> Result<TlsSettings, String> {
    if t.client_allowed_sans.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(
            "tls_server_config: client_allowed_sans is not supported by tracer (use a client CA of \
                    its own for the scrapers: client_ca_file with RequireAndVerifyClientCert)"
                .into(),
        );
    }
    let cert = pem("cert", t.cert, t.cert_file, dir)?.ok_or("tls_server_config: missing one of cert or cert_file")?;
    let key = pem("key", t.key, t.key_file, dir)?.ok_or("tls_server_config: missing one of key or key_file")?;
    let client_ca = pem("client_ca", t.client_ca, t.client_ca_file, dir)?;
    let client_auth = match t.client_auth_type.as_deref().unwrap_or("") {
        "" | "NoClientCert" => ClientAuth::NoClientCert,
        "RequestClientCert" => ClientAuth::RequestClientCert,
        // "RequireClientCert": the toolkit's older name.
        "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
        other => {
            return Err(format!(
                "tls_server_config: client_auth_type {other:?} is not one of NoClientCert, RequestClientCert, \
                 RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
            ));
        }
    };
    let verifies = matches!(
        client_auth,
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
    );
    if client_ca.is_some() && client_auth == ClientAuth::NoClientCert {
        return Err(
            "tls_server_config: a client CA is given without a client_auth_type (RequireAndVerifyClientCert \
                    checks client certificates against it)"
                .into(),
        );
    }
    if verifies && client_ca.is_none() {
        return Err(format!(
            "tls_server_config: client_auth_type {:?} needs client_ca_file (or client_ca): the CA that signs \
             the scrapers' certificates",
            t.client_auth_type.unwrap_or_default()
        ));
    }
    let min_version = version("min_version", t.min_version.as_deref(), TlsVersion::Tls12)?;
    let max_version = version("max_version", t.max_version.as_deref(), TlsVersion::Tls13)?;
    if min_version > max_version {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    Ok(TlsSettings {
        cert,
        key,
        client_ca,
        client_auth,
        min_version,
        max_version,
        cipher_suites: t.cipher_suites.unwrap_or_default(),
        prefer_server_cipher_suites: t.prefer_server_cipher_suites.unwrap_or(true),
        curves: t.curve_preferences.unwrap_or_default(),
    })
}

fn version(key: &str, v: Option<&str>, default: TlsVersion) -> Result<TlsVersion, String> {
    match v.unwrap_or("") {
        "" => Ok(default),
        "TLS12" => Ok(TlsVersion::Tls12),
        "TLS13" => Ok(TlsVersion::Tls13),
        old @ ("TLS10" | "TLS11") => Err(format!(
            "tls_server_config: {key} {old} is not supported: tracer speaks TLS12 and TLS13"
        )),
        other => Err(format!(
            "tls_server_config: {key} {other:?} is not a TLS version (TLS12, TLS13)"
        )),
    }
}

/// What Go's `bcrypt.Cost` accepts: `$2a$`, `$2b$`, `$2x$` or `$2y$`, a cost of 4 to 31, the
/// salt and the hash (60 characters in all).
pub fn check_bcrypt(hash: &str) -> Result<(), String> {
    let parts: bcrypt::HashParts = hash.parse().map_err(|e: bcrypt::BcryptError| e.to_string())?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!("cost {cost} is outside 4 to 31"));
    }
    Ok(())
}

fn headers(map: BTreeMap<String, String>) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out = Vec::new();
    for (name, value) in map {
        let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(n, _)| *n == name) else {
            return Err(format!(
                "http_server_config.headers: {name:?} cannot be set (only {})",
                EXTRA_HEADERS.map(|(n, _)| n).join(", ")
            ));
        };
        if value.is_empty() {
            continue; // "Unset if blank."
        }
        if let Some(allowed) = allowed
            && !allowed.contains(&value.as_str())
        {
            return Err(format!(
                "http_server_config.headers: {name} must be one of {allowed:?}, not {value:?}"
            ));
        }
        let v = HeaderValue::from_str(&value)
            .map_err(|_| format!("http_server_config.headers: the value of {name} is not a valid header value"))?;
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("http_server_config.headers: {e}"))?;
        out.push((n, v));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "web_config_tests.rs"]
mod tests;
