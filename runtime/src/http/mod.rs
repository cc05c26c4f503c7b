//! The hyper front end: the accept loop with a bound on open connections, HTTP/1.1
//! connections with a header read timeout, request ids, and graceful shutdown. How many
//! requests are handled at once is bounded in [`routes`] (503 with `Retry-After` beyond,
//! never an unbounded queue). Only this module knows hyper.

// Handlers return `Result<Response, Response>`: the error is the reply to send, built once per
// failed request, so boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

pub mod error;
mod management;
pub mod routes;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use crate::model::management_audience;
pub use routes::token_endpoint;

/// A request body the handlers can read: any `http_body::Body` of `Bytes` whose error is a
/// standard error (hyper's `Incoming`, or `Full` in tests that call handlers directly).
pub trait RequestBody:
    http_body::Body<Data = bytes::Bytes, Error: std::error::Error + Send + Sync + 'static>
{
}

impl<B> RequestBody for B where
    B: http_body::Body<Data = bytes::Bytes, Error: std::error::Error + Send + Sync + 'static>
{
}
pub use routes::AppState;

/// Request limits of the HTTP front end.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// How long a request's headers may take to arrive.
    pub header_timeout: Duration,
    /// How long a request's whole body may take to arrive, however it trickles in.
    pub body_timeout: Duration,
    /// Token requests handled at once (counted from when the body is in); more get 503 with
    /// `Retry-After`.
    pub max_in_flight: usize,
    /// Other requests handled at once (JWKS, discovery, health, the Management API): a share
    /// of their own, so a flood of token requests never shuts out verifiers or the operator.
    pub reserved_in_flight: usize,
    /// Connections open at once; further ones wait in the listen backlog until one closes.
    /// Slow clients cost a connection each, never a request slot.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body_bytes: 64 << 10,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_in_flight: 512,
            reserved_in_flight: 64,
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// A bound listener with the state to serve it, and optionally a second listener for the
/// metrics.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
    metrics: Option<TcpListener>,
}

impl Server {
    /// Answers one request as a connection's request is answered, without a socket (`peer` is
    /// the client's address): for the fuzz targets, which drive the handlers directly.
    pub async fn respond<B: RequestBody>(
        &self,
        peer: SocketAddr,
        request: http::Request<B>,
    ) -> http::Response<error::Body> {
        serve_one(&self.state, peer, request).await
    }

    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr, state: AppState) -> std::io::Result<Self> {
        Ok(Self::on(TcpListener::bind(addr).await?, state))
    }

    /// A server on a listener bound already.
    pub fn on(listener: TcpListener, state: AppState) -> Self {
        Server {
            listener,
            state: Arc::new(state),
            metrics: None,
        }
    }

    /// Also serves `GET /metrics` (OpenMetrics text) on `listener`, a separate address so
    /// that it can stay private while the token endpoint is public.
    pub fn with_metrics(mut self, listener: TcpListener) -> Self {
        self.metrics = Some(listener);
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets requests in flight
    /// finish (up to the grace period).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            state,
            metrics,
        } = self;
        let limits = state.limits;
        let metrics_task =
            metrics.map(|listener| tokio::spawn(serve_metrics(listener, state.clone())));
        let connections = Arc::new(Semaphore::new(limits.max_connections));
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            // A connection slot first: at the bound, new connections wait in the backlog.
            let slot = tokio::select! {
                slot = connections.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Usually EMFILE: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            let service = service_fn(move |request: http::Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(serve_one(&state, peer, request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
                drop(slot);
            });
        }
        drop(listener);
        if let Some(task) = metrics_task {
            task.abort();
        }
        if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over with requests still in flight");
        }
    }
}

/// Connections to the metrics listener at once; a scraper needs one.
const METRICS_CONNECTIONS: usize = 8;

/// Serves `GET /metrics` on `listener` until the task is aborted.
async fn serve_metrics(listener: TcpListener, state: Arc<AppState>) {
    let connections = Arc::new(Semaphore::new(METRICS_CONNECTIONS));
    loop {
        let Ok(slot) = connections.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let state = state.clone();
        let header_timeout = state.limits.header_timeout;
        let service = service_fn(move |request: http::Request<Incoming>| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(metrics_answer(&state, &request)) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
}

/// The metrics listener's one endpoint.
fn metrics_answer<B>(state: &AppState, request: &http::Request<B>) -> http::Response<error::Body> {
    use http::{Method, StatusCode};
    let mut response = match (request.uri().path(), request.method()) {
        ("/metrics", &Method::GET | &Method::HEAD) => {
            let mut response =
                http::Response::new(error::full(bytes::Bytes::from(state.metrics.render())));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        ("/metrics", _) => {
            let mut response = http::Response::new(error::full(bytes::Bytes::new()));
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            response
                .headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        _ => {
            let mut response = http::Response::new(error::full(bytes::Bytes::new()));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

async fn serve_one<B: RequestBody>(
    state: &AppState,
    peer: SocketAddr,
    request: http::Request<B>,
) -> http::Response<error::Body> {
    let request_id = crate::secrets::random_alphanumeric(16);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = routes::handle(state, peer, &request_id, request).await;
    let status = response.status();
    if status.is_server_error() {
        tracing::warn!(request_id, %method, path, status = status.as_u16(), "request failed");
    } else {
        tracing::debug!(request_id, %method, path, status = status.as_u16(), "request");
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
