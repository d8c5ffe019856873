//! `wasi:http/proxy` services: a component that exports `wasi:http/incoming-handler`
//! runs as an HTTP server on its published ports, as `wasmtime serve` runs one. hyper
//! serves HTTP/1.1 on the host; the component is pre-instantiated once and each
//! request gets a fresh instance in a store of its own, with its own `--memory`,
//! `--fuel` and `--timeout` (per request), its own WASI world over the container's one
//! filesystem, and one access line in the container's log.
//!
//! Outgoing `wasi:http` requests pass the container's network gate
//! ([`crate::wasi::p2::http_out`]): refused (`HTTP-request-denied`, one line in the log)
//! unless `--allow-outbound`, `--network host` or the container's networks allow them.

use crate::engine::{Deadline, Engine, Interrupt, Interruption};
use crate::exec::{self, ExitStatus, Gauges, MemoryLimiter, RunError, RunOutput};
use crate::fs::Vfs;
use crate::spec::RunSpec;
use crate::wasi::p1::stdio::{LogSink, Stream};
use crate::wasi::{ComponentState, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::sync::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Whether a component is a `wasi:http/proxy` service (it exports the incoming
/// handler).
pub fn is_service(engine: &Engine, component: &Component) -> bool {
    component
        .component_type()
        .exports(engine.wasmtime())
        .any(|(name, _)| name.starts_with("wasi:http/incoming-handler@0.2"))
}

/// One request's store data.
struct RequestData {
    wasi: ComponentState,
    http: WasiHttpCtx,
    /// Outgoing requests, through the container's network gate.
    hooks: crate::wasi::p2::http_out::Outgoing,
    memory: MemoryLimiter,
}

impl crate::wasi::p2::HasWasiP2 for RequestData {
    fn p2(&mut self) -> &mut crate::wasi::p2::WasiP2 {
        self.wasi.ctx()
    }
}

impl wasmtime_wasi::WasiView for RequestData {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiView::ctx(self.wasi.ctx())
    }
}

impl WasiHttpView for RequestData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: self.wasi.ctx().table(),
            hooks: &mut self.hooks,
        }
    }
}

/// What every request of one service shares.
struct Service {
    engine: Engine,
    pre: ProxyPre<RequestData>,
    spec: RunSpec,
    vfs: Arc<Vfs>,
    stdio: Stdio,
    /// Where access lines go (the container's log).
    access: Box<dyn Fn(&str) + Send + Sync>,
    /// Stops every request in flight (the container is killed).
    interrupt: Interrupt,
    gauges: Option<Gauges>,
    in_flight: AtomicUsize,
    /// Guests running at once: one per CPU. More would only share the CPUs in time
    /// slices, each request's latency growing with the queue (wrk's p99 went from
    /// 42 ms to a few with it).
    running: Arc<tokio::sync::Semaphore>,
}

