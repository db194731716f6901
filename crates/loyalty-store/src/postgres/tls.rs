//! TLS to PostgreSQL, configured in `--database-url` the way libpq reads it.
//!
//! The driver (`tokio-postgres`) knows `sslmode=disable|prefer|require` and
//! no certificate options, and refuses parameters it does not know. So the
//! URL's TLS parameters are taken out here and turned into a rustls client
//! configuration, and the rest of the URL goes to the driver:
//!
//! | `sslmode` | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | never | – |
//! | `allow`, `prefer` (default) | when the server offers TLS | no (as `verify-ca` when `sslrootcert` is given) |
//! | `require` | always | no (as `verify-ca` when `sslrootcert` is given) |
//! | `verify-ca` | always | chain to `sslrootcert` |
//! | `verify-full` | always | chain to `sslrootcert`, and the host name (or IP address) |
//!
//! `sslrootcert` is a PEM file of trusted certificates, or `system` for the
//! bundled Mozilla roots (`webpki-roots`). `sslcert` and `sslkey` (PEM) give
//! a client certificate, for servers that authenticate with `cert` in
//! `pg_hba.conf`. As in libpq, `require` without a root certificate
//! encrypts but does not authenticate the server: use `verify-full`.

use std::sync::Arc;

use postgres::{Client, NoTls};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{StoreError, StoreResult};

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> StoreResult<SslMode> {
        Ok(match v {
            "disable" => SslMode::Disable,
            // The driver cannot try plaintext first; `allow` takes TLS when
            // offered, like `prefer`, and checks nothing either.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(bad(format!(
                    "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }
}

/// What the URL says about TLS.
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsParams {
    mode: Option<String>,
    root_cert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

/// Where and how to connect: the driver's configuration and, unless
/// `sslmode=disable`, the TLS connector.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) config: postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl Target {
    /// Parses a database URL (or a libpq key=value string, whose TLS
    /// parameters the driver reads itself: only `disable`, `prefer` and
    /// `require` there).
    pub(crate) fn parse(url: &str) -> StoreResult<Target> {
        let (rest, params) = split_tls_params(url)?;
        let mut config: postgres::Config = rest.parse().map_err(|e| bad(format!("{e}")))?;
        let mode = match &params.mode {
            Some(m) => SslMode::parse(m)?,
            None => match config.get_ssl_mode() {
                postgres::config::SslMode::Disable => SslMode::Disable,
                postgres::config::SslMode::Require => SslMode::Require,
                _ => SslMode::Prefer,
            },
        };
        config.ssl_mode(match mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
        let tls = match mode {
            SslMode::Disable => None,
            _ => Some(MakeRustlsConnect::new(client_config(mode, &params)?)),
        };
        Ok(Target { config, tls })
    }

    /// Opens a connection.
    pub(crate) fn connect(&self) -> Result<Client, postgres::Error> {
        match &self.tls {
            None => self.config.connect(NoTls),
            Some(tls) => self.config.connect(tls.clone()),
        }
    }
}

fn bad(message: String) -> StoreError {
    StoreError::Unavailable(format!("bad database URL: {message}"))
}

/// Takes `sslmode`, `sslrootcert`, `sslcert` and `sslkey` out of a URL's
/// query; returns the rest of the URL and what was taken.
fn split_tls_params(url: &str) -> StoreResult<(String, TlsParams)> {
    let mut params = TlsParams::default();
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let Some((base, query)) = url.split_once('?').filter(|_| is_url) else {
        return Ok((url.to_string(), params));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match k {
            "sslmode" => &mut params.mode,
            "sslrootcert" => &mut params.root_cert,
            "sslcert" => &mut params.cert,
            "sslkey" => &mut params.key,
            _ => {
                kept.push(pair);
                continue;
            }
        };
        *slot = Some(percent_decode(v).ok_or_else(|| bad(format!("{k}: bad %-escape")))?);
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, params))
}

fn percent_decode(v: &str) -> Option<String> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn client_config(mode: SslMode, p: &TlsParams) -> StoreResult<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match p.root_cert.as_deref() {
        None => None,
        Some("system") => Some(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }),
        Some(path) => {
            let mut store = rustls::RootCertStore::empty();
            for cert in read_certs(path, "sslrootcert")? {
                store
                    .add(cert)
                    .map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
            }
            Some(store)
        }
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(bad(format!(
                "sslmode={} needs sslrootcert=<PEM file> (or sslrootcert=system)",
                p.mode.as_deref().unwrap_or_default()
            )));
        }
        (SslMode::VerifyFull, Some(roots)) => webpki(roots, &provider)?,
        (_, roots) => Arc::new(Lenient {
            chain: roots.map(|r| webpki(r, &provider)).transpose()?,
            provider: provider.clone(),
        }),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&p.cert, &p.key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "sslcert")?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| bad(format!("sslkey {key}: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad(format!("sslcert/sslkey: {e}")))
        }
        _ => Err(bad("sslcert and sslkey go together".into())),
    }
}

