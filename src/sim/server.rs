//! TLS, HTTP and routing for the simulator.
//!
//! Accepts TLS (h2 and http/1.1 by ALPN, optional client certificates), serves each connection
//! with hyper (upgrades enabled for exec/attach/port-forward), then for each request:
//! authenticate → impersonate → parse the path with the shared request-info parser (hostile
//! paths are a 400 `Status`) → route. Every request leaves one line in the request log.

use std::sync::Arc;

use http::{Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use super::request_log::Entry;
use crate::respond::{self, Body};
use super::{authn, discovery, SimState};
use crate::kube::request_info::{self, RequestInfo};
use crate::kube::status::Status;

/// Largest request body accepted, as kube-apiserver's 3 MiB limit.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Per-connection facts.
pub struct ConnInfo {
    /// `h2` or `http/1.1`.
    pub alpn: &'static str,
    /// The verified client certificate's (CN, O).
    pub cert_identity: Option<(String, Vec<String>)>,
}

/// The accept loop: the shared TLS server, with each connection's ALPN and client certificate
/// identity read once.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, state: Arc<SimState>) {
    let connect = |session: &rustls::ServerConnection| ConnInfo {
        alpn: if session.alpn_protocol() == Some(b"h2") { "h2" } else { "http/1.1" },
        cert_identity: session.peer_certificates().and_then(|c| c.first()).and_then(crate::pki::client_identity),
    };
    let handle = move |conn: Arc<ConnInfo>, req| handle(state.clone(), conn, req);
    crate::proxy::serve::serve_tls(listener, tls, crate::proxy::serve::never_stop(), connect, handle).await
}

/// Everything a handler needs about one request.
pub struct Ctx {
    pub state: Arc<SimState>,
    pub info: RequestInfo,
    pub user: authn::User,
    pub entry: Entry,
}

impl Ctx {
    /// The first value of a query parameter.
    pub fn query(&self, key: &str) -> Option<String> {
        request_info::query_first(self.query_str(), key)
    }

    /// The raw query string.
    pub fn query_str(&self) -> Option<&str> {
        self.entry.uri.split_once('?').map(|(_, q)| q)
    }

    /// A boolean query parameter as the apiserver parses it (`true`/`1`).
    pub fn query_bool(&self, key: &str) -> bool {
        matches!(self.query(key).as_deref(), Some("true") | Some("1") | Some("True"))
    }
}

async fn handle(state: Arc<SimState>, conn: Arc<ConnInfo>, req: Request<Incoming>) -> Response<Body> {
    let uri = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| req.uri().path().to_string());
    let mut entry = Entry {
        time: super::objects::now_rfc3339(),
        method: req.method().to_string(),
        uri,
        http: conn.alpn.to_string(),
        user_agent: req.headers().get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string(),
        content_type: req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string(),
        accept: req.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string(),
        accept_encoding: req.headers().get(http::header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string(),
        ..Entry::default()
    };
    let wants = super::encoding::Wants::of(req.headers());
    let resp = match route(&state, &conn, req, &mut entry).await {
        Ok(r) => r,
        Err(s) => respond::status(&s),
    };
    // Watches and upgrades stream (logs are text/plain); complete JSON answers may be re-encoded
    // as the apiserver would.
    let streaming = entry.verb == "watch" || !entry.upgrade.is_empty() || resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    let resp = super::encoding::encode(wants, streaming, resp).await;
    entry.code = resp.status().as_u16();
    state.log.write(&entry);
    resp
}

async fn route(state: &Arc<SimState>, conn: &ConnInfo, req: Request<Incoming>, entry: &mut Entry) -> Result<Response<Body>, Status> {
    let actor = authn::authenticate(req.headers(), conn.cert_identity.as_ref(), &state.identities)?;
    entry.authenticated_user = actor.name.clone();
    let user = authn::impersonate(actor, req.headers(), &state.identities)?;
    entry.user = user.name.clone();
    entry.groups = user.groups.clone();
    entry.extra = user.extra.clone();

    let info = request_info::parse_uri(req.method(), req.uri()).map_err(|e| Status::bad_request(format!("invalid request path: {e}")))?;
    entry.verb = info.verb.clone();
    if !info.is_resource_request {
        return non_resource(state, &req, &info);
    }
    let mut ctx = Ctx { state: state.clone(), info, user, entry: std::mem::take(entry) };
    let result = resource(&mut ctx, req).await;
    *entry = std::mem::take(&mut ctx.entry);
    result
}

async fn resource(ctx: &mut Ctx, req: Request<Incoming>) -> Result<Response<Body>, Status> {
    let info = &ctx.info;
    let Some(def) = super::resources::lookup(&info.api_group, &info.api_version, &info.resource) else {
        return Err(Status::no_route());
    };
    match (def.plural, info.subresource.as_str()) {
        ("pods", "exec") | ("pods", "attach") => return super::exec::handle(ctx, def, req).await,
        ("pods", "portforward") => return super::portforward::handle(ctx, req).await,
        ("pods", "log") => return super::logs::handle(ctx),
        _ => {}
    }
    if !def.is_stored() {
        let headers = req.headers().clone();
        let body = read_body(req).await?;
        return super::reviews::handle(ctx, def, &headers, &body);
    }
    if ctx.info.verb == "watch" {
        return super::watch::handle(ctx, def, req.headers());
    }
    let headers = req.headers().clone();
    let body = read_body(req).await?;
    super::crud::handle(ctx, def, &headers, &body)
}

/// Read a request body, refusing more than [`MAX_BODY`].
pub async fn read_body(req: Request<Incoming>) -> Result<bytes::Bytes, Status> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(Status::too_large(MAX_BODY)),
        Err(e) => Err(Status::bad_request(format!("cannot read the request body: {e}"))),
    }
}

fn non_resource(state: &SimState, req: &Request<Incoming>, info: &RequestInfo) -> Result<Response<Body>, Status> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(Status::method_not_allowed(req.method().as_str()));
    }
    let accept = req.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok());
    let path = info.path.trim_end_matches('/');
    let ok = |v: serde_json::Value| Ok(respond::json(200, &v));
    match path {
        "/version" => ok(discovery::version(&state.config.kube_version)),
        "/api" => {
            let (ct, v) = discovery::api(accept, &state.server_address);
            Ok(respond::json_with(200, &v, &ct))
        }
        "/apis" => {
            let (ct, v) = discovery::apis(accept);
            Ok(respond::json_with(200, &v, &ct))
        }
        "/healthz" | "/livez" | "/readyz" => Ok(respond::text(200, "ok")),
        "/openapi/v3" => ok(discovery::openapi_index()),
        // kubectl ≤ 1.28 reads the v2 document (protobuf only); an empty Document is a valid
        // one, and makes kubectl fall back to client-side checks it can do without schemas.
        "/openapi/v2" => {
            let mut r = respond::text(200, bytes::Bytes::new());
            r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"));
            Ok(r)
        }
        _ => {
            if let Some(key) = path.strip_prefix("/openapi/v3/") {
                return discovery::openapi_doc(key).map(|v| respond::json(200, &v)).ok_or_else(Status::no_route);
            }
            if path == "/api/v1" {
                return discovery::resource_list("", "v1").map(|v| respond::json(200, &v)).ok_or_else(Status::no_route);
            }
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            match parts.as_slice() {
                ["apis", g] => discovery::group(g).map(|v| respond::json(200, &v)).ok_or_else(Status::no_route),
                ["apis", g, v] => discovery::resource_list(g, v).map(|v| respond::json(200, &v)).ok_or_else(Status::no_route),
                _ => Err(Status::no_route()),
            }
        }
    }
}
