//! `hoop-kube login`'s building blocks, on the engineer's machine.
//!
//! [`device`] runs the OIDC device authorization grant (RFC 8628) and refreshes tokens; [`store`]
//! keeps tokens and keys in the OS keyring (or a 0600 file when there is none). Enrollment with
//! the relay and the exec-credential plugin come next.

pub mod device;
pub mod store;
