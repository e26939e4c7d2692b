//! The HTTP API (axum): the support system tells Relais when a request is
//! saved or a contract changes, reads and writes a request's direct
//! messages, imports directory data; operators read health and metrics.
//!
//! Every route but `/health` needs `Authorization: Bearer <token>` (the
//! token of `http.token` in `relais.yaml`). Writes go to the dispatcher
//! thread, the store's one writer, and are answered once committed; reads
//! use a connection of their own. Bodies are JSON; errors are
//! `{"error": "...", "field": "..."}` with 400 (bad input, `field` naming
//! what), 401 (token), 404, 409 (a locked conversation...) or 500.
//! The OpenAPI document is served at `/openapi.json`.

pub mod actions;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{RequestStates, SecretValue};
use crate::daemon::dispatcher::{Call, CallError, Task};
use crate::dispatch::Dispatcher;
use crate::metrics::Metrics;
use crate::store::Store;

pub use actions::{ContractEventBody, LinkBody, MessageBody, ReadBody};

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What every handler shares.
#[derive(Debug)]
pub struct ApiState {
    /// Where writes go.
    pub tasks: mpsc::Sender<Task>,
    /// A connection for reads.
    pub store: Store,
    /// The bearer token.
    pub token: SecretValue,
    /// The engine's metrics.
    pub metrics: Arc<Metrics>,
    /// Which states count as resolved and closed.
    pub states: RequestStates,
    /// The engine's status (`GET /status`), when a daemon serves the API.
    pub status: Option<Arc<crate::daemon::status::Status>>,
}

/// The routes: `(method, path)`, as the OpenAPI document lists them.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/status"),
    ("get", "/requests/{number}"),
    ("put", "/requests/{number}"),
    ("get", "/requests/{number}/messages"),
    ("post", "/requests/{number}/messages"),
    ("get", "/requests/{number}/exchanges"),
    ("post", "/requests/{number}/exchanges"),
    ("put", "/messages/{id}/read"),
    ("post", "/contract-events"),
    ("post", "/rules/{id}/fire"),
    ("post", "/import"),
    ("get", "/mails/{message_id}/thread"),
    ("get", "/mails/{message_id}/candidates"),
    ("put", "/mails/{message_id}/ticket"),
];

/// The API's router.
pub fn router(state: Arc<ApiState>) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/requests/{number}", get(get_request).put(save_request))
        .route(
            "/requests/{number}/messages",
            get(list_messages).post(post_message),
        )
        .route(
            "/requests/{number}/exchanges",
            get(list_exchanges).post(record_exchange),
        )
        .route("/messages/{id}/read", put(set_read))
        .route("/contract-events", post(contract_event))
        .route("/rules/{id}/fire", post(fire_rule))
        .route("/mails/{message_id}/thread", get(mail_thread))
        .route("/mails/{message_id}/candidates", get(mail_candidates))
        .route("/mails/{message_id}/ticket", put(link_mail))
        .route(
            "/import",
            post(import).layer(DefaultBodyLimit::max(64 * 1024 * 1024)),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/health", get(health))
        // The API's description is public: a client is written from it
        // before it has a token.
        .route("/openapi.json", get(openapi))
        .merge(protected)
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(middleware::map_response(json_errors))
        .with_state(state)
}

/// 404 for a path no route serves, as JSON like every other error.
async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {method} {} (see /openapi.json)", uri.path()),
    )
}

/// 405 for a method a path does not take.
async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method} (see /openapi.json)", uri.path()),
    )
}

/// Every failure answers JSON: the rejections of axum's extractors (a path
/// that does not parse, a body that is not JSON) come as plain text, and
/// are wrapped as `{"error": "..."}`.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text.trim().to_string()
    };
    let mut answer = (status, axum::Json(json!({ "error": message }))).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// Serves the API on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    header_timeout: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = router(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %error, "cannot accept an HTTP connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        // A client that opens a connection and sends its headers slowly,
        // or never, must not hold a connection for ever.
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(peer = %peer, error = %error, "HTTP connection ended");
            }
        });
    }
    // In-flight requests finish; idle connections close.
    graceful.shutdown().await;
    Ok(())
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }

    fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: Some(field.to_string()),
        }
    }
}

