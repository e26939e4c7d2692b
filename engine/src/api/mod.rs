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

pub mod answers;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::app::actions;
use crate::app::manual::{Via, Write, Written};
use crate::config::{RequestStates, SecretValue};
use crate::dispatch::Dispatcher;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::prelude::*;
use crate::tasks::{Call, CallError, Command, CommandTask, Task, WriteTask};

pub use crate::app::actions::ContractEventBody;
pub use crate::app::manual::{LinkBody, MessageBody, ReadBody};
use answers::{
    CandidatesAnswer, ErrorBody, EventAnswer, ExchangesAnswer, Health, ImportAnswer,
    MessagesAnswer, PostedMessage, RecordedExchange, ThreadAnswer,
};

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
    pub status: Option<Arc<crate::status::Status>>,
}

/// The document's frame; the paths and schemas come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Relais API",
        description = "The support system tells Relais when a request is saved or a contract \
            changes; Relais runs the rules (alert dispatch...). Every route but /health and \
            /openapi.json needs `Authorization: Bearer <token>`. Every body, in and out, is \
            JSON in kebab-case; every failure is `{\"error\": \"...\", \"field\": \"...\"}`."
    ),
    components(schemas(ErrorBody))
)]
struct Frame;

/// The routes, each with its documentation: the router and the OpenAPI
/// document both come from here.
struct Routes {
    /// Served without a token.
    public: Router<Arc<ApiState>>,
    /// Served with the token.
    protected: Router<Arc<ApiState>>,
    /// The document.
    document: utoipa::openapi::OpenApi,
}

fn routes() -> Routes {
    let (public, mut document) = OpenApiRouter::with_openapi(Frame::openapi())
        .routes(routes!(health))
        .routes(routes!(openapi))
        .split_for_parts();
    let (protected, mut secured) = OpenApiRouter::new()
        .routes(routes!(metrics))
        .routes(routes!(status))
        .routes(routes!(get_request, save_request))
        .routes(routes!(request_activity))
        .routes(routes!(list_messages, post_message))
        .routes(routes!(list_exchanges, record_exchange))
        .routes(routes!(set_read))
        .routes(routes!(contract_event))
        .routes(routes!(fire_rule))
        .routes(routes!(search_mails))
        .routes(routes!(mail_thread))
        .routes(routes!(mail_attachments))
        .routes(routes!(mail_attachment))
        .routes(routes!(mail_candidates))
        .routes(routes!(link_mail))
        .routes(routes!(list_runs))
        .routes(routes!(show_run))
        .routes(routes!(retry_run))
        .routes(routes!(list_outbox))
        .routes(routes!(retry_outbox))
        .split_for_parts();
    // A directory is bigger than any other body.
    let (import_route, import_doc) = OpenApiRouter::new()
        .routes(routes!(import))
        .split_for_parts();
    let protected = protected.merge(import_route.layer(DefaultBodyLimit::max(64 * 1024 * 1024)));
    secured.merge(import_doc);
    require_token(&mut secured);
    document.merge(secured);
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        utoipa::openapi::security::SecurityScheme::Http(utoipa::openapi::security::Http::new(
            utoipa::openapi::security::HttpAuthScheme::Bearer,
        )),
    );
    Routes {
        public,
        protected,
        document,
    }
}

/// Marks every operation of `document` as needing the token, which it
/// answers with a 401 when missing or wrong.
fn require_token(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::SecurityRequirement;
    for item in document.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            operation.security = Some(vec![SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            )]);
            operation.responses.responses.insert(
                "401".to_string(),
                error_response("Missing or wrong token (`WWW-Authenticate: Bearer`)").into(),
            );
            operation.responses.responses.insert(
                "500".to_string(),
                error_response("Relais failed (the store...); worth a retry").into(),
            );
        }
    }
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// The OpenAPI document of this API, as served at `/openapi.json`.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        routes()
            .document
            .to_pretty_json()
            .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
    })
}

