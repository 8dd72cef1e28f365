//! The web config parser: what exporter-toolkit accepts is accepted, and each way a file can be
//! wrong is an error that names it. Certificates are made here (rcgen), never stored.

use std::path::{Path, PathBuf};

use super::*;

/// `$2y$` hash of "s3cret", cost 4.
fn hash() -> String {
    bcrypt::hash("s3cret", 4)
        .unwrap_or_else(|e| panic!("{e}"))
        .replacen("$2b$", "$2y$", 1)
}

struct Dir(PathBuf);

impl Dir {
    /// A temporary directory with `ca.pem`, `server.pem`, `server.key`, `other.key`.
    fn with_certs(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("tracer-webcfg-{tag}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        let ca_key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap_or_else(|e| panic!("{e}"));
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap_or_else(|e| panic!("{e}"));
        let cert = params.signed_by(&key, &issuer).unwrap_or_else(|e| panic!("{e}"));
        let other = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        for (name, text) in [
            ("ca.pem", ca.pem()),
            ("server.pem", cert.pem()),
            ("server.key", key.serialize_pem()),
            ("other.key", other.serialize_pem()),
        ] {
            std::fs::write(d.join(name), text).unwrap_or_else(|e| panic!("{e}"));
        }
        Dir(d)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn err(text: &str, dir: &Path) -> String {
    match WebConfig::parse(text, dir) {
        Ok(c) => panic!("accepted {text:?}: {c:?}"),
        Err(e) => e,
    }
}

const TLS: &str = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";

#[test]
fn an_empty_file_changes_nothing() {
    for text in ["", "\n", "# nothing\n", "---\n"] {
        let c = WebConfig::parse(text, Path::new("/")).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(
            c.tls.is_none() && c.users.is_empty() && c.headers.is_empty(),
            "{text:?}"
        );
    }
}

#[test]
fn tls_basic_auth_and_headers_are_read_with_paths_beside_the_file() {
    let d = Dir::with_certs("full");
    let text = format!(
        "{TLS}  min_version: TLS13\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n\
         http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Content-Security-Policy: \"\"\n\
         basic_auth_users:\n  prometheus: '{}'\n",
        hash()
    );
    let c = WebConfig::parse(&text, d.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.tls.is_some());
    assert_eq!(c.users.keys().collect::<Vec<_>>(), ["prometheus"]);
    // A blank header is unset, as in the toolkit.
    assert_eq!(c.headers.len(), 1);
    assert_eq!(c.headers[0].0.as_str(), "x-frame-options");
    assert_eq!(
        c.files,
        ["server.pem", "server.key", "ca.pem"]
            .map(|f| d.path().join(f))
            .to_vec()
    );
    // Basic auth without TLS is allowed (the toolkit allows it), and a TLS section with only a
    // version does not turn TLS on.
    let c = WebConfig::parse(
        &format!(
            "tls_server_config:\n  min_version: TLS12\nbasic_auth_users:\n  u: '{}'\n",
            hash()
        ),
        d.path(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.tls.is_none() && c.users.len() == 1);
}

#[test]
fn inline_certificates_work_like_files() {
    let d = Dir::with_certs("inline");
    let read = |f: &str| std::fs::read_to_string(d.path().join(f)).unwrap_or_else(|e| panic!("{e}"));
    let indent = |t: String| t.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let text = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}",
        indent(read("server.pem")),
        indent(read("server.key"))
    );
    let c = WebConfig::parse(&text, Path::new("/nowhere")).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.tls.is_some() && c.files.is_empty());
}

#[test]
fn every_client_auth_type_of_the_toolkit_is_known() {
    let d = Dir::with_certs("client-auth");
    for (t, ca) in [
        ("NoClientCert", false),
        ("RequestClientCert", false),
        ("RequireAnyClientCert", false),
        ("RequireClientCert", false),
        ("VerifyClientCertIfGiven", true),
        ("RequireAndVerifyClientCert", true),
    ] {
        let ca = if ca { "  client_ca_file: ca.pem\n" } else { "" };
        let text = format!("{TLS}  client_auth_type: {t}\n{ca}");
        assert!(WebConfig::parse(&text, d.path()).is_ok(), "{t}");
    }
}

#[test]
fn suites_curves_and_versions_by_go_names() {
    let d = Dir::with_certs("suites");
    let text = format!(
        "{TLS}  min_version: TLS12\n  max_version: TLS13\n  prefer_server_cipher_suites: false\n  cipher_suites:\n    \
         - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n    - TLS_AES_128_GCM_SHA256\n  curve_preferences: [CurveP256, X25519]\n"
    );
    let c = WebConfig::parse(&text, d.path()).unwrap_or_else(|e| panic!("{e}"));
    let tls = c.tls.unwrap_or_else(|| panic!("no TLS"));
    let suites: Vec<String> = tls
        .crypto_provider()
        .cipher_suites
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect();
    assert!(
        suites.contains(&"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".to_owned()),
        "{suites:?}"
    );
    assert!(
        !suites.contains(&"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_owned()),
        "{suites:?}"
    );
    let groups: Vec<String> = tls
        .crypto_provider()
        .kx_groups
        .iter()
        .map(|g| format!("{:?}", g.name()))
        .collect();
    assert_eq!(groups, ["secp256r1", "X25519"]);
    assert!(!tls.ignore_client_order);
}

/// Each mistake, and a piece of the message that must name it.
#[test]
fn each_mistake_is_refused_with_a_message_that_names_it() {
    let d = Dir::with_certs("mistakes");
    let h = hash();
    let cases: Vec<(String, &str)> = vec![
        // Strict YAML: unknown keys anywhere.
        ("tls_server_confg:\n  cert_file: x\n".into(), "tls_server_confg"),
        (format!("{TLS}  certfile: y\n"), "certfile"),
        ("http_server_config:\n  http3: true\n".into(), "http3"),
        ("basic_auth_users: [a, b]\n".into(), ""),
        ("tls_server_config: [\n".into(), ""),
        // Certificates and keys.
        (
            "tls_server_config:\n  key_file: server.key\n".into(),
            "missing one of cert or cert_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n".into(),
            "missing one of key or key_file",
        ),
        (
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n".into(),
            "missing.pem: No such file",
        ),
        (
            "tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n".into(),
            "no certificate in it",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.pem\n".into(),
            "no PEM private key",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: other.key\n".into(),
            "do not go together",
        ),
        (format!("{TLS}  cert: x\n"), "give cert or cert_file, not both"),
        // Client certificates.
        (
            format!("{TLS}  client_auth_type: Sometimes\n"),
            "\"Sometimes\" is not one of",
        ),
        (format!("{TLS}  client_ca_file: ca.pem\n"), "without a client_auth_type"),
        (
            format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n"),
            "needs client_ca_file",
        ),
        (
            format!("{TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: server.key\n"),
            "client_ca: no certificate",
        ),
        (
            format!("{TLS}  client_allowed_sans: [a]\n"),
            "client_allowed_sans is not supported",
        ),
        // Versions, suites, curves.
        (format!("{TLS}  min_version: TLS10\n"), "TLS10 is not supported"),
        (format!("{TLS}  max_version: SSL3\n"), "\"SSL3\" is not a TLS version"),
        (
            format!("{TLS}  min_version: TLS13\n  max_version: TLS12\n"),
            "min_version is above max_version",
        ),
        (
            format!("{TLS}  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n"),
            "cipher suite \"TLS_RSA_WITH_RC4_128_SHA\" is not supported",
        ),
        (
            format!("{TLS}  curve_preferences: [CurveP521]\n"),
            "CurveP521 is not supported",
        ),
        (format!("{TLS}  curve_preferences: [P256]\n"), "unknown curve"),
        // Users.
        (
            "basic_auth_users:\n  u: plaintext\n".into(),
            "\"u\" is not a bcrypt hash",
        ),
        (
            format!("basic_auth_users:\n  u: '{}'\n", h.replacen("$2y$", "$1$", 1)),
            "not a bcrypt hash",
        ),
        (
            format!("basic_auth_users:\n  u: '{}'\n", h.replacen("$04$", "$32$", 1)),
            "cost 32",
        ),
        ("basic_auth_users:\n  u: ~\n".into(), ""),
        // Headers.
        (
            "http_server_config:\n  headers:\n    Server: tracer\n".into(),
            "\"Server\" cannot be set",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n".into(),
            "X-Frame-Options must be one of",
        ),
        (
            "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n".into(),
            "X-Content-Type-Options must be one of",
        ),
        (
            "rate_limit:\n  interval: 1s\n  burst: 2\n".into(),
            "rate_limit is not supported",
        ),
    ];
    for (text, needle) in cases {
        let e = err(&text, d.path());
        assert!(e.contains(needle), "{text:?}: {e}");
    }
}

#[test]
fn load_names_the_file_and_a_missing_one() {
    let d = Dir::with_certs("load");
    let file = d.path().join("web.yml");
    std::fs::write(&file, format!("{TLS}  bogus: 1\n")).unwrap_or_else(|e| panic!("{e}"));
    let e = WebConfig::load(&file).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        e.starts_with(&format!("web config {}: ", file.display())) && e.contains("bogus"),
        "{e}"
    );
    let e = WebConfig::load(&d.path().join("none.yml"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("cannot read the web config") && e.contains("none.yml"),
        "{e}"
    );
    std::fs::write(&file, TLS).unwrap_or_else(|e| panic!("{e}"));
    let c = WebConfig::load(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.files[0], file, "the file itself is watched first");
}

#[test]
fn bcrypt_hashes_of_every_prefix_are_accepted() {
    let h = hash();
    for prefix in ["$2a$", "$2b$", "$2x$", "$2y$"] {
        assert_eq!(check_bcrypt(&h.replacen("$2y$", prefix, 1)), Ok(()), "{prefix}");
    }
    assert!(check_bcrypt(&h[..59]).is_err());
    assert!(check_bcrypt(&h.replacen("$04$", "$03$", 1)).is_err());
}
