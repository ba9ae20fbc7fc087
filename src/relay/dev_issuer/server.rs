//! The dev issuer's HTTP side: the accept loop, routing, discovery and JWKS, the device
//! authorization and token endpoints, and the approval page.
//!
//! Everything that comes in is untrusted (even on loopback): form bodies are capped at
//! [`MAX_FORM_BYTES`] (413), must be `application/x-www-form-urlencoded` and UTF-8, may not
//! repeat a parameter (`invalid_request`), and must arrive within [`BODY_TIMEOUT`]. OAuth
//! endpoints answer every error as RFC 6749 §5.2 JSON (`error`, `error_description`); the page
//! answers with HTML, every interpolated value escaped.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::header::{HeaderName, HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, PRAGMA};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::flows::{self, ApprovalError, Issued, OAuthError, PageView};
use super::{b64, whole_seconds, Shared};

/// The largest form body (or query string) accepted.
pub(super) const MAX_FORM_BYTES: usize = 16 * 1024;
/// How long a client may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const DISCOVERY: &str = "/.well-known/openid-configuration";
const FORM_TYPE: &str = "application/x-www-form-urlencoded";

type Resp = Response<Full<Bytes>>;

/// Accept loop; connection tasks live in the `JoinSet`, so aborting this task ends them too.
pub(super) async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let shared = shared.clone();
                            async move { Ok::<_, Infallible>(route(&shared, req).await) }
                        });
                        let io = hyper_util::rt::TokioIo::new(stream);
                        if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                            tracing::debug!(error = %e, "dev issuer connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dev issuer accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn route<B>(shared: &Shared, req: Request<B>) -> Resp
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    match (path.as_str(), &method) {
        (DISCOVERY, &Method::GET) => json_response(StatusCode::OK, &discovery(shared)),
        ("/jwks", &Method::GET) => jwks(shared),
        ("/device/auth", &Method::POST) => oauth(device_authorization(shared, req).await),
        ("/token", &Method::POST) => oauth(token(shared, req).await),
        ("/device", &Method::GET) => approval_page(shared, req.uri().query().unwrap_or("")),
        ("/device", &Method::POST) => approval_post(shared, req).await,
        ("/authorize", _) => error_response(&OAuthError::new(
            "unsupported_response_type",
            "this dev issuer supports only the device authorization grant",
        )),
        (DISCOVERY | "/jwks", _) => method_not_allowed("GET"),
        ("/device/auth" | "/token", _) => method_not_allowed("POST"),
        ("/device", _) => method_not_allowed("GET, POST"),
        _ => error_response(&OAuthError::new("not_found", "no such endpoint").with_status(StatusCode::NOT_FOUND)),
    }
}

fn discovery(shared: &Shared) -> Value {
    let iss = &shared.issuer;
    json!({
        "issuer": iss,
        // Required by OpenID discovery (and openidconnect); it refuses every request.
        "authorization_endpoint": format!("{iss}/authorize"),
        "device_authorization_endpoint": format!("{iss}/device/auth"),
        "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/jwks"),
        "grant_types_supported": [DEVICE_GRANT, "refresh_token"],
        // `none`: the authorization endpoint issues nothing (only the device grant is served).
        "response_types_supported": ["none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": flows::SCOPES,
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "email", "email_verified", "groups", "act"],
    })
}

fn jwks(shared: &Shared) -> Resp {
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let state = shared.state();
    if !state.jwks_available {
        return error_response(
            &OAuthError::new("temporarily_unavailable", "jwks unavailable").with_status(StatusCode::SERVICE_UNAVAILABLE),
        );
    }
    let mut keys = vec![state.key.jwk.clone()];
    keys.extend(state.extra_jwks.iter().cloned());
    json_response(StatusCode::OK, &json!({ "keys": keys }))
}

// -------------------------------------------------------------------------------------------
// Device authorization and token endpoints