fn read_certs(path: &str, what: &str) -> StoreResult<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(format!("{what} {path}: {e}")))?;
    if certs.is_empty() {
        return Err(bad(format!("{what} {path}: no PEM certificate in it")));
    }
    Ok(certs)
}

fn webpki(
    roots: rustls::RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> StoreResult<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| bad(format!("sslrootcert: {e}")))
}

/// How the server's certificate is checked below `verify-full` (which uses
/// rustls's own verifier): `verify-ca` checks that the chain leads to a
/// trusted root but does not compare the certificate's name with the host;
/// `prefer` and `require` without `sslrootcert` check nothing, as in libpq
/// (the connection is encrypted). The handshake's signatures are always
/// checked.
#[derive(Debug)]
struct Lenient {
    /// The chain verifier for `verify-ca`; `None`: no check.
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_and_the_rest_is_kept() {
        let (rest, p) = split_tls_params(
            "postgres://u:pw@db:5432/l?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20dir%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:pw@db:5432/l?application_name=x&connect_timeout=3"
        );
        assert_eq!(p.mode.as_deref(), Some("verify-full"));
        assert_eq!(p.root_cert.as_deref(), Some("/etc/ca dir/ca.pem"));
        assert_eq!((p.cert, p.key), (None, None));
        let (rest, p) = split_tls_params("postgres://db/l?sslmode=require").unwrap();
        assert_eq!(
            (rest.as_str(), p.mode.as_deref()),
            ("postgres://db/l", Some("require"))
        );
        // A key=value string goes to the driver whole.
        let kv = "host=db sslmode=require";
        assert_eq!(
            split_tls_params(kv).unwrap(),
            (kv.to_string(), TlsParams::default())
        );
    }

    #[test]
    fn a_failover_url_keeps_its_hosts_and_session_attributes() {
        let t = Target::parse(
            "postgres://u@db-a:5432,db-b:5433/l?target_session_attrs=read-write&sslmode=verify-full&sslrootcert=system",
        )
        .unwrap();
        assert_eq!(t.config.get_hosts().len(), 2);
        assert_eq!(t.config.get_ports(), [5432, 5433]);
        assert_eq!(
            t.config.get_target_session_attrs(),
            postgres::config::TargetSessionAttrs::ReadWrite
        );
        assert_eq!(t.config.get_ssl_mode(), postgres::config::SslMode::Require);
    }

    #[test]
    fn bad_tls_settings_are_refused_with_what_is_wrong() {
        let err = |url: &str| match Target::parse(url) {
            Ok(_) => panic!("{url} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err("postgres://db/l?sslmode=on").contains("sslmode=on is not one of"));
        assert!(err("postgres://db/l?sslmode=verify-full").contains("needs sslrootcert"));
        assert!(err("postgres://db/l?sslmode=verify-ca").contains("needs sslrootcert"));
        assert!(
            err("postgres://db/l?sslmode=require&sslrootcert=/nonexistent/ca.pem")
                .contains("sslrootcert /nonexistent/ca.pem")
        );
        assert!(err("postgres://db/l?sslmode=require&sslcert=/a.pem").contains("go together"));
        assert!(err("postgres://db/l?sslrootcert=%zz").contains("bad %-escape"));
        let empty = tempfile::NamedTempFile::new().unwrap();
        let url = format!(
            "postgres://db/l?sslmode=verify-full&sslrootcert={}",
            empty.path().display()
        );
        assert!(err(&url).contains("no PEM certificate"));
    }

    #[test]
    fn the_mode_decides_whether_the_driver_must_encrypt() {
        use postgres::config::SslMode as Driver;
        let mode = |url: &str| Target::parse(url).unwrap().config.get_ssl_mode();
        assert_eq!(mode("postgres://db/l"), Driver::Prefer);
        assert_eq!(mode("postgres://db/l?sslmode=disable"), Driver::Disable);
        assert_eq!(mode("postgres://db/l?sslmode=allow"), Driver::Prefer);
        assert_eq!(mode("postgres://db/l?sslmode=require"), Driver::Require);
        assert_eq!(
            mode("postgres://db/l?sslmode=verify-full&sslrootcert=system"),
            Driver::Require
        );
        assert!(
            Target::parse("postgres://db/l?sslmode=disable")
                .unwrap()
                .tls
                .is_none()
        );
        assert!(Target::parse("postgres://db/l").unwrap().tls.is_some());
    }
}
