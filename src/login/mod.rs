//! `hoop-kube login`'s building blocks, on the engineer's machine.
//!
//! [`device`] runs the OIDC device authorization grant (RFC 8628) and refreshes tokens; [`store`]
//! keeps tokens and keys in the OS keyring (or a 0600 file when there is none). [`profile`] says which relay and
//! issuer a login belongs to; [`exec_credential`] speaks kubectl's exec-plugin format; [`refresh`]
//! is the plugin's hot path (cached token, or one refresh for all concurrent callers). Enrollment
//! with the relay and the commands that use these come next.

pub mod device;
pub mod exec_credential;
pub mod profile;
pub mod refresh;
pub mod store;