/// The API's router.
pub fn router(state: Arc<ApiState>) -> Router {
    let Routes {
        public, protected, ..
    } = routes();
    let protected = protected.route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    public
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
        let body = ErrorBody {
            error: self.message,
            field: self.field,
        };
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

fn ok(status: StatusCode, body: impl serde::Serialize) -> Answer {
    Ok((status, axum::Json(body)).into_response())
}

/// 201 when the write created its record, 200 otherwise.
fn created_or_ok(created: bool, body: impl serde::Serialize) -> Answer {
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
async fn call<T: Send + 'static>(
    state: &ApiState,
    work: impl FnOnce(&mut Dispatcher<'_>) -> Result<T, CallError> + Send + 'static,
) -> Result<T, ApiError> {
    let (done, answer) = oneshot::channel();
    let (typed, result) = oneshot::channel();
    // The dispatcher's calls answer JSON; this one keeps its type, and
    // sends it aside.
    let task = Task::Call(Call {
        work: Box::new(move |dispatcher| {
            let answer = work(dispatcher)?;
            let _ = typed.send(answer);
            Ok(Value::Null)
        }),
        done,
    });
    let stopped = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Relais is stopping");
    state.tasks.send(task).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())??;
    result.await.map_err(|_| stopped())
}

/// Hands `command` to the dispatcher, which decides it beside the writer
/// (where a slow plugin holds up only what shares a key with it) and
/// commits it; its run's report, once committed.
async fn command_report(
    state: &ApiState,
    command: Command,
) -> Result<crate::dispatch::Report, ApiError> {
    let (done, report) = oneshot::channel();
    let task = Task::Command(Box::new(CommandTask { command, done }));
    let stopped = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Relais is stopping");
    state.tasks.send(task).await.map_err(|_| stopped())?;
    Ok(report.await.map_err(|_| stopped())??)
}

/// Hands `write` to the dispatcher, which checks it, applies it with its
/// run and answers once committed.
async fn write(state: &ApiState, write: Write) -> Result<Written, ApiError> {
    let (done, written) = oneshot::channel();
    let task = Task::Write(Box::new(WriteTask {
        write,
        via: Via::Api,
        done,
    }));
    let stopped = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Relais is stopping");
    state.tasks.send(task).await.map_err(|_| stopped())?;
    Ok(written.await.map_err(|_| stopped())??)
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

/// Liveness; no token needed.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Relais is up", body = Health)))]
async fn health(State(state): State<Arc<ApiState>>) -> Answer {
    let depth = read(&state, |store| store.outbox_depth()).await?;
    ok(
        StatusCode::OK,
        Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            outbox_queued: depth,
        },
    )
}

/// Prometheus metrics: events per trigger and outcome, plugin failures,
/// outbox by status, latency histograms, rule set and reload status.
///
/// The classic text format, or OpenMetrics to a client that asks for it
/// in `Accept`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "The metrics", body = String,
        content_type = "text/plain")))]
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

/// The engine's status: the rule set in use (version, hash, rules),
/// plugins, templates, the last reload and its errors, each source's state.
#[utoipa::path(get, path = "/status", tag = "operations", responses(
    (status = 200, description = "The engine's status", body = crate::status::StatusView),
    (status = 404, description = "No engine serves this API (a test harness)", body = ErrorBody)))]
async fn status(State(state): State<Arc<ApiState>>) -> Answer {
    match &state.status {
        Some(status) => ok(StatusCode::OK, status.snapshot("running")),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no engine status here",
        )),
    }
}

/// This document; no token needed.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
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

fn no_request(number: u64) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no request {number}"))
}

/// A request, in the form `PUT` takes.
#[utoipa::path(get, path = "/requests/{number}", tag = "requests",
    params(("number" = u64, Path, description = "The request number")),
    responses(
        (status = 200, description = "The request", body = crate::directory::RequestSpec),
        (status = 400, description = "The number is not a number", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody)))]
async fn get_request(State(state): State<Arc<ApiState>>, Path(number): Path<u64>) -> Answer {
    let request = read(&state, move |store| store.request(number)).await?;
    match request {
        Some(request) => ok(StatusCode::OK, crate::directory::RequestSpec::from(request)),
        None => Err(no_request(number)),
    }
}