/// Serves `component` on the spec's published ports until a stop: when one is asked
/// for (`place.stopping`), no new connection is accepted and the requests in flight
/// finish (status 0); `interrupt` (the grace period's end, a kill, `--timeout` of the
/// whole run is not applied: it bounds each request) ends those still running.
///
/// # Errors
/// [`RunError`] when the component cannot be linked or a port cannot be bound.
pub fn serve(
    engine: &Engine,
    component: &Component,
    spec: &RunSpec,
    vfs: Arc<Vfs>,
    stdio: &Stdio,
    interrupt: &Interrupt,
    place: &crate::container::runner::Place,
) -> Result<RunOutput, RunError> {
    let gauges = place.gauges.as_ref();
    let stopping = place.stopping.clone().unwrap_or_default();
    if spec.ports.is_empty() && spec.networks.is_empty() {
        return Err(RunError::Unsupported(
            "the component is a wasi:http/proxy service: publish the port it serves on \
             (capsule run -p 8080:8080 ...), or join a network (--network NAME)"
                .to_owned(),
        ));
    }
    let (engine, component) = &pooled(engine, component);
    let mut linker: Linker<RequestData> = Linker::new(engine.wasmtime());
    crate::wasi::p2::add_to_linker(&mut linker).map_err(|e| RunError::Link(format!("{e:#}")))?;
    crate::wasi::p2::http_out::add_to_linker(&mut linker)
        .map_err(|e| RunError::Link(format!("{e:#}")))?;
    crate::component::check_imports(engine, &mut linker, component, spec.unknown_imports)?;
    let pre = linker
        .instantiate_pre(component)
        .and_then(ProxyPre::new)
        .map_err(|e| RunError::Instantiate(crate::ending::first_line(&format!("{e:#}"))))?;
    let mut listeners: Vec<(std::net::TcpListener, u16)> = crate::net::bind(&spec.ports)
        .map_err(crate::wasi::WasiError::from)?
        .into_iter()
        .map(|l| (l.socket, l.binding.container_port))
        .collect();
    listeners.extend(network_listeners(spec)?);
    interrupt.attach(engine.wasmtime());
    let service = Arc::new(Service {
        engine: engine.clone(),
        pre,
        spec: spec.clone(),
        vfs,
        stdio: stdio.clone(),
        access: access_log(stdio),
        interrupt: interrupt.clone(),
        gauges: gauges.cloned(),
        in_flight: AtomicUsize::new(0),
        running: Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(1, usize::from),
        )),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| RunError::Link(format!("cannot start the HTTP server: {e}")))?;
    for (socket, container_port) in &listeners {
        (service.access)(&format!(
            "serving wasi:http on {} (container port {container_port})",
            socket
                .local_addr()
                .map_or_else(|_| "?".to_owned(), |a| a.to_string()),
        ));
    }
    let why = runtime.block_on(async {
        let mut accepting = Vec::new();
        for (socket, _) in listeners {
            let socket = tokio::net::TcpListener::from_std(socket)
                .map_err(|e| RunError::Link(format!("cannot serve the published port: {e}")))?;
            accepting.push(tokio::spawn(accept_loop(socket, service.clone())));
        }
        while interrupt.reason().is_none() && stopping.reason().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // No new connections; those open finish the request they are in.
        for task in accepting {
            task.abort();
        }
        while interrupt.reason().is_none() && service.in_flight.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok::<Option<Interruption>, RunError>(interrupt.reason())
    })?;
    // Requests still in flight end with the interrupt (their stores check it).
    runtime.shutdown_timeout(Duration::from_secs(1));
    let status = match why {
        Some(why) => ExitStatus::Interrupted(why),
        None => {
            (service.access)("stopped: no requests in flight");
            ExitStatus::Exited(0)
        }
    };
    Ok(RunOutput {
        status,
        results: Vec::new(),
        stdout: Vec::new(),
        stderr: Vec::new(),
        out_of_memory: None,
    })
}

/// The port a service serves on its networks when no port is published: wasmtime
/// serve's.
const DEFAULT_SERVICE_PORT: u16 = 8080;

/// The listeners of a service on its networks: each container port it publishes (or
/// 8080), on its address on each network, where peers reach it by name.
fn network_listeners(spec: &RunSpec) -> Result<Vec<(std::net::TcpListener, u16)>, RunError> {
    let mut ports: Vec<u16> = spec.ports.iter().map(|p| p.container_port).collect();
    if ports.is_empty() {
        ports.push(DEFAULT_SERVICE_PORT);
    }
    ports.sort_unstable();
    ports.dedup();
    let mut listeners = Vec::new();
    for attachment in &spec.networks {
        for port in &ports {
            let addr = std::net::SocketAddr::from((attachment.address, *port));
            let socket = std::net::TcpListener::bind(addr).map_err(|e| {
                RunError::Unsupported(format!(
                    "cannot listen on {addr} on network {}: {e}",
                    attachment.network
                ))
            })?;
            socket
                .set_nonblocking(true)
                .map_err(|e| RunError::Link(format!("cannot serve on {addr}: {e}")))?;
            listeners.push((socket, *port));
        }
    }
    Ok(listeners)
}

/// Most requests served at once: the pooling allocator's slots.
const POOLED_INSTANCES: u32 = 64;

/// The engine requests run on: the run's engine with wasmtime's pooling allocator, so
/// that an instance takes a ready slot (its memory reset, not unmapped) instead of
/// mapping memory afresh; the component moved onto it. If the pool cannot be set up
/// (the address space is limited), the run's own engine.
fn pooled(engine: &Engine, component: &Component) -> (Engine, Component) {
    let moved = Engine::with_config(&engine.options(), |config| {
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        pool.total_component_instances(POOLED_INSTANCES)
            .total_core_instances(POOLED_INSTANCES * 16)
            .total_memories(POOLED_INSTANCES * 4)
            .total_tables(POOLED_INSTANCES * 16)
            .total_stacks(POOLED_INSTANCES)
            .max_unused_warm_slots(POOLED_INSTANCES)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(1 << 16);
        config
            .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool))
            .memory_init_cow(true);
    })
    .map_err(|e| e.to_string())
    .and_then(|pooled| {
        let moved = crate::engine::cache::transfer_component(component, &pooled)?;
        Ok((pooled, moved))
    });
    match moved {
        Ok(pooled) => pooled,
        Err(reason) => {
            tracing::info!(%reason, "serving without the pooling allocator");
            (engine.clone(), component.clone())
        }
    }
}

