//! Fuzzes the relay's enrollment input: the JSON request body (`relay::enroll::parse_request`)
//! and the CSR inside it (`pki::ClientCsr`), both as DER and as PEM.
//!
//! Checked: no panic; a body that parses holds a CSR string; a CSR that parses from arbitrary
//! bytes is never accepted twice differently (DER and its PEM wrapping agree).
#![no_main]

use base64::Engine as _;
use hoop_kube::pki::ClientCsr;
use hoop_kube::relay::enroll::parse_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_request(data) {
        let _ = ClientCsr::from_pem(&req.csr);
    }
    let der = ClientCsr::from_der(data).is_ok();
    let pem = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        base64::engine::general_purpose::STANDARD.encode(data)
    );
    assert_eq!(ClientCsr::from_pem(&pem).is_ok(), der, "DER and PEM disagree");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ClientCsr::from_pem(text);
    }
});