/// RFC 8628 §3.1–3.2.
async fn device_authorization<B>(shared: &Shared, req: Request<B>) -> Result<Resp, OAuthError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let form = read_form(req).await?;
    let client_id = check_client(shared, &form)?;
    let opts = &shared.options;
    let scope = granted_scope(form.get("scope").unwrap_or(""));
    let started = shared.flows().start(client_id, &scope, opts.device_code_ttl, opts.poll_interval, Instant::now())?;
    shared.logins.send_modify(|n| *n += 1);
    let verification_uri = format!("{}/device", shared.issuer);
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "device_code": started.device_code,
            "user_code": started.user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": format!("{verification_uri}?user_code={}", started.user_code),
            "expires_in": whole_seconds(opts.device_code_ttl),
            "interval": whole_seconds(started.interval),
        }),
    ))
}

/// RFC 8628 §3.4 (device code) and RFC 6749 §6 (refresh token).
async fn token<B>(shared: &Shared, req: Request<B>) -> Result<Resp, OAuthError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let form = read_form(req).await;
    let counter = match form.as_ref().ok().and_then(|f| f.get("grant_type")) {
        Some(DEVICE_GRANT) => 0,
        Some("refresh_token") => 1,
        _ => 2,
    };
    shared.token_requests[counter].fetch_add(1, Ordering::SeqCst);
    let form = form?;
    let grant_type = form.get("grant_type");
    let client_id = check_client(shared, &form)?;
    let (opts, now) = (&shared.options, Instant::now());
    let issued = match grant_type {
        Some(DEVICE_GRANT) => {
            let code = form.get("device_code").ok_or_else(|| invalid_request("device_code is missing"))?;
            shared.flows().poll(code, client_id, opts.refresh_token_ttl, now)?
        }
        Some("refresh_token") => {
            let token = form.get("refresh_token").ok_or_else(|| invalid_request("refresh_token is missing"))?;
            shared.flows().refresh(token, client_id, opts.refresh_token_ttl, now)?
        }
        Some(_) => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "supported grant types: urn:ietf:params:oauth:grant-type:device_code, refresh_token",
            ))
        }
        None => return Err(invalid_request("grant_type is missing")),
    };
    Ok(token_response(shared, issued))
}

fn token_response(shared: &Shared, issued: Issued) -> Resp {
    let ttl = shared.options.token_ttl;
    let Issued { subject, user, client_id, scope, refresh_token } = issued;
    let id_token = shared.mint(&subject, &user.groups, &client_id, ttl, user.extra);
    let mut access_token = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut access_token[..]);
    let mut resp = json_response(
        StatusCode::OK,
        &json!({
            "access_token": b64(&access_token),
            "token_type": "Bearer",
            "expires_in": whole_seconds(ttl),
            "id_token": id_token,
            "refresh_token": refresh_token,
            "scope": scope,
        }),
    );
    resp.headers_mut().insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// The configured public client, or `invalid_client` (401).
fn check_client<'f>(shared: &Shared, form: &'f Form) -> Result<&'f str, OAuthError> {
    match form.get("client_id") {
        Some(id) if id == shared.options.client_id => Ok(id),
        Some(_) => Err(OAuthError::new("invalid_client", "unknown client").with_status(StatusCode::UNAUTHORIZED)),
        None => Err(OAuthError::new("invalid_client", "client_id is missing").with_status(StatusCode::UNAUTHORIZED)),
    }
}

