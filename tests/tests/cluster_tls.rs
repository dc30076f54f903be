//! `rediss+cluster://` URLs against a Redis Cluster that speaks TLS only: a client and a worker
//! with broker and results on the cluster, trusting the test CA through Celery's
//! `ssl_ca_certs`, send tasks and get their results, also after a master's replica took over;
//! without the CA the first send fails with a certificate error, promptly.

use std::time::Duration;

use taskq::Options;
use taskq_tests::cluster::RedisCluster;
use taskq_tests::tls::Certs;
use taskq_tests::worker::{client_at, RunningWorker};

const WAIT: Duration = Duration::from_secs(30);

#[taskq::task(name = "test.cluster_tls.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
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
    let mut results = Vec::new();
    for i in 0..30 {
        results.push(client.send(&add, (i, 1), Options::new()).await.unwrap());
    }
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.get(WAIT).await.unwrap(), i as i64 + 1);
    }

    // A master dies and its replica takes over: the client and the worker find the new
    // master in the slot map and reconnect to it, over TLS with the same CA.
    cluster.wait_for_replication();
    let victim = cluster.masters()[0];
    cluster.kill_node(victim);
    cluster.wait_for_failover(victim, WAIT);
    let mut results = Vec::new();
    for i in 0..30 {
        results.push(client.send(&add, (i, 100), Options::new()).await.unwrap());
    }
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.get(WAIT).await.unwrap(), i as i64 + 100);
    }

    let stats = client
        .broker()
        .queue_stats(&["celery".into()])
        .await
        .unwrap();
    assert_eq!((stats[0].waiting, stats[0].unacked), (0, 0));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_the_first_send_fails_with_a_certificate_error() {
    let certs = Certs::generate();
    let cluster = RedisCluster::start_tls(3, 0, &certs);
    // The same URL without ssl_ca_certs: the system roots do not know the test CA.
    let url = cluster.cluster_url();
    let (untrusted, _) = url.split_once('?').unwrap();
    let client = client_at(untrusted);

    let started = std::time::Instant::now();
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