/// A function writing one access line to the container's stdout.
fn access_log(stdio: &Stdio) -> Box<dyn Fn(&str) + Send + Sync> {
    match stdio {
        Stdio::Logged { sink, .. } | Stdio::Streamed { sink, .. } => {
            let sink: Arc<dyn LogSink> = sink.clone();
            Box::new(move |line: &str| {
                let _ = sink.write(Stream::Stdout, format!("{line}\n").as_bytes());
            })
        }
        _ => Box::new(|line: &str| {
            use std::io::Write;
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }),
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, service: Arc<Service>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of descriptors, say: wait a moment rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // A response goes out as headers, then body chunks: without this, Nagle's
        // algorithm holds the last small write until the client's delayed ACK (40 ms).
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let io = wasmtime_wasi_http::io::TokioIo::new(stream);
            let handler = hyper::service::service_fn(move |req| {
                let service = service.clone();
                async move { service.handle(req).await }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, handler)
                .await
            {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

impl Service {
    async fn handle(
        self: Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<HyperOutgoingBody>, std::convert::Infallible> {
        let started = Instant::now();
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let _done = InFlight(&self.in_flight);
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let response = match self.clone().respond(req).await {
            Ok(response) => response,
            Err(reason) => {
                (self.access)(&format!("error: {method} {path}: {reason}"));
                error_response()
            }
        };
        (self.access)(&format!(
            "{method} {path} {} {:.3}ms",
            response.status().as_u16(),
            started.elapsed().as_secs_f64() * 1000.0
        ));
        Ok(response)
    }

    /// Runs one request in a fresh instance on a blocking thread; the response comes
    /// back as soon as the guest sets it (its body may still be streaming).
    async fn respond(
        self: Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<HyperOutgoingBody>, String> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let service = self.clone();
        let permit = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| "the service is stopping".to_owned())?;
        let task = tokio::task::spawn_blocking(move || {
            let _running = permit;
            service.run_request(req, sender)
        });
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(format!("the guest answered an error: {code:?}")),
            Err(_) => match task.await {
                Ok(Ok(())) => Err("the guest never set a response".to_owned()),
                Ok(Err(reason)) => Err(reason),
                Err(e) => Err(format!("the request's thread failed: {e}")),
            },
        }
    }

    fn run_request(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        sender: tokio::sync::oneshot::Sender<Result<hyper::Response<HyperOutgoingBody>, ErrorCode>>,
    ) -> Result<(), String> {
        let (mut wasi, _) = ComponentState::beside(self.vfs.clone(), &self.spec, &self.stdio)
            .map_err(|e| e.to_string())?;
        let memory = MemoryLimiter::for_run(&self.spec, self.gauges.as_ref());
        // This request's own deadline (`--timeout`), or the container's end.
        let own = Interrupt::new();
        let container = self.interrupt.clone();
        let stopping = {
            let (own, container) = (own.clone(), container.clone());
            Arc::new(move || own.reason().is_some() || container.reason().is_some())
        };
        let hooks =
            crate::wasi::p2::http_out::Outgoing::new(wasi.ctx().gate().clone()).until(stopping);
        let mut store = Store::new(
            self.engine.wasmtime(),
            RequestData {
                wasi,
                http: WasiHttpCtx::new(),
                hooks,
                memory,
            },
        );
        store.limiter(|d: &mut RequestData| &mut d.memory);
        let _deadline = self
            .spec
            .limits
            .timeout
            .map(|timeout| Deadline::start(&own, timeout));
        own.attach(self.engine.wasmtime());
        exec::arm_with(&mut store, &self.engine, &self.spec, move |_| {
            own.reason().or_else(|| container.reason())
        })
        .map_err(|e| e.to_string())?;
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .map_err(|e| format!("{e:#}"))?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(|e| format!("{e:#}"))?;
        let proxy = self.pre.instantiate(&mut store).map_err(|e| failure(&e))?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, request, out)
            .map_err(|e| failure(&e))
    }
}

/// Counts a request in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What ended a request's guest, in one line.
fn failure(error: &wasmtime::Error) -> String {
    match crate::ending::classify(error) {
        crate::ending::Ending::OutOfFuel => "the request ran out of fuel (--fuel)".to_owned(),
        crate::ending::Ending::Trap(trap) => trap.to_string(),
        _ => crate::ending::first_line(&format!("{error:#}")),
    }
}

fn error_response() -> hyper::Response<HyperOutgoingBody> {
    use http_body_util::BodyExt;
    let body = http_body_util::Full::new(bytes::Bytes::from_static(b"internal error\n"))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
    response
}
