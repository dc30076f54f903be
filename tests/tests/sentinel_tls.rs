//! `sentinel://` URLs with Celery's `ssl_*` parameters against a Sentinel set whose master and
//! replica speak TLS only (kombu's layout: the sentinels answer in plain TCP and name the
//! master, the connections to the master are TLS): tasks run and have their results, also
//! after the sentinels promoted the replica; without the CA the first send fails with a
//! certificate error, promptly.

use std::time::{Duration, Instant};

use taskq::Options;
use taskq_tests::sentinel::SentinelSet;
use taskq_tests::tls::Certs;
use taskq_tests::worker::{client_at, RunningWorker};

const WAIT: Duration = Duration::from_secs(30);

#[taskq::task(name = "test.sentinel_tls.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_run_through_sentinels_on_a_tls_master() {
    let certs = Certs::generate();
    let mut set = SentinelSet::start_tls(1, &certs);
    let url = set.url(0);
    assert!(url.contains("ssl_ca_certs="), "{url}");
    let client = client_at(&url);

    let worker = RunningWorker::start(&client, |b| b.concurrency(4));
    let mut results = Vec::new();
    for i in 0..20 {
        results.push(client.send(&add, (i, 1), Options::new()).await.unwrap());
    }
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.get(WAIT).await.unwrap(), i as i64 + 1);
    }

    // The sentinels reach the TLS servers, so they can fail over: the replica becomes the
    // master, and the client and the worker follow it over TLS.
    set.wait_for_replicas();
    let old = set.kill_master();
    set.wait_for_failover(old);
    let mut results = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        // Sends made before taskq's watch has seen the new master may fail: retried.
        let result = loop {
            match client.send(&add, (i, 100), Options::new()).await {
                Ok(result) => break result,
                Err(e) if started.elapsed() < WAIT => {
                    println!("send {i} failed, again: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("send {i} still fails after {WAIT:?}: {e}"),
            }
        };
        results.push(result);
    }
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.get(WAIT).await.unwrap(), i as i64 + 100);
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_the_first_send_fails_with_a_certificate_error() {
    let certs = Certs::generate();
    let set = SentinelSet::start_tls(0, &certs);
    // TLS to the master (ssl_cert_reqs asks for it) with the system roots, which do not know
    // the test CA.
    let url = set
        .url(0)
        .replace(&certs.ca_param(), "ssl_cert_reqs=CERT_REQUIRED");
    let client = client_at(&url);

    let started = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        client.send(&add, (1, 2), Options::new()),
    )
    .await
    .expect("a refused certificate fails the send, it does not hang")
    .expect_err("the send cannot succeed without trusting the master's certificate");
    println!("refused in {:?}: {err}", started.elapsed());
    let text = err.to_string().to_lowercase();
    assert!(
        text.contains("certificate") || text.contains("unknownissuer"),
        "the error says why: {err}"
    );
}
