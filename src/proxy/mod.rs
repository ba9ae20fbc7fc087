//! HTTP proxying shared by the local forwarder and the relay.
//!
//! Both sit between kubectl and an API server and must be invisible: every byte of the path and
//! query forwarded as received, bodies streamed as they arrive with backpressure, HTTP/1.1
//! upgrades (WebSocket, SPDY) spliced both ways. [`client`] dials the next hop over TLS (a pooled
//! HTTP/2 client for ordinary calls, HTTP/1.1 for upgrades), [`headers`] decides which headers
//! cross a hop, [`pass`] forwards one request and streams its answer back, [`splice`] joins two
//! upgraded connections, and [`serve`] is the TLS accept loop every hoop-kube server uses.

pub mod client;
pub mod headers;
pub mod pass;
pub mod serve;
pub mod splice;

/// Concurrent HTTP/2 streams a hoop-kube server allows per connection. Watches and `logs -f` are
/// long-lived streams, and the forwarder and relay multiplex many of them over one connection,
/// so hyper's default of 200 would stall the 201st watch.
pub const MAX_CONCURRENT_STREAMS: u32 = 10_000;
