//! TLS for the endpoints (rustls with the ring provider): the server configuration a web config
//! asks for, and the handshake of each connection under a deadline. A client that connects and
//! never says anything, one that sends garbage instead of a ClientHello, and one that speaks plain
//! HTTP to the TLS port each cost one connection slot until the deadline at most; the plain-HTTP
//! one is told so, as Go's servers do. None of it is logged: it happens per connection.

use std::{sync::Arc, time::Duration};

use rustls::{
    DigitallySignedStruct, DistinguishedName, SignatureScheme,
    client::danger::HandshakeSignatureValid,
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms, ring},
    pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject},
    server::{
        WebPkiClientVerifier,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
    version::{TLS12, TLS13},
};
use tokio::{io::AsyncWriteExt, net::TcpStream};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use super::web_config::{ClientAuth, Pem, TlsSettings, TlsVersion};

/// Time a client has from connecting to the end of the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What Go's `net/http` answers a plain-HTTP request on a TLS port with.
const PLAIN_HTTP_REPLY: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// A TLS record of type handshake starts every ClientHello.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

fn read_pem(what: &str, pem: &Pem) -> Result<Vec<u8>, String> {
    match pem {
        Pem::File(p) => std::fs::read(p).map_err(|e| format!("tls_server_config: {what}_file {}: {e}", p.display())),
        Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
    }
}

fn certificates(what: &str, pem: &Pem) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_pem(what, pem)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_server_config: {what}: not PEM certificates ({e})"))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config: {what}: no certificate in it (expected PEM \"BEGIN CERTIFICATE\" blocks)"
        ));
    }
    Ok(certs)
}

fn private_key(pem: &Pem) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read_pem("key", pem)?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| format!("tls_server_config: key: no PEM private key in it (PKCS#8, PKCS#1 or SEC1): {e}"))
}

/// A suite's name in Go's `crypto/tls` (IANA's; rustls says `TLS13_` for TLS 1.3 suites).
fn go_name(c: &rustls::SupportedCipherSuite) -> String {
    let name = format!("{:?}", c.suite());
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// The ring provider narrowed to the suites and groups the settings name (Go's names).
fn provider(s: &TlsSettings) -> Result<CryptoProvider, String> {
    // rustls 0.23.48 deprecates the ring provider for lacking post-quantum key exchange
    // (X25519MLKEM768, which aws-lc-rs has). Kept for the simpler build: no C library beyond
    // ring's; moving to aws-lc-rs is a change of features here and in Cargo.toml.
    #[allow(deprecated)]
    let mut p = ring::default_provider();
    if !s.cipher_suites.is_empty() {
        for name in &s.cipher_suites {
            // Go accepts its TLS 1.3 names here and ignores them, as TLS 1.3 suites are not
            // configurable there; so does this.
            let known = p.cipher_suites.iter().any(|c| go_name(c) == *name);
            if !known {
                return Err(format!(
                    "tls_server_config: cipher suite {name:?} is not supported (supported: {})",
                    p.cipher_suites.iter().map(go_name).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        p.cipher_suites
            .retain(|c| c.version() == &TLS13 || s.cipher_suites.iter().any(|n| *n == go_name(c)));
        if s.prefer_server_cipher_suites {
            // The server's order is the list's order (TLS 1.3 suites first, untouched).
            p.cipher_suites.sort_by_key(|c| {
                let name = go_name(c);
                (c.version() != &TLS13, s.cipher_suites.iter().position(|n| *n == name))
            });
        }
    }
    if !s.curves.is_empty() {
        let all = p.kx_groups.clone();
        p.kx_groups =
            s.curves
                .iter()
                .map(|name| {
                    let wanted =
                        match name.as_str() {
                            "X25519" => "X25519",
                            "CurveP256" => "secp256r1",
                            "CurveP384" => "secp384r1",
                            "CurveP521" => return Err(
                                "tls_server_config: curve CurveP521 is not supported (X25519, CurveP256, CurveP384)"
                                    .to_string(),
                            ),
                            other => {
                                return Err(format!(
                                    "tls_server_config: unknown curve {other:?} (X25519, CurveP256, CurveP384)"
                                ));
                            }
                        };
                    all.iter()
                        .find(|g| format!("{:?}", g.name()).eq_ignore_ascii_case(wanted))
                        .copied()
                        .ok_or_else(|| format!("tls_server_config: curve {name} is not available"))
                })
                .collect::<Result<_, _>>()?;
    }
    Ok(p)
}

/// The rustls configuration for `s`: reads the certificate, key and client CA now.
pub fn server_config(s: &TlsSettings) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(provider(s)?);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(TlsVersion::Tls12, &TLS12), (TlsVersion::Tls13, &TLS13)]
            .into_iter()
            .filter(|(v, _)| (s.min_version..=s.max_version).contains(v))
            .map(|(_, v)| v)
            .collect();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let roots = match &s.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certificates("client_ca", ca)? {
                roots
                    .add(c)
                    .map_err(|e| format!("tls_server_config: client_ca: a certificate rustls cannot use ({e})"))?;
            }
            Some(Arc::new(roots))
        }
        None => None,
    };
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match (s.client_auth, roots) {
        (ClientAuth::NoClientCert, _) => None,
        (ClientAuth::RequestClientCert, _) => Some(Arc::new(AnyClientCert::new(&provider, false))),
        (ClientAuth::RequireAnyClientCert, _) => Some(Arc::new(AnyClientCert::new(&provider, true))),
        (ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert, Some(roots)) => {
            let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let b = if s.client_auth == ClientAuth::VerifyClientCertIfGiven {
                b.allow_unauthenticated()
            } else {
                b
            };
            Some(b.build().map_err(|e| format!("tls_server_config: client_ca: {e}"))?)
        }
        // web_config refuses these without a CA.
        (_, None) => return Err("tls_server_config: the client_auth_type needs a client CA".into()),
    };
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certificates("cert", &s.cert)?, private_key(&s.key)?)
        .map_err(|e| format!("tls_server_config: the certificate and the key do not go together: {e}"))?;
    config.ignore_client_order = s.prefer_server_cipher_suites;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// `RequestClientCert` and `RequireAnyClientCert`: a certificate is asked for (or required) and
/// its signature over the handshake checked, but no CA vouches for it (Go's semantics: the
/// toolkit calls these insecure; the application could look at the certificate, tracer does not).
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyClientCert {
    fn new(provider: &CryptoProvider, mandatory: bool) -> Self {
        AnyClientCert {
            mandatory,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Completes the handshake within [`HANDSHAKE_TIMEOUT`]; None when the client does not (it is
/// silent, speaks something else, or fails the handshake). A plain-HTTP request gets Go's 400.
pub async fn handshake(acceptor: TlsAcceptor, stream: TcpStream) -> Option<TlsStream<TcpStream>> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async move {
        let mut stream = stream;
        let mut first = [0u8; 1];
        let n = stream.peek(&mut first).await.ok()?;
        if n == 0 {
            return None;
        }
        if first[0] != TLS_HANDSHAKE_RECORD {
            if first[0].is_ascii_uppercase() {
                // Most likely "GET /metrics HTTP/1.1": say why it fails, then close.
                let _ = stream.write_all(PLAIN_HTTP_REPLY).await;
                let _ = stream.shutdown().await;
            }
            return None;
        }
        acceptor.accept(stream).await.ok()
    })
    .await
    .ok()
    .flatten()
}