impl From<CallError> for ApiError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Invalid { field, message } => ApiError {
                status: StatusCode::BAD_REQUEST,
                message,
                field,
            },
            CallError::NotFound(message) => ApiError::new(StatusCode::NOT_FOUND, message),
            CallError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, message),
            CallError::Internal(message) => {
                tracing::error!(error = %message, "API call failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
            }
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        CallError::from(error).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(field) = self.field {
            body["field"] = Value::String(field);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

type Answer = Result<Response, ApiError>;

fn ok(status: StatusCode, body: Value) -> Answer {
    Ok((status, axum::Json(body)).into_response())
}

/// 201 when the write created its record, 200 otherwise.
fn created_or_ok(created: bool, body: Value) -> Answer {
    ok(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        body,
    )
}

/// Requires the bearer token; compares in constant time.
async fn authorize(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(token) if same(token.as_bytes(), state.token.expose().as_bytes()) => {
            next.run(request).await
        }
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "wrong token").into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing token: send `Authorization: Bearer <token>`",
        )
        .into_response(),
    }
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Runs `work` on the dispatcher thread; answers once it committed.
async fn call(
    state: &ApiState,
    work: impl FnOnce(&mut Dispatcher<'_>) -> Result<Value, CallError> + Send + 'static,
) -> Result<Value, ApiError> {
    let (done, answer) = oneshot::channel();
    let task = Task::Call(Call {
        work: Box::new(work),
        done,
    });
    let stopped = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Relais is stopping");
    state.tasks.send(task).await.map_err(|_| stopped())?;
    Ok(answer.await.map_err(|_| stopped())??)
}

/// Parses a JSON body; a bad one is a 400 naming the field at fault.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed: T = serde_path_to_error::deserialize(&mut deserializer).map_err(field_error)?;
    deserializer.end().map_err(|error| {
        ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {error}"))
    })?;
    Ok(parsed)
}

/// Reads a JSON value already parsed into `T`, the same way.
fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(field_error)
}

fn field_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {inner}"))
    } else if path == "." {
        ApiError::new(StatusCode::BAD_REQUEST, inner.to_string())
    } else {
        ApiError::field(&path, inner.to_string())
    }
}

async fn health(State(state): State<Arc<ApiState>>) -> Answer {
    let depth = read(&state, |store| store.outbox_depth()).await?;
    ok(
        StatusCode::OK,
        json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION"), "outbox-queued": depth }),
    )
}

async fn metrics(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Answer {
    let metrics = state.metrics.clone();
    let text = read(&state, move |store| metrics.render(store)).await?;
    // OpenMetrics to who asks for it (Prometheus), the classic text format
    // to everyone else (curl, promtool).
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|accept| accept.contains("application/openmetrics-text"));
    let (content_type, text) = if openmetrics {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            text,
        )
    } else {
        (
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::classic(&text),
        )
    };
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

async fn status(State(state): State<Arc<ApiState>>) -> Answer {
    match &state.status {
        Some(status) => {
            let mut snapshot = status.snapshot();
            snapshot["state"] = json!("running");
            ok(StatusCode::OK, snapshot)
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no engine status here",
        )),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Runs a read on the read connection, off the async workers.
async fn read<T: Send + 'static>(
    state: &ApiState,
    query: impl FnOnce(&Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || query(&store))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

async fn get_request(State(state): State<Arc<ApiState>>, Path(number): Path<u64>) -> Answer {
    let request = read(&state, move |store| store.request(number)).await?;
    match request {
        Some(request) => ok(StatusCode::OK, json!(request)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no request {number}"),
        )),
    }
}

async fn save_request(
    State(state): State<Arc<ApiState>>,
    Path(number): Path<u64>,
    Query(dry): Query<DryRun>,
    body: Bytes,
) -> Answer {
    let mut value: Value = parse(&body)?;
    let Some(object) = value.as_object_mut() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object (a request)",
        ));
    };
    match object.get("number") {
        None => {
            object.insert("number".to_string(), json!(number));
        }
        Some(given) if given.as_u64() == Some(number) => {}
        Some(given) => {
            return Err(ApiError::field(
                "number",
                format!("{given} differs from the number in the path ({number})"),
            ));
        }
    }
    let spec: crate::directory::RequestSpec = from_value(value)?;
    let states = state.states.clone();
    let metrics = state.metrics.clone();
    let answer = call(&state, move |dispatcher| {
        actions::save_request(dispatcher, &spec, &states, &metrics, dry.run)
    })
    .await?;
    // A dry run created nothing.
    let created = !dry.run
        && answer["changes"]
            .as_array()
            .is_some_and(|changes| changes.iter().any(|c| c == "opened"));
    created_or_ok(created, answer)
}

async fn list_messages(State(state): State<Arc<ApiState>>, Path(number): Path<u64>) -> Answer {
    let found = read(&state, move |store| {
        Ok(match store.request(number)? {
            Some(_) => Some(store.messages(number)?),
            None => None,
        })
    })
    .await?;
    match found {
        Some(messages) => ok(
            StatusCode::OK,
            json!({ "request": number, "messages": messages }),
        ),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no request {number}"),
        )),
    }
}

async fn post_message(
    State(state): State<Arc<ApiState>>,
    Path(number): Path<u64>,
    body: Bytes,
) -> Answer {
    let message: MessageBody = parse(&body)?;
    let answer = call(&state, move |dispatcher| {
        actions::post_message(dispatcher, number, &message)
    })
    .await?;
    ok(StatusCode::CREATED, answer)
}

