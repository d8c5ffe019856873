//! Outgoing `wasi:http` requests (`wasi:http/outgoing-handler.handle`): each passes the
//! container's [`Gate`] before anything leaves, like every other outbound path.
//!
//! - The gate is asked with the request's scheme, host and port (`http` 80, `https`
//!   443 when the URI names none): `--allow-outbound http://HOST:PORT` (or
//!   `https://...`), `--network host`, or a peer on one of the container's networks. A
//!   refusal is `HTTP-request-denied` in the guest and one line on its stderr (the
//!   container's log) naming the rule that would allow it.
//! - An allowed request is sent by wasmtime-wasi-http's own client
//!   ([`wasmtime_wasi_http::default_send_request`]: HTTP/1.1 over tokio and hyper, TLS
//!   by rustls with webpki-roots' certificate authorities), which honours the guest's
//!   `request-options` timeouts (connect, first byte, between bytes).
//! - Where it connects: a host that names a container on the container's networks
//!   connects to that container's address ([`Gate::route_request`], the same decision;
//!   the `Host` header keeps the name); an address literal is used as written; any
//!   other (allowed) name is resolved by the host's resolver.

use super::HasWasiP2;
use super::network::Gate;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::p2::bindings::http::outgoing_handler::Host as _;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks, WasiHttpView};

/// The `wasi:http` version wasmtime-wasi-http links.
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// Links `wasi:http` (wasmtime-wasi-http's types and outgoing handler) with the
/// handler's `handle` asking the gate first: a refused request fails at once with
/// `HTTP-request-denied`, before its body is written (a guest writing the body first,
/// as wstd's client does, would otherwise see its body stream closed instead). The
/// hooks ([`Outgoing`]) ask again before sending: nothing leaves unasked.
///
/// # Errors
/// wasmtime's error if the definitions clash with ones already in the linker.
pub fn add_to_linker<T: HasWasiP2 + WasiHttpView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    let linked = link(linker);
    linker.allow_shadowing(false);
    linked
}

type Handled = Result<Resource<HostFutureIncomingResponse>, ErrorCode>;

fn link<T: HasWasiP2 + WasiHttpView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut handler = linker.instance(OUTGOING_HANDLER)?;
    handler.func_wrap(
        "handle",
        |mut store: StoreContextMut<'_, T>,
         (request, options): (
            Resource<HostOutgoingRequest>,
            Option<Resource<RequestOptions>>,
        )|
         -> wasmtime::Result<(Handled,)> {
            let gate = store.data_mut().p2().gate().clone();
            let mut http = store.data_mut().http();
            let allowed = allowed(&gate, http.table.get(&request)?);
            if !allowed {
                // The guest handed both over.
                http.table.delete(request)?;
                if let Some(options) = options {
                    http.table.delete(options)?;
                }
                return Ok((Err(ErrorCode::HttpRequestDenied),));
            }
            match http.handle(request, options) {
                Ok(response) => Ok((Ok(response),)),
                Err(e) => Ok((Err(e.downcast()?),)),
            }
        },
    )?;
    Ok(())
}

/// Whether the gate allows `request`. One it cannot place (no authority, a scheme other
/// than http or https) passes here: wasmtime-wasi-http refuses it with its own error.
fn allowed(gate: &Gate, request: &HostOutgoingRequest) -> bool {
    let scheme = match &request.scheme {
        // wasmtime-wasi-http's default scheme (`WasiHttpHooks::default_scheme`).
        None | Some(Scheme::Https) => "https",
        Some(Scheme::Http) => "http",
        Some(Scheme::Other(_)) => return true,
    };
    let Some(authority) = request.authority.as_deref() else {
        return true;
    };
    match format!("{scheme}://{authority}/").parse::<http::Uri>() {
        Ok(uri) => match destination(&uri) {
            Ok((scheme, host, port)) => gate.allows_request(&scheme, &host, port),
            Err(_) => true,
        },
        Err(_) => true,
    }
}

/// The future a request's send runs as.
type Sending = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = Result<(), Error>> + Send>,
            )>,
        > + Send,
