//! The page and its assets, compiled into the binary (no CDN, nothing fetched at run time):
//! one HTML page whose script reads `api/state` every two seconds and renders it.

use axum::extract::OriginalUri;
use axum::http::{header, Uri};
use axum::response::{Html, IntoResponse};

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// The page, with a `<base>` naming the path it is served under, so that its relative links
/// work when the router is nested (`/taskq` or `/taskq/` as well as `/`).
pub(super) async fn index(OriginalUri(original): OriginalUri, uri: Uri) -> impl IntoResponse {
    let base = base_path(original.path(), uri.path());
    let page = INDEX.replace("{{base}}", &html_attribute(&base));
    ([(header::CACHE_CONTROL, "no-store")], Html(page))
}

pub(super) async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

pub(super) async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// The path the router is nested under, ending in `/`: the request's full path without the
/// part the router saw.
fn base_path(original: &str, seen: &str) -> String {
    let prefix = original.strip_suffix(seen).unwrap_or(original);
    format!("{}/", prefix.trim_end_matches('/'))
}

fn html_attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::base_path;

    #[test]
    fn the_base_is_where_the_router_is_nested() {
        assert_eq!(base_path("/", "/"), "/");
        assert_eq!(base_path("/taskq", "/"), "/taskq/");
        assert_eq!(base_path("/taskq/", "/"), "/taskq/");
        assert_eq!(base_path("/ops/taskq/", "/"), "/ops/taskq/");
    }
}
