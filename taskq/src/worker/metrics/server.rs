//! Serves the worker's metrics over HTTP: `GET /metrics` answers the OpenMetrics text
//! Prometheus scrapes (anything else is 404). One request per connection, answered and closed,
//! which is all a scraper needs; a client that sends nothing is dropped after a few seconds.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::super::part::{Loop, LoopPart};
use super::super::Shared;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest request head read; a scrape's is a few hundred bytes.
const MAX_REQUEST: usize = 8 * 1024;

/// The content type of OpenMetrics text, which Prometheus asks for and parses.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds the metrics address, before the worker starts, so that a taken address fails the
/// start with a clear error instead of a worker without its metrics.
pub(in crate::worker) async fn bind(addr: std::net::SocketAddr) -> crate::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        crate::Error::Config(format!(
            "cannot serve metrics on {addr} (TASKQ_METRICS_ADDR): {e}"
        ))
    })
}

/// The part that serves the metrics.
#[derive(Debug)]
pub(in crate::worker) struct MetricsServer(Loop);

impl MetricsServer {
    /// Serves `shared`'s metrics on `listener` until shut down.
    pub(in crate::worker) fn start(shared: Arc<Shared>, listener: TcpListener) -> Self {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!("metrics on http://{addr}/metrics");
        }
        Self(Loop::spawn(|stop| serve(shared, listener, stop)))
    }
}

impl LoopPart for MetricsServer {
    const NAME: &'static str = "metrics";

    fn into_loop(self) -> Loop {
        self.0
    }
}

async fn serve(shared: Arc<Shared>, listener: TcpListener, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move { answer(&shared, stream).await });
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request and answers it.
async fn answer(shared: &Shared, mut stream: TcpStream) {
    let Ok(Some(head)) = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await else {
        return;
    };
    let response = match request_target(&head) {
        Some(("GET", "/metrics")) => response("200 OK", CONTENT_TYPE, &scrape(shared)),
        Some(("GET", _)) => response("404 Not Found", "text/plain", "see /metrics\n"),
        _ => response("405 Method Not Allowed", "text/plain", "GET /metrics\n"),
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The request's head, up to the blank line; `None` if the client closes first or sends
/// more than [`MAX_REQUEST`] without one.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            return None;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(head).ok()
}

/// The method and path of a request's first line, without the query string.
fn request_target(head: &str) -> Option<(&str, &str)> {
    let mut words = head.lines().next()?.split(' ');
    let method = words.next()?;
    let target = words.next()?;
    Some((method, target.split('?').next().unwrap_or(target)))
}

fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The metrics now, with the gauges read at this moment.
fn scrape(shared: &Shared) -> String {
    let Some(metrics) = &shared.metrics.0 else {
        return String::new();
    };
    let slots = shared.pool.size();
    let running = slots.saturating_sub(shared.execution_slots.available_permits());
    metrics.slots.set(slots as i64);
    metrics
        .prefetched
        .set(shared.held.len().saturating_sub(running) as i64);
    metrics.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_line_gives_method_and_path() {
        let head = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(request_target(head), Some(("GET", "/metrics")));
        assert_eq!(request_target(""), None);
        assert_eq!(
            request_target("POST /metrics HTTP/1.1\r\n\r\n").unwrap().0,
            "POST"
        );
    }

    #[test]
    fn a_response_says_its_length_and_closes() {
        let text = response("200 OK", "text/plain", "hello");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 5\r\n"));
        assert!(text.ends_with("Connection: close\r\n\r\nhello"));
    }
}