>;

/// Whether the request's guest is being stopped (its `--timeout`, or the container's
/// end): an outgoing request it waits on then ends at once, so that the guest, blocked
/// in the host until then, returns to its code and meets the interruption.
pub type Stop = Arc<dyn Fn() -> bool + Send + Sync>;

/// How often a request in flight looks at its [`Stop`].
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The `wasi:http` hooks of one store: outgoing requests through the gate.
pub struct Outgoing {
    gate: Arc<Gate>,
    stop: Option<Stop>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl Outgoing {
    /// Requests decided, and peers found, by the container's `gate`.
    pub fn new(gate: Arc<Gate>) -> Self {
        Self { gate, stop: None }
    }

    /// Ends each request in flight (its connect, its wait for the response, its
    /// response body) with an error as soon as `stop` says so.
    #[must_use]
    pub fn until(mut self, stop: Stop) -> Self {
        self.stop = Some(stop);
        self
    }
}

/// The error a stopped request ends with.
fn stopped() -> Error {
    Error::InternalError(Some(
        "the request was stopped: its --timeout passed, or the container is stopping".to_owned(),
    ))
}

/// `work`, unless `stop` says so first.
async fn unless_stopped<T>(
    stop: Option<Stop>,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let Some(stop) = stop else {
        return work.await;
    };
    let watch = async move {
        while !stop() {
            tokio::time::sleep(STOP_POLL).await;
        }
    };
    let (work, watch) = (std::pin::pin!(work), std::pin::pin!(watch));
    match futures_util::future::select(work, watch).await {
        futures_util::future::Either::Left((done, _)) => done,
        futures_util::future::Either::Right(((), _)) => Err(stopped()),
    }
}

/// Where a request goes: its scheme, its host as written in the URI (an IPv6 literal
/// in brackets) and its port.
fn destination(uri: &http::Uri) -> Result<(String, String, u16), Error> {
    let scheme = uri.scheme_str().ok_or(Error::HttpRequestUriInvalid)?;
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or(Error::HttpRequestUriInvalid)?;
    let port = match (uri.port_u16(), scheme) {
        (Some(port), _) => port,
        (None, "http") => 80,
        (None, "https") => 443,
        (None, _) => return Err(Error::HttpRequestUriInvalid),
    };
    Ok((scheme.to_ascii_lowercase(), host.to_owned(), port))
}

/// `uri` with its authority replaced by `addr` (the path and query kept).
fn to_address(uri: &http::Uri, addr: SocketAddr) -> Result<http::Uri, Error> {
    let mut parts = uri.clone().into_parts();
    parts.authority = Some(
        addr.to_string()
            .parse()
            .map_err(|_| Error::HttpRequestUriInvalid)?,
    );
    http::Uri::from_parts(parts).map_err(|_| Error::HttpRequestUriInvalid)
}

/// A request that ends before it is sent: the guest gets `error`, and the body, let go
/// of in the future the guest waits on, is drained there.
fn fail<B: Send + 'static>(request: http::Request<B>, error: Error) -> Sending {
    Box::new(async move {
        drop(request);
        Err(error)
    })
}