/// A request's whole story, oldest first: its direct messages, its
/// exchanges, the mail it received and the mail sent about it (alerts,
/// notices, replies, reminders, with their delivery).
#[utoipa::path(get, path = "/requests/{number}/activity", tag = "requests",
    params(("number" = u64, Path, description = "The request number")),
    responses(
        (status = 200, description = "The request and its activity", body = crate::app::activity::Activity),
        (status = 400, description = "The number is not a number", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody)))]
async fn request_activity(State(state): State<Arc<ApiState>>, Path(number): Path<u64>) -> Answer {
    let activity = read(&state, move |store| {
        Ok(crate::app::activity::activity(store, number))
    })
    .await??;
    ok(StatusCode::OK, activity)
}

/// Creates or updates a request (the whole request, as `GET` gives it);
/// runs `request-saved` with the change kinds `opened`, `resolved`,
/// `closed`, `state-changed`.
#[utoipa::path(put, path = "/requests/{number}", tag = "requests",
    params(("number" = u64, Path, description = "The request number"), DryRun),
    request_body(content = crate::directory::RequestSpec,
        description = "The request; `number` may be left out (the path gives it)"),
    responses(
        (status = 201, description = "Created: the request was new", body = EventAnswer),
        (status = 200, description = "Saved", body = EventAnswer),
        (status = 400, description = "A field is wrong; nothing written", body = ErrorBody)))]
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
    let command = Command::SaveRequest {
        request: spec,
        states: state.states.clone(),
        dry_run: dry.run,
    };
    let report = command_report(&state, command).await?;
    let answer = actions::saved(number, &report);
    // A dry run created nothing.
    let created = !dry.run
        && answer
            .changes
            .iter()
            .flatten()
            .any(|change| change == "opened");
    created_or_ok(created, answer)
}

/// The request's activity thread: its direct messages, oldest first.
#[utoipa::path(get, path = "/requests/{number}/messages", tag = "messages",
    params(("number" = u64, Path, description = "The request number")),
    responses(
        (status = 200, description = "The messages", body = MessagesAnswer),
        (status = 400, description = "The number is not a number", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody)))]
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
            MessagesAnswer {
                request: number,
                messages,
            },
        ),
        None => Err(no_request(number)),
    }
}

/// Posts a direct message, from a collaborator (staff side) or a contact
/// of the request's customer (customer side); with notify-by-email, the
/// other side is told by mail.
#[utoipa::path(post, path = "/requests/{number}/messages", tag = "messages",
    params(("number" = u64, Path, description = "The request number")),
    request_body = MessageBody,
    responses(
        (status = 201, description = "Posted", body = PostedMessage),
        (status = 400, description = "A field is wrong; nothing written", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 409, description = "The conversation is locked, or messages are off", body = ErrorBody)))]
async fn post_message(
    State(state): State<Arc<ApiState>>,
    Path(number): Path<u64>,
    body: Bytes,
) -> Answer {
    let message: MessageBody = parse(&body)?;
    let answer = write(
        &state,
        Write::PostMessage {
            request: number,
            message,
        },
    )
    .await?;
    ok(StatusCode::CREATED, answer)
}

/// The request's exchanges with its customer, oldest first, and who spoke
/// last.
#[utoipa::path(get, path = "/requests/{number}/exchanges", tag = "exchanges",
    params(("number" = u64, Path, description = "The request number")),
    responses(
        (status = 200, description = "The exchanges", body = ExchangesAnswer),
        (status = 400, description = "The number is not a number", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody)))]
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
            ExchangesAnswer {
                request: number,
                summary,
                exchanges,
            },
        ),
        None => Err(no_request(number)),
    }
}

/// Records an exchange by hand (a call, a visit, a mail sent elsewhere).
#[utoipa::path(post, path = "/requests/{number}/exchanges", tag = "exchanges",
    params(("number" = u64, Path, description = "The request number")),
    request_body = crate::store::NewExchange,
    responses(
        (status = 201, description = "Recorded", body = RecordedExchange),
        (status = 400, description = "A field is wrong; nothing written", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody)))]
