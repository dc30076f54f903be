//! Certificates for TLS tests: a CA of the test's own and a server certificate for `127.0.0.1`
//! (and `localhost`) signed by it, as PEM files in a temporary directory.
//!
//! The CA is in no system trust store, so a client that is not told about it
//! (`ssl_ca_certs=`, [`Certs::ca`]) refuses the server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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

    /// The `redis-server` options of a server that speaks TLS only, on `port`: `--port 0
    /// --tls-port PORT`, and [`config_lines`](Self::config_lines) as options.
    pub fn server_args(&self, port: u16) -> Vec<String> {
        let mut args = vec![
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            port.to_string(),
        ];
        for (name, value) in self.settings() {
            args.push(format!("--{name}"));
            args.push(value);
        }
        args
    }

    /// The TLS settings of a server with these certificates, as `name value` lines of a
    /// configuration file (e.g. a `sentinel.conf`): its certificate and key (also shown
    /// when it connects to another server), the CA it checks the other servers'
    /// certificates against, TLS to its master when it is a replica (`tls-replication
    /// yes`; a sentinel also talks TLS to the servers it monitors and to the other
    /// sentinels then), and no certificate asked of clients (`tls-auth-clients no`).
    pub fn config_lines(&self) -> String {
        self.settings()
            .into_iter()
            .map(|(name, value)| format!("{name} {value}\n"))
            .collect()
    }

    fn settings(&self) -> [(&'static str, String); 5] {
        let path = |p: &PathBuf| p.to_str().expect("a UTF-8 temporary path").to_owned();
        [
            ("tls-cert-file", path(&self.cert)),
            ("tls-key-file", path(&self.key)),
            ("tls-ca-cert-file", path(&self.ca)),
            ("tls-replication", "yes".to_owned()),
            ("tls-auth-clients", "no".to_owned()),
        ]
    }

    /// The query parameter that makes taskq (and Celery) trust this CA:
    /// `ssl_ca_certs=<path of ca.pem>`.
    pub fn ca_param(&self) -> String {
        format!("ssl_ca_certs={}", self.ca.display())
    }
}

/// A redis-rs client for `url`. A `rediss://` URL may name the CA to trust as taskq's do
/// (`?ssl_ca_certs=<file>`, e.g. [`RedisServer::url`](crate::RedisServer::url) of a TLS
/// server); without it the system roots are trusted.
///
/// # Panics
///
/// If the URL is invalid or the CA file cannot be read.
pub fn redis_client(url: &str) -> redis::Client {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut ca = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("ssl_ca_certs=") {
            Some(path) => ca = Some(path),
            None => rest.push(pair),
        }
    }
    let base = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let client = match ca {
        None => redis::Client::open(base.as_str()),
        Some(path) => {
            let root_cert = std::fs::read(path)
                .unwrap_or_else(|e| panic!("cannot read the CA {path} of {url}: {e}"));
            redis::Client::build_with_tls(
                base.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            )
        }
    };
    client.unwrap_or_else(|e| panic!("invalid redis URL {url}: {e}"))
}

/// `PING` in plain text to `127.0.0.1:port`, connecting and waiting 2 s at most. A server that
/// speaks TLS only on that port does not answer: this is an error.
pub fn plain_ping(port: u16) -> redis::RedisResult<String> {
    let timeout = Duration::from_secs(2);
    let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))?
        .get_connection_with_timeout(timeout)?;
    con.set_read_timeout(Some(timeout))?;
    redis::cmd("PING").query(&mut con)
}
