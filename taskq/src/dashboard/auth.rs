//! Who may use a dashboard served on its own ([`Dashboard::serve`](super::Dashboard::serve)):
//! anyone on a loopback address, else the holders of a token or of a user name and password.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;

/// The cookie a browser keeps the token in, once it opened the page with `?token=`.
const TOKEN_COOKIE: &str = "taskq_dashboard_token";

/// Who may use the dashboard.
///
/// ```
/// use taskq::dashboard::Access;
///
/// assert_eq!(Access::parse_basic("ops:s3cret").unwrap(), Access::Basic { user: "ops".into(), password: "s3cret".into() });
/// assert!(Access::parse_basic("no-colon").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// Anyone who reaches it: only allowed on a loopback address.
    Open,
    /// Whoever sends `Authorization: Bearer <token>`; a browser opens the page once with
    /// `?token=<token>` and then keeps it in a cookie.
    Token(String),
    /// HTTP basic authentication (the browser asks for the user name and password).
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Open => f.write_str("Open"),
            Self::Token(_) => f.write_str("Token(***)"),
            Self::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, password: *** }}"),
        }
    }
}

impl Access {
    /// `user:password` as [`Access::Basic`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) without a `:` or with an empty part.
    pub fn parse_basic(text: &str) -> crate::Result<Self> {
        match text.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => Ok(Self::Basic {
                user: user.to_owned(),
                password: password.to_owned(),
            }),
            _ => Err(crate::Error::Config(
                "the dashboard's basic authentication must be user:password".into(),
            )),
        }
    }

    /// `router` with this access checked in front of every request.
    pub(super) fn guard(self, router: axum::Router) -> axum::Router {
        if self == Self::Open {
            return router;
        }
        router.layer(axum::middleware::from_fn(move |request, next| {
            let access = self.clone();
            async move { access.check(request, next).await }
        }))
    }

    async fn check(&self, request: Request, next: Next) -> Response {
        match self {
            Self::Open => next.run(request).await,
            Self::Token(token) => {
                if let Some(given) = query_token(request.uri().query()) {
                    return if same(given.as_bytes(), token.as_bytes()) {
                        keep_token_and_reload(request.uri().path(), token)
                    } else {
                        refused_token()
                    };
                }
                let sent = bearer(request.headers()).or_else(|| cookie(request.headers()));
                match sent {
                    Some(sent) if same(sent.as_bytes(), token.as_bytes()) => {
                        next.run(request).await
                    }
                    _ => refused_token(),
                }
            }
            Self::Basic { user, password } => {
                let expected = format!("{user}:{password}");
                match basic(request.headers()) {
                    Some(sent) if same(&sent, expected.as_bytes()) => next.run(request).await,
                    _ => {
                        let challenge = HeaderValue::from_static("Basic realm=\"taskq\"");
                        let mut response =
                            (StatusCode::UNAUTHORIZED, "log in to see the dashboard\n")
                                .into_response();
                        response
                            .headers_mut()
                            .insert(header::WWW_AUTHENTICATE, challenge);
                        response
                    }
                }
            }
        }
    }
}

fn refused_token() -> Response {
    let text = "this dashboard needs its token: open it once with ?token=<token>, \
                or send Authorization: Bearer <token>\n";
    (StatusCode::UNAUTHORIZED, text).into_response()
}

/// Stores the token in a cookie and sends the browser back to `path` without it in the URL.
fn keep_token_and_reload(path: &str, token: &str) -> Response {
    let mut response = Redirect::to(path).into_response();
    let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn query_token(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::to_owned)
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
        .map(str::to_owned)
}

fn basic(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
}

/// Compares in a time that does not depend on where the two differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_header_the_cookie_or_the_query() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        headers.insert(
            header::COOKIE,
            "x=1; taskq_dashboard_token=def".parse().unwrap(),
        );
        assert_eq!(bearer(&headers).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers).as_deref(), Some("def"));
        assert_eq!(query_token(Some("a=1&token=g%20h")).as_deref(), Some("g h"));
        assert_eq!(query_token(Some("a=1")), None);
    }

    #[test]
    fn comparison_needs_every_byte() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT") && !same(b"secret", b"secrets"));
    }

    #[test]
    fn the_debug_form_hides_secrets() {
        let access = Access::parse_basic("ops:pw").unwrap();
        assert!(!format!("{access:?}").contains("pw"));
        assert!(!format!("{:?}", Access::Token("tok".into())).contains("tok"));
    }
}