async fn record_exchange(
    State(state): State<Arc<ApiState>>,
    Path(number): Path<u64>,
    body: Bytes,
) -> Answer {
    let exchange: crate::store::NewExchange = parse(&body)?;
    let answer = write(
        &state,
        Write::RecordExchange {
            request: number,
            exchange,
        },
    )
    .await?;
    ok(StatusCode::CREATED, answer)
}

/// `?dry-run=true`: the event runs and its effects are applied in a
/// transaction that is rolled back; nothing is written, and it fails
/// where the real one would.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DryRun {
    /// Run the event and roll its effects back: nothing is written, and it
    /// fails where the real one would.
    #[serde(default, rename = "dry-run")]
    #[param(rename = "dry-run")]
    run: bool,
}

/// `POST /rules/{id}/fire`: `{}` or `{"at": "2026-11-23T09:00:00+01:00"}`.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FireBody {
    /// The time the schedule fires at (RFC 3339); now by default.
    #[serde(default)]
    at: Option<String>,
}

/// Runs a `schedule` rule now, as its schedule would (its schedule goes on
/// unchanged).
#[utoipa::path(post, path = "/rules/{id}/fire", tag = "rules",
    params(("id" = String, Path, description = "The rule's id"), DryRun),
    request_body(content = Option<FireBody>, description = "Empty, `{}`, or the time to fire at"),
    responses(
        (status = 200, description = "What the event did", body = EventAnswer),
        (status = 400, description = "Not a scheduled rule, or a bad time", body = ErrorBody),
        (status = 404, description = "No such rule", body = ErrorBody)))]
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

/// Marks a direct message read or unread.
#[utoipa::path(put, path = "/messages/{id}/read", tag = "messages",
    params(("id" = i64, Path, description = "The message's id")),
    request_body = ReadBody,
    responses(
        (status = 200, description = "The message", body = crate::store::MessageRecord),
        (status = 400, description = "A field is wrong", body = ErrorBody),
        (status = 404, description = "No such message", body = ErrorBody)))]
async fn set_read(State(state): State<Arc<ApiState>>, Path(id): Path<i64>, body: Bytes) -> Answer {
    let read: ReadBody = parse(&body)?;
    let answer = write(
        &state,
        Write::MarkRead {
            message: id,
            read: read.read,
        },
    )
    .await?;
    ok(StatusCode::OK, answer)
}

/// Runs `contract-event` for a contract.
#[utoipa::path(post, path = "/contract-events", tag = "contracts",
    params(DryRun),
    request_body = ContractEventBody,
    responses(
        (status = 200, description = "What the event did", body = EventAnswer),
        (status = 400, description = "A field is wrong (an unknown contract...)", body = ErrorBody)))]
async fn contract_event(
    State(state): State<Arc<ApiState>>,
    Query(dry): Query<DryRun>,
    body: Bytes,
) -> Answer {
    let event: ContractEventBody = parse(&body)?;
    let report = command_report(&state, event.command(dry.run)).await?;
    ok(StatusCode::OK, EventAnswer::from(&report))
}

/// Imports directory data (the `relais import` format, YAML or JSON; its
/// JSON Schema is `relais schema import`); all or nothing.
#[utoipa::path(post, path = "/import", tag = "directory",
    request_body(content = String, content_type = "application/yaml",
        description = "The directory, YAML (or JSON, which is YAML too)"),
    responses(
        (status = 200, description = "Imported", body = ImportAnswer),
        (status = 400, description = "Invalid: every problem, `body:line:col`; nothing written", body = ErrorBody)))]
async fn import(State(state): State<Arc<ApiState>>, body: Bytes) -> Answer {
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the body is not UTF-8 text"))?;
    let answer = write(
        &state,
        Write::Import {
            name: "body".to_string(),
            text,
        },
    )
    .await?;
    ok(StatusCode::OK, answer)
}

