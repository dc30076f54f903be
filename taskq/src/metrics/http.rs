//! A minimal HTTP endpoint for Prometheus: `GET /metrics` answers OpenMetrics text from a
//! render function (anything else is 404 or 405). One request per connection, answered and
//! closed, which is all a scraper needs; a client that sends nothing is dropped after a few
//! seconds. Used by a worker for its own metrics and by [`super::FleetMetrics`].

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest request head read; a scrape's is a few hundred bytes.
const MAX_REQUEST: usize = 8 * 1024;

/// The content type of OpenMetrics text, which Prometheus asks for and parses.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` for metrics; `what` names the setting, for the error.
pub(crate) async fn bind(addr: std::net::SocketAddr, what: &str) -> crate::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| crate::Error::Config(format!("cannot serve metrics on {addr} ({what}): {e}")))
}

/// Answers scrapes on `listener` with `render()`'s text until `stop`.
pub(crate) async fn serve<F, Fut>(listener: TcpListener, stop: CancellationToken, render: F)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = String> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, render.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request and answers it.
async fn answer<F, Fut>(mut stream: TcpStream, render: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = String>,
{
    let Ok(Some(head)) = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await else {
        return;
    };
    let response = match request_target(&head) {
        Some(("GET", "/metrics")) => response("200 OK", CONTENT_TYPE, &render().await),
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
