//! Framing of the streaming protocols that exec, attach and port-forward use.
//!
//! [`websocket`] owns the `channel.k8s.io` subprotocols (one channel byte per message) and
//! [`spdy`] the SPDY/3.1 frame codec that kubectl's SPDY transport and the WebSocket port-forward
//! tunnel carry. Both are pure codecs: they take bytes and give frames, or a typed error.

pub mod spdy;
pub mod websocket;