/// The mail store, searched, newest first, a page at a time: each mail
/// with its ticket (none when it waits to be linked by hand), how it got
/// there, and the run that processed it.
#[utoipa::path(get, path = "/mails", tag = "mails",
    params(crate::app::mails::MailFilters),
    responses(
        (status = 200, description = "One page of mails", body = crate::store::MailPage),
        (status = 400, description = "A filter is wrong", body = ErrorBody)))]
async fn search_mails(
    State(state): State<Arc<ApiState>>,
    Query(filters): Query<crate::app::mails::MailFilters>,
) -> Answer {
    let query = filters.query()?;
    let page = read(&state, move |store| store.search_mails(&query)).await?;
    ok(StatusCode::OK, page)
}

/// The runs, newest first, a page at a time: each event's outcome, and
/// filters by outcome, trigger, rule, plugin and time.
#[utoipa::path(get, path = "/runs", tag = "runs",
    params(crate::app::runs::RunFilters),
    responses(
        (status = 200, description = "One page of runs", body = crate::store::RunPage),
        (status = 400, description = "A filter is wrong", body = ErrorBody)))]
async fn list_runs(
    State(state): State<Arc<ApiState>>,
    Query(filters): Query<crate::app::runs::RunFilters>,
) -> Answer {
    let query = filters.query()?;
    let page = read(&state, move |store| store.find_runs(&query)).await?;
    ok(StatusCode::OK, page)
}

/// One run's whole trace: each rule that matched with its plugin, effects
/// and logs, and why each other rule of its trigger did not match,
/// recomputed against the rule set running now.
#[utoipa::path(get, path = "/runs/{id}", tag = "runs",
    params(("id" = i64, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = crate::store::RunRecord),
        (status = 404, description = "No such run", body = ErrorBody)))]
async fn show_run(State(state): State<Arc<ApiState>>, Path(id): Path<i64>) -> Answer {
    let run = call(&state, move |dispatcher| {
        let Some(run) = dispatcher.store.run(id)? else {
            return Err(CallError::NotFound(format!("no run {id}")));
        };
        Ok(crate::explain::explained(
            &*dispatcher.store,
            dispatcher.rules,
            run,
        )?)
    })
    .await?;
    ok(StatusCode::OK, run)
}

/// Retries a failed run: its event replayed through the rule set running
/// now, as a new run whose trace names the one it retries (`retry-of`);
/// the failed run is kept. A mail keeps the sender authentication it
/// arrived with.
#[utoipa::path(post, path = "/runs/{id}/retry", tag = "runs",
    params(("id" = i64, Path, description = "The failed run's id")),
    responses(
        (status = 200, description = "What the retry did", body = EventAnswer),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run did not fail, or its event is gone", body = ErrorBody)))]
async fn retry_run(State(state): State<Arc<ApiState>>, Path(id): Path<i64>) -> Answer {
    let store = state.store.clone();
    let command = tokio::task::spawn_blocking(move || crate::app::retry::prepare(&store, id))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let report = command_report(&state, command).await?;
    ok(StatusCode::OK, EventAnswer::from(&report))
}

/// The outbound mail's statuses.
const OUTBOX_STATUSES: [&str; 4] = ["queued", "sent", "failed", "suppressed"];

/// Which outbound mail `GET /outbox` lists.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[into_params(parameter_in = Query, rename_all = "kebab-case")]
struct OutboxFilters {
    /// Only mail of this status: `queued`, `sent`, `failed` or
    /// `suppressed` (a notice held back by the per-sender rate limit).
    #[serde(default)]
    status: Option<String>,
    /// How many, newest first (50 by default, at most 500).
    #[serde(default)]
    limit: Option<usize>,
}

/// The outbound mail, newest first: alerts, notices, replies, reminders,
/// with their delivery status, attempts and last error.
#[utoipa::path(get, path = "/outbox", tag = "outbox",
    params(OutboxFilters),
    responses(
        (status = 200, description = "The outbound mail", body = Vec<crate::app::activity::SentMail>),
        (status = 400, description = "A filter is wrong", body = ErrorBody)))]