/// The supported scopes among the requested ones, `openid` always first and always granted.
fn granted_scope(requested: &str) -> String {
    let requested: Vec<&str> = requested.split_whitespace().collect();
    flows::SCOPES
        .iter()
        .filter(|s| **s == "openid" || requested.contains(s))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

// -------------------------------------------------------------------------------------------
// Forms

/// A form or query string: each parameter at most once (RFC 6749 §3.1); empty values count as
/// absent.
struct Form(BTreeMap<String, String>);

impl Form {
    fn parse(raw: &[u8]) -> Result<Self, OAuthError> {
        let text = std::str::from_utf8(raw).map_err(|_| invalid_request("the form is not UTF-8"))?;
        let mut map = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
            if map.contains_key(k.as_ref()) {
                return Err(invalid_request(format!("the parameter {:?} appears more than once", printable(&k))));
            }
            map.insert(k.into_owned(), v.into_owned());
        }
        Ok(Form(map))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

async fn read_form<B>(req: Request<B>) -> Result<Form, OAuthError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || {
        invalid_request(format!("the body is larger than {MAX_FORM_BYTES} bytes")).with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_FORM_BYTES as u64) {
        return Err(too_large());
    }
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(FORM_TYPE));
    if !is_form {
        return Err(invalid_request(format!("the body must be {FORM_TYPE}")));
    }
    let body = tokio::time::timeout(BODY_TIMEOUT, Limited::new(req.into_body(), MAX_FORM_BYTES).collect()).await;
    let body = match body {
        Err(_) => return Err(invalid_request("the body took too long").with_status(StatusCode::REQUEST_TIMEOUT)),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Ok(Err(_)) => return Err(invalid_request("the body could not be read")),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    Form::parse(&body)
}

fn invalid_request(description: impl Into<String>) -> OAuthError {
    OAuthError::new("invalid_request", description)
}

/// For messages: at most 64 characters, control characters replaced.
fn printable(s: &str) -> String {
    s.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect()
}

// -------------------------------------------------------------------------------------------
// Responses

fn oauth(result: Result<Resp, OAuthError>) -> Resp {
    result.unwrap_or_else(|e| error_response(&e))
}

fn json_response(status: StatusCode, body: &Value) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn error_response(e: &OAuthError) -> Resp {
    json_response(e.status, &json!({"error": e.error, "error_description": e.description}))
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut resp = error_response(
        &invalid_request(format!("use {allow}")).with_status(StatusCode::METHOD_NOT_ALLOWED),
    );
    resp.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

// -------------------------------------------------------------------------------------------
// The approval page

/// `GET /device[?user_code=…]`.
fn approval_page(shared: &Shared, query: &str) -> Resp {
    if !shared.options.approval_page {
        return page_disabled();
    }
    if query.len() > MAX_FORM_BYTES {
        return html(StatusCode::URI_TOO_LONG, "Bad request", "<p>The address is too long.</p>");
    }
    let form = match Form::parse(query.as_bytes()) {
        Ok(f) => f,
        Err(e) => return html(StatusCode::BAD_REQUEST, "Bad request", &format!("<p>{}</p>", escape(&e.description))),
    };
    let Some(code) = form.get("user_code") else {
        return html(StatusCode::OK, "Sign in a device", &format!("<p>Enter the code your terminal shows.</p>{}", code_form()));
    };
    let (view, users) = {
        let mut flows = shared.flows();
        (flows.page_view(code, Instant::now()), flows.users())
    };
    match view {
        Err(e) => approval_error(&e),
        Ok(PageView::Expired) => approval_error(&ApprovalError::Expired(String::new())),
        Ok(PageView::Decided) => approval_error(&ApprovalError::AlreadyDecided(String::new())),
        Ok(PageView::Pending { user_code, client_id, scope, xsrf }) => {
            let mut body = format!(
                "<p><strong>{}</strong> asks to sign in with the code</p><p class=\"code\">{}</p>\
                 <p>Go on only if your terminal shows this code. Scopes: {}.</p>\
                 <form method=\"post\" action=\"/device\">\
                 <input type=\"hidden\" name=\"user_code\" value=\"{}\">\
                 <input type=\"hidden\" name=\"xsrf\" value=\"{}\">",
                escape(&client_id),
                escape(&user_code),
                escape(&scope),
                escape(&user_code),
                escape(&xsrf),
            );
            if users.is_empty() {
                body.push_str("<p>No users are registered with this dev issuer: the login can only be denied.</p>");
            } else {
                body.push_str("<p>Sign in as:</p><p>");
                for u in &users {
                    let _ = write!(body, "<button type=\"submit\" name=\"subject\" value=\"{0}\">{0}</button>", escape(u));
                }
                body.push_str("</p>");
            }
            body.push_str("<p><button type=\"submit\" name=\"action\" value=\"deny\">Deny</button></p></form>");
            html(StatusCode::OK, "Approve the sign-in", &body)
        }
    }
}

/// `POST /device`: `user_code`, `xsrf` and either `subject` (approve) or `action=deny`.
async fn approval_post<B>(shared: &Shared, req: Request<B>) -> Resp
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !shared.options.approval_page {
        return page_disabled();
    }
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(e) => return html(e.status, "Bad request", &format!("<p>{}</p>", escape(&e.description))),
    };
    let Some(code) = form.get("user_code") else {
        return html(StatusCode::BAD_REQUEST, "Bad request", &format!("<p>The code is missing.</p>{}", code_form()));
    };
    let action = form.get("action").unwrap_or("approve");
    let subject = form.get("subject");
    let now = Instant::now();
    let result = {
        let mut flows = shared.flows();
        match flows.xsrf_matches(code, form.get("xsrf").unwrap_or("")) {
            Err(e) => Err(e),
            Ok(false) => {
                return html(
                    StatusCode::FORBIDDEN,
                    "Stale form",
                    "<p>This form is stale or was not sent from this page. Open the sign-in link again.</p>",
                )
            }
            Ok(true) => match (action, subject) {
                ("deny", _) => flows.deny(code, now),
                ("approve", Some(subject)) => flows.approve(code, subject, now),
                ("approve", None) => {
                    return html(StatusCode::BAD_REQUEST, "Bad request", "<p>Choose a user to sign in as.</p>")
                }
                _ => return html(StatusCode::BAD_REQUEST, "Bad request", "<p>Unknown action.</p>"),
            },
        }
    };
    match result {
        Err(e) => approval_error(&e),
        Ok(()) if action == "deny" => html(StatusCode::OK, "Sign-in denied", "<p>The sign-in was denied. You can close this page.</p>"),
        Ok(()) => html(
            StatusCode::OK,
            "Signed in",
            &format!(
                "<p>Signed in as <strong>{}</strong>. Return to your terminal; you can close this page.</p>",
                escape(subject.unwrap_or(""))
            ),
        ),
    }
}

