//! Capsule's own versions of the three `wasi:sockets` calls where the gate does more
//! than allow or refuse an address, linked over wasmtime-wasi's (the linker allows
//! shadowing for just these names):
//!
//! - `tcp-socket.start-bind`, `udp-socket.start-bind`: a bind to `0.0.0.0:PORT` is made
//!   on the container's network address ([`Gate::bind_address`]), so two containers
//!   both listening on port 5432 do not meet, and peers reach each by its own address;
//! - `resolve-addresses`: names come from the container's networks and allow-list
//!   ([`Gate::lookup`]); the answer is handed to wasmtime-wasi's stream as an address
//!   literal (so its resource, pollable and drop stay wasmtime-wasi's) and the whole
//!   list is kept here for `resolve-next-address`.
//!
//! Every other call, and every address these pass on, is wasmtime-wasi's, checked by
//! the gate through its `socket_addr_check`.

use super::HasWasiP2;
use super::network::{Gate, Lookup};
use std::net::{IpAddr, SocketAddr};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    Host as _, HostResolveAddressStream as _, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddress, IpSocketAddress};
use wasmtime_wasi::p2::bindings::sync::sockets::tcp::HostTcpSocket;
use wasmtime_wasi::p2::bindings::sync::sockets::udp::HostUdpSocket;
use wasmtime_wasi::p2::{Network, SocketError, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::WasiSocketsView as _;

/// The WASI version wasmtime-wasi links `wasi:sockets` at.
const SOCKETS: &str = "wasi:sockets";
const VERSION: &str = "0.2.12";

/// A call's result as the guest receives it: its error code, or a trap.
fn guest<T>(result: Result<T, SocketError>) -> wasmtime::Result<(Result<T, ErrorCode>,)> {
    match result {
        Ok(value) => Ok((Ok(value),)),
        Err(e) => Ok((Err(e.downcast()?),)),
    }
}

fn bind_address<T: HasWasiP2>(
    store: &mut StoreContextMut<'_, T>,
    local: IpSocketAddress,
) -> IpSocketAddress {
    let gate: &Gate = store.data_mut().p2().gate();
    gate.bind_address(SocketAddr::from(local)).into()
}

/// Links Capsule's `start-bind`s and `resolve-addresses` over wasmtime-wasi's.
///
/// # Errors
/// wasmtime's error if an interface is missing from the linker.
pub(super) fn add_to_linker<T: HasWasiP2>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = link(linker);
    linker.allow_shadowing(false);
    linked
}

fn link<T: HasWasiP2>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut tcp = linker.instance(&format!("{SOCKETS}/tcp@{VERSION}"))?;
    tcp.func_wrap(
        "[method]tcp-socket.start-bind",
        |mut store: StoreContextMut<'_, T>,
         (socket, network, local): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)| {
            let local = bind_address(&mut store, local);
            let mut view = store.data_mut().p2().sockets();
            guest(HostTcpSocket::start_bind(&mut view, socket, network, local))
        },
    )?;
    let mut udp = linker.instance(&format!("{SOCKETS}/udp@{VERSION}"))?;
    udp.func_wrap(
        "[method]udp-socket.start-bind",
        |mut store: StoreContextMut<'_, T>,
         (socket, network, local): (Resource<UdpSocket>, Resource<Network>, IpSocketAddress)| {
            let local = bind_address(&mut store, local);
            let mut view = store.data_mut().p2().sockets();
            guest(HostUdpSocket::start_bind(&mut view, socket, network, local))
        },
    )?;
    let mut lookup = linker.instance(&format!("{SOCKETS}/ip-name-lookup@{VERSION}"))?;
    lookup.func_wrap(
        "resolve-addresses",
        |mut store: StoreContextMut<'_, T>, (network, name): (Resource<Network>, String)| {
            let p2 = store.data_mut().p2();
            let literal = crate::net::allow::address_literal(&name).is_some();
            let answer = if literal {
                None
            } else {
                match p2.gate().lookup(&name) {
                    Lookup::Found(found) => Some(found),
                    Lookup::Unknown => return Ok((Err(ErrorCode::NameUnresolvable),)),
                    Lookup::Refused => return Ok((Err(ErrorCode::AccessDenied),)),
                }
            };
            // wasmtime-wasi makes the stream (an address literal resolves at once).
            let first = match &answer {
                Some(found) => found.first().map_or(name.clone(), IpAddr::to_string),
                None => name,
            };
            let stream = match p2.sockets().resolve_addresses(network, first) {
                Ok(stream) => stream,
                Err(e) => return Ok((Err(e.downcast()?),)),
            };
            match answer {
                Some(found) => p2.lookups.insert(stream.rep(), found.into()),
                None => p2.lookups.remove(&stream.rep()),
            };
            Ok((Ok(stream),))
        },
    )?;
    lookup.func_wrap(
        "[method]resolve-address-stream.resolve-next-address",
        |mut store: StoreContextMut<'_, T>, (stream,): (Resource<ResolveAddressStream>,)| {
            let p2 = store.data_mut().p2();
            if let Some(found) = p2.lookups.get_mut(&stream.rep()) {
                let next: Option<IpAddress> = found.pop_front().map(IpAddress::from);
                return Ok((Ok(next),));
            }
            guest(p2.sockets().resolve_next_address(stream))
        },
    )?;
    Ok(())
}
