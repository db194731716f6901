//! TLS files for the services a node is a client of: Redis (the shared
//! rate limit) and NATS (the event relay). PostgreSQL takes its TLS
//! settings in the database URL, as libpq does
//! (`loyalty_store::postgres`).

use std::path::PathBuf;

use anyhow::Context;

/// A CA to trust for the server's certificate and, for servers that verify
/// their clients, a client certificate and key (all PEM files).
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// The CAs that sign the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and its private key.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl TlsFiles {
    /// From the `--{service}-ca-file`, `--{service}-cert-file` and
    /// `--{service}-key-file` flags, each file checked to be readable now:
    /// a wrong path stops the server at start instead of leaving a client
    /// retrying.
    pub fn checked(
        service: &str,
        ca_file: Option<PathBuf>,
        cert_file: Option<PathBuf>,
        key_file: Option<PathBuf>,
    ) -> anyhow::Result<TlsFiles> {
        for (what, path) in [("ca", &ca_file), ("cert", &cert_file), ("key", &key_file)] {
            if let Some(p) = path {
                std::fs::File::open(p)
                    .with_context(|| format!("--{service}-{what}-file {}", p.display()))?;
            }
        }
        Ok(TlsFiles {
            ca_file,
            client: cert_file.zip(key_file),
        })
    }

    /// Whether no file is set.
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.client.is_none()
    }
}
