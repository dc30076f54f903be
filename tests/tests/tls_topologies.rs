//! TLS on a Redis Cluster and behind Redis Sentinel, against servers that speak TLS only.
//!
//! - `rediss+cluster://` with Celery's `ssl_ca_certs`: a client and a worker with broker (three
//!   shards, one per master) and results on the cluster send tasks and get their results, also
//!   after a master's replica took over.
//! - `sentinel://…?ssl_ca_certs=…`, kombu's layout (the sentinels answer in plain TCP and name
//!   the master, the connections to the master are TLS): the same, also after the sentinels
//!   promoted the replica.
//! - Without the CA (the system roots do not know it) the first send fails with a certificate
//!   error, promptly, in both.

use std::time::{Duration, Instant};

use taskq::{Client, Options};
use taskq_tests::cluster::RedisCluster;
use taskq_tests::sentinel::SentinelSet;
use taskq_tests::tls::Certs;
use taskq_tests::worker::{client_at, RunningWorker};

const WAIT: Duration = Duration::from_secs(30);

#[taskq::task(name = "test.tls_topologies.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Sends `add(i, offset)` for `i` in `0..count` one by one, then checks every result. With
/// `retry_sends`, a send that fails is tried again for [`WAIT`] at most.
async fn adds_come_back(client: &Client, count: i64, offset: i64, retry_sends: bool) {
    let mut results = Vec::new();
    for i in 0..count {
        let started = Instant::now();
        let result = loop {
            match client.send(&add, (i, offset), Options::new()).await {
                Ok(result) => break result,
                Err(e) if retry_sends && started.elapsed() < WAIT => {
                    println!("send {i} failed, again: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("send {i} failed: {e}"),
            }
        };
        results.push(result);
    }
    for (i, result) in (0..).zip(&results) {
        assert_eq!(result.get(WAIT).await.unwrap(), i + offset);
    }
}

/// Checks that the first send of a client on `url` fails within 20 s, saying that the
/// server's certificate is not trusted.
async fn first_send_is_refused_for_the_certificate(url: &str) {
    let client = client_at(url);
    let started = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        client.send(&add, (1, 2), Options::new()),
    )
    .await
    .expect("a refused certificate fails the send, it does not hang")
    .expect_err("the send cannot succeed without trusting the server's certificate");
    println!("refused in {:?}: {err}", started.elapsed());
    let text = err.to_string().to_lowercase();
    assert!(
        text.contains("certificate") || text.contains("unknownissuer"),
        "the error says why: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_run_on_a_tls_cluster_with_ssl_ca_certs() {
    let certs = Certs::generate();
    let mut cluster = RedisCluster::start_tls(3, 1, &certs);
    let url = cluster.cluster_url();
    assert!(
        url.starts_with("rediss+cluster://") && url.contains("ssl_ca_certs="),
        "{url}"
    );
    // The queue in three shards, one per master: the worker's blocking waits go to every
    // master on connections of their own, over TLS too.
    let client = client_at(&format!("{url}&shards=3"));
    let worker = RunningWorker::start(&client, |b| b.concurrency(4));
    adds_come_back(&client, 30, 1, false).await;

    // A master dies and its replica takes over: the client and the worker find the new
    // master in the slot map and reconnect to it, over TLS with the same CA. Commands wait
    // for the promotion, so no send fails.
    cluster.wait_for_replication();
    let victim = cluster.masters()[0];
    cluster.kill_node(victim);
    cluster.wait_for_failover(victim, WAIT);
    adds_come_back(&client, 30, 100, false).await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_a_tls_cluster_refuses_the_first_send() {
    let certs = Certs::generate();
    let cluster = RedisCluster::start_tls(3, 0, &certs);
    // The same URL without ssl_ca_certs.
    let url = cluster.cluster_url();
    let (untrusted, _) = url.split_once('?').unwrap();
    first_send_is_refused_for_the_certificate(untrusted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_run_through_sentinels_on_a_tls_master() {
    let certs = Certs::generate();
    let mut set = SentinelSet::start_tls(1, &certs);
    let url = set.url(0);
    assert!(url.contains("ssl_ca_certs="), "{url}");
    let client = client_at(&url);
    let worker = RunningWorker::start(&client, |b| b.concurrency(4));
    adds_come_back(&client, 20, 1, false).await;

    // The sentinels reach the TLS servers, so they can fail over: the replica becomes the
    // master, and the client and the worker follow it over TLS. Sends made before taskq's
    // once-a-second watch has seen the move go to the dead master and fail: retried.
    set.wait_for_replicas();
    let old = set.kill_master();
    set.wait_for_failover(old);
    adds_come_back(&client, 20, 100, true).await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_a_tls_master_behind_sentinels_refuses_the_first_send() {
    let certs = Certs::generate();
    let set = SentinelSet::start_tls(0, &certs);
    // TLS to the master (ssl_cert_reqs asks for it) with the system roots.
    let url = set
        .url(0)
        .replace(&certs.ca_param(), "ssl_cert_reqs=CERT_REQUIRED");
    first_send_is_refused_for_the_certificate(&url).await;
}