async fn list_exchanges(State(state): State<Arc<ApiState>>, Path(number): Path<u64>) -> Answer {
    let found = read(&state, move |store| {
        Ok(match store.request(number)? {
            Some(_) => Some((store.exchanges(number)?, store.exchange_summary(number)?)),
            None => None,
        })
    })
    .await?;
    match found {
        Some((exchanges, summary)) => ok(
            StatusCode::OK,
            json!({ "request": number, "summary": summary, "exchanges": exchanges }),
        ),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no request {number}"),
        )),
    }
}

async fn record_exchange(
    State(state): State<Arc<ApiState>>,
    Path(number): Path<u64>,
    body: Bytes,
) -> Answer {
    let exchange: crate::store::NewExchange = parse(&body)?;
    let answer = call(&state, move |dispatcher| {
        actions::record_exchange(dispatcher, number, &exchange)
    })
    .await?;
    ok(StatusCode::CREATED, answer)
}

/// `?dry-run=true`: the event runs and its effects are applied in a
/// transaction that is rolled back; nothing is written, and it fails
/// where the real one would.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DryRun {
    #[serde(default, rename = "dry-run")]
    run: bool,
}

/// `POST /rules/{id}/fire`: `{}` or `{"at": "2026-11-23T09:00:00+01:00"}`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FireBody {
    #[serde(default)]
    at: Option<String>,
}

async fn fire_rule(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(dry): Query<DryRun>,
    body: Bytes,
) -> Answer {
    let fire: FireBody = if body.iter().all(u8::is_ascii_whitespace) {
        FireBody::default()
    } else {
        parse(&body)?
    };
    let metrics = state.metrics.clone();
    let answer = call(&state, move |dispatcher| {
        actions::fire_schedule(dispatcher, &id, fire.at.as_deref(), &metrics, dry.run)
    })
    .await?;
    ok(StatusCode::OK, answer)
}

async fn set_read(State(state): State<Arc<ApiState>>, Path(id): Path<i64>, body: Bytes) -> Answer {
    let read: ReadBody = parse(&body)?;
    let answer = call(&state, move |dispatcher| {
        match dispatcher.store.set_message_read(id, read.read)? {
            Some(message) => Ok(json!(message)),
            None => Err(CallError::NotFound(format!("no message {id}"))),
        }
    })
    .await?;
    ok(StatusCode::OK, answer)
}

async fn contract_event(
    State(state): State<Arc<ApiState>>,
    Query(dry): Query<DryRun>,
    body: Bytes,
) -> Answer {
    let event: ContractEventBody = parse(&body)?;
    let metrics = state.metrics.clone();
    let answer = call(&state, move |dispatcher| {
        actions::contract_event(dispatcher, &event, &metrics, dry.run)
    })
    .await?;
    ok(StatusCode::OK, answer)
}

async fn import(State(state): State<Arc<ApiState>>, body: Bytes) -> Answer {
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the body is not UTF-8 text"))?;
    let answer = call(&state, move |dispatcher| actions::import(dispatcher, &text)).await?;
    ok(StatusCode::OK, answer)
}

async fn mail_thread(State(state): State<Arc<ApiState>>, Path(message_id): Path<String>) -> Answer {
    let message_id = crate::sources::mail::typed_id(&message_id);
    let asked = message_id.clone();
    let tree = read(&state, move |store| store.thread_tree(&asked)).await?;
    match tree {
        Some(thread) => ok(
            StatusCode::OK,
            json!({ "message-id": message_id, "thread": thread }),
        ),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no stored mail in the thread of <{message_id}>"),
        )),
    }
}

async fn mail_candidates(
    State(state): State<Arc<ApiState>>,
    Path(message_id): Path<String>,
) -> Answer {
    let closed = state.states.closed_states.clone();
    let message_id = crate::sources::mail::typed_id(&message_id);
    let asked = message_id.clone();
    let found = read(&state, move |store| {
        store.candidates(&asked, &closed, &relais_sdk::SubjectPrefixes::default())
    })
    .await?;
    match found {
        Some(candidates) => ok(
            StatusCode::OK,
            json!({ "message-id": message_id, "candidates": candidates }),
        ),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no stored mail <{message_id}>"),
        )),
    }
}

async fn link_mail(
    State(state): State<Arc<ApiState>>,
    Path(message_id): Path<String>,
    body: Bytes,
) -> Answer {
    let link: LinkBody = parse(&body)?;
    let message_id = crate::sources::mail::typed_id(&message_id);
    let answer = call(&state, move |dispatcher| {
        actions::link_mail(dispatcher, &message_id, &link)
    })
    .await?;
    let created = answer["created"].as_bool().unwrap_or(false);
    created_or_ok(created, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_every_route() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("the OpenAPI document is JSON");
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(path, methods)| {
                methods
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.keys())
                    .filter(|m| *m != "parameters")
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        documented.sort();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        routes.sort();
        assert_eq!(documented, routes);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