fn approval_error(e: &ApprovalError) -> Resp {
    let (status, text) = match e {
        ApprovalError::UnknownCode(_) => (StatusCode::NOT_FOUND, "No sign-in is waiting for this code. Check it and try again."),
        ApprovalError::Expired(_) => (StatusCode::GONE, "This code has expired. Start the login in your terminal again."),
        ApprovalError::AlreadyDecided(_) => (StatusCode::CONFLICT, "This code was already approved or denied."),
        ApprovalError::UnknownSubject(_) => (StatusCode::BAD_REQUEST, "There is no such user."),
    };
    let form = if matches!(e, ApprovalError::UnknownCode(_)) { code_form() } else { String::new() };
    html(status, "Cannot sign in", &format!("<p>{text}</p>{form}"))
}

fn page_disabled() -> Resp {
    html(
        StatusCode::FORBIDDEN,
        "Approval page turned off",
        "<p>Logins at this dev issuer are approved by the program that runs it, not on this page.</p>",
    )
}

fn code_form() -> String {
    "<form method=\"get\" action=\"/device\"><label>Code <input name=\"user_code\" autocomplete=\"off\" autofocus></label> \
     <button type=\"submit\">Continue</button></form>"
        .to_owned()
}

fn html(status: StatusCode, title: &str, body: &str) -> Resp {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} — hoop-kube dev issuer</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}}\
         .code{{font-family:monospace;font-size:1.6rem;letter-spacing:.15em}}\
         button{{margin:0 .4rem .4rem 0;padding:.4rem .9rem}}</style></head>\
         <body><h1>{title}</h1>{body}<hr><p><small>hoop-kube built-in dev identity provider, \
         for demos and tests only.</small></p></body></html>\n",
        title = escape(title),
    );
    let mut resp = Response::new(Full::new(Bytes::from(page)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    headers.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    headers.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer"));
    resp
}

/// HTML-escape text for element content and double- or single-quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