async fn list_outbox(
    State(state): State<Arc<ApiState>>,
    Query(filters): Query<OutboxFilters>,
) -> Answer {
    let status = filters.status.filter(|s| !s.trim().is_empty());
    if let Some(status) = &status
        && !OUTBOX_STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::field(
            "status",
            format!("`{status}` is none of {}", OUTBOX_STATUSES.join(", ")),
        ));
    }
    let limit = crate::app::mails::page_size(filters.limit)?;
    let mails = read(&state, move |store| store.outbox(status.as_deref(), limit)).await?;
    let mails: Vec<crate::app::activity::SentMail> = mails.into_iter().map(Into::into).collect();
    ok(StatusCode::OK, mails)
}

/// Queues a failed outbound mail again; the sender tries it at once (the
/// dispatcher wakes it after each call).
#[utoipa::path(post, path = "/outbox/{id}/retry", tag = "outbox",
    params(("id" = i64, Path, description = "The mail's outbox id")),
    responses(
        (status = 200, description = "Queued again", body = crate::app::activity::SentMail),
        (status = 404, description = "No such outbound mail", body = ErrorBody),
        (status = 409, description = "The mail did not fail", body = ErrorBody)))]
async fn retry_outbox(State(state): State<Arc<ApiState>>, Path(id): Path<i64>) -> Answer {
    let mail = call(&state, move |dispatcher| {
        let Some(mail) = dispatcher.store.outbox_mail(id)? else {
            return Err(CallError::NotFound(format!("no outbound mail {id}")));
        };
        if mail.status != "failed" {
            return Err(CallError::Conflict(format!(
                "outbound mail {id} is {}: only a failed mail is queued again",
                mail.status
            )));
        }
        dispatcher.store.retry_mail(Some(id))?;
        let queued = dispatcher.store.outbox_mail(id)?;
        queued
            .map(crate::app::activity::SentMail::from)
            .ok_or_else(|| CallError::NotFound(format!("no outbound mail {id}")))
    })
    .await?;
    ok(StatusCode::OK, mail)
}

/// A stored mail's attachments: place, file name, the type the sender
/// gave, size.
#[utoipa::path(get, path = "/mails/{message_id}/attachments", tag = "mails",
    params(("message_id" = String, Path, description = "The mail's Message-ID, with or without `<>`")),
    responses(
        (status = 200, description = "Its attachments", body = Vec<crate::store::StoredAttachment>),
        (status = 404, description = "No such stored mail", body = ErrorBody)))]
async fn mail_attachments(
    State(state): State<Arc<ApiState>>,
    Path(message_id): Path<String>,
) -> Answer {
    let message_id = crate::sources::mail::typed_id(&message_id);
    let asked = message_id.clone();
    match read(&state, move |store| store.attachments(&asked)).await? {
        Some(listed) => ok(StatusCode::OK, listed),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no stored mail <{message_id}>"),
        )),
    }
}

/// One attachment's content, as a download: served as
/// `application/octet-stream` with `Content-Disposition: attachment`
/// whatever type the sender claimed, so that a browser never renders it
/// (an HTML or SVG attachment runs nothing).
#[utoipa::path(get, path = "/mails/{message_id}/attachments/{n}", tag = "mails",
    params(
        ("message_id" = String, Path, description = "The mail's Message-ID, with or without `<>`"),
        ("n" = u32, Path, description = "The attachment's place, from 0")),
    responses(
        (status = 200, description = "The attachment's bytes", body = Vec<u8>,
            content_type = "application/octet-stream"),
        (status = 404, description = "No such mail or attachment", body = ErrorBody)))]
async fn mail_attachment(
    State(state): State<Arc<ApiState>>,
    Path((message_id, n)): Path<(String, u32)>,
) -> Answer {
    let message_id = crate::sources::mail::typed_id(&message_id);
    let asked = message_id.clone();
    let Some((attachment, content)) =
        read(&state, move |store| store.attachment(&asked, n)).await?
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("mail <{message_id}> has no attachment {n}"),
        ));
    };
    let name = attachment
        .filename
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| format!("attachment-{n}"));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, content_disposition(&name)),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox".to_string(),
            ),
        ],
        content,
    )
        .into_response())
}

