//! `rediss://` URLs: tasks run over TLS with Celery's URL parameters (`ssl_ca_certs`,
//! `ssl_cert_reqs`), certificates are verified by default, and ACL credentials are checked.

use std::time::Duration;

use taskq::Options;
use taskq_tests::tls::Certs;
use taskq_tests::worker::{client_at, RunningWorker};
use taskq_tests::{free_port, RedisServer};

#[taskq::task(name = "test.tls_add")]
async fn tls_add(x: i64, y: i64) -> i64 {
    x + y
}

/// A redis-server that also listens with TLS on the returned port, with an ACL user
/// `app` / `s3cret` and the default user disabled on the TLS side too.
fn tls_server(certs: &Certs) -> (RedisServer, u16) {
    let tls_port = free_port().to_string();
    let server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        certs.cert.to_str().unwrap(),
        "--tls-key-file",
        certs.key.to_str().unwrap(),
        "--tls-ca-cert-file",
        certs.ca.to_str().unwrap(),
        "--tls-auth-clients",
        "no",
        "--user",
        "app",
        "on",
        ">s3cret",
        "~*",
        "&*",
        "+@all",
    ]);
    (server, tls_port.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_over_tls_with_a_private_ca_and_acl_user() {
    let certs = Certs::generate();
    let (_server, tls_port) = tls_server(&certs);
    let url = format!(
        "rediss://app:s3cret@127.0.0.1:{tls_port}/0?ssl_cert_reqs=CERT_REQUIRED&ssl_ca_certs={}",
        certs.ca.display()
    );
    let client = client_at(&url);
    assert!(
        !client.broker().describe().contains("s3cret"),
        "password must be masked"
    );

    let worker = RunningWorker::start(&client, |b| b.concurrency(2));
    let sum = client
        .send(&tls_add, (20, 22), Options::new())
        .await
        .unwrap();
    assert_eq!(sum.get(Duration::from_secs(10)).await.unwrap(), 42);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused_unless_verification_is_off() {
    let certs = Certs::generate();
    let (_server, tls_port) = tls_server(&certs);

    // The system roots do not know the test CA: the connection fails closed.
    let untrusted = client_at(&format!("rediss://app:s3cret@127.0.0.1:{tls_port}/0"));
    let err = tokio::time::timeout(Duration::from_secs(10), untrusted.broker().ping())
        .await
        .expect("a refused certificate fails fast")
        .unwrap_err();
    let text = err.to_string().to_lowercase();
    assert!(
        text.contains("certificate") || text.contains("unknownissuer"),
        "{err}"
    );

    // Celery's ssl_cert_reqs=CERT_NONE turns verification off, on request only.
    let unverified = client_at(&format!(
        "rediss://app:s3cret@127.0.0.1:{tls_port}/0?ssl_cert_reqs=CERT_NONE"
    ));
    unverified.broker().ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_clear_error() {
    let certs = Certs::generate();
    let (_server, tls_port) = tls_server(&certs);
    let client = client_at(&format!(
        "rediss://app:wrong@127.0.0.1:{tls_port}/0?ssl_ca_certs={}",
        certs.ca.display()
    ));
    let err = client.broker().ping().await.unwrap_err().to_string();
    assert!(
        err.to_lowercase().contains("authentication failed"),
        "{err}"
    );
    assert!(
        !err.contains("wrong@"),
        "the error must not echo the URL with its password: {err}"
    );
}
