//! The Kubernetes wire protocol, free of I/O.
//!
//! Everything hoop-kube knows about what kubectl sends and what kube-apiserver answers lives
//! here, once: how a path becomes request attributes ([`request_info`]), how `Accept` headers
//! choose a representation ([`media`]), how protobuf request bodies read as JSON ([`protobuf`]), the `Status` error shape ([`status`]), and the framing of
//! the streaming protocols ([`wire`]). The simulator, the relay's policy engine and the records all
//! use these same parsers, so they can never disagree about what a request means.

pub mod body;
pub mod media;
pub mod protobuf;
mod query;
pub use query::path_unescape;
pub mod request_info;
pub mod status;
pub mod wire;