/// `attachment` with the file name twice (RFC 6266): a plain ASCII one for
/// old clients, and the name itself, percent-encoded in UTF-8.
fn content_disposition(name: &str) -> String {
    let plain: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}")
}

/// The thread of a mail as a tree: the mails it answers, its replies and
/// receipts, received and sent, across accounts.
#[utoipa::path(get, path = "/mails/{message_id}/thread", tag = "mails",
    params(("message_id" = String, Path, description = "The mail's Message-ID, with or without `<>`")),
    responses(
        (status = 200, description = "The thread", body = ThreadAnswer),
        (status = 404, description = "No stored mail in that thread", body = ErrorBody)))]
async fn mail_thread(State(state): State<Arc<ApiState>>, Path(message_id): Path<String>) -> Answer {
    let message_id = crate::sources::mail::typed_id(&message_id);
    let asked = message_id.clone();
    let tree = read(&state, move |store| store.thread_tree(&asked)).await?;
    match tree {
        Some(thread) => ok(StatusCode::OK, ThreadAnswer { message_id, thread }),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no stored mail in the thread of <{message_id}>"),
        )),
    }
}

/// Open tickets a stored mail could go to: those its sender requested,
/// then those of the sender's customer.
#[utoipa::path(get, path = "/mails/{message_id}/candidates", tag = "mails",
    params(("message_id" = String, Path, description = "The mail's Message-ID, with or without `<>`")),
    responses(
        (status = 200, description = "The candidates", body = CandidatesAnswer),
        (status = 404, description = "No such stored mail", body = ErrorBody)))]
async fn mail_candidates(
    State(state): State<Arc<ApiState>>,
    Path(message_id): Path<String>,
) -> Answer {
    let closed = state.states.closed_states.clone();
    let message_id = crate::sources::mail::typed_id(&message_id);
    let asked = message_id.clone();
    let found = read(&state, move |store| {
        crate::app::links::candidates(
            store,
            &asked,
            &closed,
            &relais_sdk::SubjectPrefixes::default(),
        )
    })
    .await?;
    match found {
        Some(candidates) => ok(
            StatusCode::OK,
            CandidatesAnswer {
                message_id,
                candidates,
            },
        ),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no stored mail <{message_id}>"),
        )),
    }
}

/// Links a stored mail to a ticket by hand, or to a new ticket made from
/// it.
#[utoipa::path(put, path = "/mails/{message_id}/ticket", tag = "mails",
    params(("message_id" = String, Path, description = "The mail's Message-ID, with or without `<>`")),
    request_body = LinkBody,
    responses(
        (status = 201, description = "Linked to a ticket made for it", body = crate::app::links::Linked),
        (status = 200, description = "Linked (or already there)", body = crate::app::links::Linked),
        (status = 400, description = "A field is wrong", body = ErrorBody),
        (status = 404, description = "No such mail or ticket", body = ErrorBody),
        (status = 409, description = "The mail is on another ticket (send `move`)", body = ErrorBody)))]
async fn link_mail(
    State(state): State<Arc<ApiState>>,
    Path(message_id): Path<String>,
    body: Bytes,
) -> Answer {
    let link: LinkBody = parse(&body)?;
    let message_id = crate::sources::mail::typed_id(&message_id);
    let target = link.target()?;
    let answer = write(
        &state,
        Write::LinkMail {
            message_id,
            target,
            replace: link.replace,
        },
    )
    .await?;
    let created = matches!(&answer, Written::Linked(linked) if linked.created);
    created_or_ok(created, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_json_and_names_every_schema_it_refers_to() {
        let doc: Value = serde_json::from_str(document()).expect("the OpenAPI document is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let text = document();
        for reference in text.split("\"#/components/schemas/").skip(1) {
            let name = &reference[..reference.find('"').expect("a closing quote")];
            assert!(
                schemas.contains_key(name),
                "{name} is referred to, not defined"
            );
        }
        // Every protected operation says it needs the token.
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("an item") {
                let public = matches!(path.as_str(), "/health" | "/openapi.json");
                assert_eq!(
                    operation.get("security").is_none(),
                    public,
                    "{method} {path}: the token"
                );
            }
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
