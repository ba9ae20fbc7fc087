//! `hoop-kube login`'s building blocks, on the engineer's machine.
//!
//! [`device`] runs the OIDC device authorization grant (RFC 8628) and refreshes tokens. The
//! secret store, enrollment with the relay and the exec-credential plugin come next.

pub mod device;
