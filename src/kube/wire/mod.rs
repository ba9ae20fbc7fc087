//! Framing of the streaming protocols that exec, attach and port-forward use.
//!
//! [`ws_frame`] cuts RFC 6455 WebSocket frames out of a byte stream (what the relay records and
//! rewrites after an exec upgrade), [`websocket`] owns the `channel.k8s.io` subprotocols (one
//! channel byte per message) and
//! [`spdy`] the SPDY/3.1 frame codec that kubectl's SPDY transport and the WebSocket port-forward
//! tunnel carry. Both are pure codecs: they take bytes and give frames, or a typed error.

pub mod spdy;
pub mod websocket;
pub mod ws_frame;
