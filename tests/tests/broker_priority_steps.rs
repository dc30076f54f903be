//! kombu's `priority_steps` other than the default `[0, 3, 6, 9]`: taskq must write, read and
//! recover the same per-priority lists a Celery app with those steps uses.

use std::time::Duration;

use taskq::broker::redis::RedisBroker;
use taskq::broker::{Broker, Outgoing, RecoverAfter};
use taskq::keys::BrokerKeys;
use taskq::protocol::NewMessage;
use taskq_tests::worker::query;
use taskq_tests::RedisServer;

fn outgoing(id: &str, priority: u8) -> Outgoing {
    let mut message = NewMessage::new("tasks.add", id);
    message.priority = priority;
    Outgoing {
        queue: "celery".to_owned(),
        priority,
        envelope: message.encode("celery").unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_message_returns_to_its_custom_priority_list() {
    let server = RedisServer::start();
    let keys = BrokerKeys::default().with_priority_steps(&[0, 5, 7]);
    let broker = RedisBroker::with_keys(&server.url(), keys).unwrap();
    broker
        .publish(&[outgoing("p1", 1), outgoing("p6", 6), outgoing("p8", 8)])
        .await
        .unwrap();
    // kombu with priority_steps=[0, 5, 7]: 1 → `celery`, 6 → `celery\x06\x165`, 8 → `…7`.
    let len = |list: &str| query::<i64>(&server.url(), &["LLEN", list]);
    assert_eq!(
        (
            len("celery"),
            len("celery\x06\x165"),
            len("celery\x06\x167")
        ),
        (1, 1, 1)
    );

    // Taken by a worker that then dies: its leases lapse and recovery puts each message back
    // in the list of its own bucket, which the fetch reads.
    let fetched = broker.fetch(&["celery".into()], 10, 1 << 20).await.unwrap();
    assert_eq!(fetched.deliveries.len(), 3);
    assert_eq!(
        len("celery") + len("celery\x06\x165") + len("celery\x06\x167"),
        0
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = RecoverAfter::new(Duration::from_millis(100));
    assert_eq!(broker.recover(after, 10).await.unwrap(), 3);
    assert_eq!(
        (
            len("celery"),
            len("celery\x06\x165"),
            len("celery\x06\x167"),
            len("celery\x06\x166")
        ),
        (1, 1, 1, 0)
    );
    let again = broker.fetch(&["celery".into()], 10, 1 << 20).await.unwrap();
    assert_eq!(again.deliveries.len(), 3);
}
