//! Certificates for TLS tests: a CA of the test's own and a server certificate for `127.0.0.1`
//! (and `localhost`) signed by it, as PEM files in a temporary directory.
//!
//! The CA is in no system trust store, so a client that is not told about it
//! (`ssl_ca_certs=`, [`Certs::ca`]) refuses the server.

use std::path::PathBuf;
use std::sync::Arc;

use tempfile::TempDir;

/// A CA and a server certificate with its key, written as PEM files.
///
/// Clones share the files; the directory holding them is removed with the last clone (a
/// [`RedisServer`](crate::RedisServer) started with them keeps one, to start again).
#[derive(Debug, Clone)]
pub struct Certs {
    /// The CA's certificate (`ca.pem`): what a client trusts, Celery's `ssl_ca_certs`.
    pub ca: PathBuf,
    /// The server certificate (`server.pem`), for `127.0.0.1` and `localhost`.
    pub cert: PathBuf,
    /// The server certificate's private key (`server.key`).
    pub key: PathBuf,
    _dir: Arc<TempDir>,
}

impl Certs {
    /// Makes a new CA and a server certificate signed by it, in a fresh temporary directory.
    ///
    /// # Panics
    ///
    /// If the directory or a file cannot be written.
    pub fn generate() -> Certs {
        let dir = tempfile::Builder::new()
            .prefix("taskq-tls-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for certificates: {e}"));
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "taskq test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            path
        };
        Certs {
            ca: write("ca.pem", ca_cert.pem()),
            cert: write("server.pem", cert.pem()),
            key: write("server.key", key.serialize_pem()),
            _dir: Arc::new(dir),
        }
    }
}