impl WasiHttpHooks for Outgoing {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sending {
        // From here on, a body the request lets go of early is drained (the guest may
        // still be writing it).
        let mut request = request.map(|body| DrainOnDrop(Some(body)).boxed_unsync());
        let (scheme, host, port) = match destination(request.uri()) {
            Ok(destination) => destination,
            Err(e) => return fail(request, e),
        };
        // Before anything leaves. A host that names peers on the container's networks
        // is reached at a peer's address (the `Host` header keeps the name); any other
        // allowed host is connected to as written.
        let Some(peers) = self.gate.route_request(&scheme, &host, port) else {
            tracing::info!(uri = %request.uri(), "outgoing HTTP request refused by the network gate");
            return fail(request, Error::HttpRequestDenied);
        };
        if let Some(ip) = peers.first() {
            match to_address(request.uri(), SocketAddr::new(*ip, port)) {
                Ok(uri) => *request.uri_mut() = uri,
                Err(e) => return fail(request, e),
            }
        }
        tracing::debug!(uri = %request.uri(), "outgoing HTTP request");
        let stop = self.stop.clone();
        let send = wasmtime_wasi_http::default_send_request(request, options);
        Box::new(async move {
            let (response, io) = unless_stopped(stop.clone(), send).await?;
            let response = match &stop {
                Some(stop) => response.map(|body| {
                    Stoppable {
                        body: body.boxed_unsync(),
                        stop: stop.clone(),
                        tick: Box::pin(tokio::time::sleep(STOP_POLL)),
                    }
                    .boxed_unsync()
                }),
                None => response.map(BodyExt::boxed_unsync),
            };
            let io = unless_stopped(stop, io);
            Ok((
                response,
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

/// A response body that ends with an error when its request is stopped.
struct Stoppable {
    body: WasiBody,
    stop: Stop,
    tick: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for Stoppable {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Error>>> {
        use std::task::Poll;
        if (self.stop)() {
            return Poll::Ready(Some(Err(stopped())));
        }
        if let Poll::Ready(frame) = std::pin::Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        // Waiting for the server: look at the stop again in a moment.
        while self.tick.as_mut().poll(cx).is_ready() {
            if (self.stop)() {
                return Poll::Ready(Some(Err(stopped())));
            }
            let next = tokio::time::Instant::now() + STOP_POLL;
            self.tick.as_mut().reset(next);
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A request body that, when the client lets it go before its end (the server answered
/// and closed the connection without reading it, or the connection failed), reads the
/// rest and throws it away: the guest's writes to it then succeed (into nothing, as if
/// the server had read them) instead of failing with a closed stream. A guest that
/// writes its body before it waits for the response (wstd's client does, even an
/// empty one) otherwise gets `connection reset` from the body in place of the response
/// or of the request's real error, whenever the server is quicker than the guest.
/// The draining ends with the body: the guest finishes or drops it, at the latest when
/// its instance ends.
struct DrainOnDrop(Option<WasiBody>);

impl hyper::body::Body for DrainOnDrop {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Error>>> {
        match self.0.as_mut() {
            Some(body) => std::pin::Pin::new(body).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(hyper::body::Body::is_end_stream)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.0.as_ref().map_or_else(
            || hyper::body::SizeHint::with_exact(0),
            hyper::body::Body::size_hint,
        )
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(mut body) = self.0.take() else {
            return;
        };
        if hyper::body::Body::is_end_stream(&body) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { while let Some(Ok(_)) = body.frame().await {} });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_goes_to_its_scheme_host_and_default_port() {
        let at = |uri: &str| destination(&uri.parse().expect("a URI"));
        let ok = |scheme: &str, host: &str, port| Ok((scheme.to_owned(), host.to_owned(), port));
        assert_eq!(
            at("http://example.com/x").map_err(|e| e.to_string()),
            ok("http", "example.com", 80)
        );
        assert_eq!(
            at("https://example.com/").map_err(|e| e.to_string()),
            ok("https", "example.com", 443)
        );
        assert_eq!(
            at("http://127.0.0.1:8080/").map_err(|e| e.to_string()),
            ok("http", "127.0.0.1", 8080)
        );
        assert_eq!(
            at("http://[::1]:81/").map_err(|e| e.to_string()),
            ok("http", "[::1]", 81)
        );
        assert!(at("/no/authority").is_err());
        assert!(at("ftp://example.com/").is_err());
    }

    #[test]
    fn a_peer_is_reached_at_its_address_with_the_path_kept() {
        let uri: http::Uri = "http://db:8080/a?b=c".parse().expect("a URI");
        let to = to_address(&uri, SocketAddr::from(([10, 89, 0, 3], 8080))).expect("rewritten");
        assert_eq!(to.to_string(), "http://10.89.0.3:8080/a?b=c");
        let v6 = to_address(&uri, "[fd00::1]:80".parse().expect("an address")).expect("v6");
        assert_eq!(v6.to_string(), "http://[fd00::1]:80/a?b=c");
    }
}
