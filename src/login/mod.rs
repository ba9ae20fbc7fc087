//! `hoop-kube login`'s building blocks, on the engineer's machine.
//!
//! [`device`] runs the OIDC device authorization grant (RFC 8628) and refreshes tokens; [`store`]
//! keeps tokens and keys in the OS keyring (or a 0600 file when there is none). [`profile`] says which relay and
//! issuer a login belongs to; [`exec_credential`] speaks kubectl's exec-plugin format; [`refresh`]
//! is the plugin's hot path (cached token, or one refresh for all concurrent callers).
//! [`enroll`] trades the ID token and a CSR for the relay's mTLS client certificate, which
//! [`client_cert`] keeps and renews; [`session`] is one whole login (prompt, QR, spinner, store,
//! enroll); [`kubeconfig`] merges the context that uses the plugin; [`status`] reports on all of it.

pub mod client_cert;
pub mod device;
pub mod enroll;
pub mod exec_credential;
pub mod fast_path;
pub mod kubeconfig;
pub mod profile;
pub mod refresh;
pub mod session;
pub mod status;
pub mod store;
