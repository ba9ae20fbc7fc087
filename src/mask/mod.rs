//! Secret masking: the I/O-free core the relay runs for users whose policy rule names a mask
//! profile — on JSON responses (whole bodies and watch streams), on log and exec output, and on
//! their write requests.
//!
//! What it hides and where those values travel is `k8s-wire.md` §8. The parts:
//!
//! | module | job |
//! | --- | --- |
//! | [`profile`] | `mask_profiles:` from relay.yaml → compiled per-kind path rules; union of profiles |
//! | [`placeholder`] | the placeholder texts (plain and base64) and how to recognise them |
//! | `json` | the strict JSON parser every masked byte goes through |
//! | `tape` | the parsed value: tokens with byte spans, walked by the masker |
//! | [`object`] | structural masking by each object's `kind`; [`mask_body`], [`mask_value`] |
//! | [`stream`] | JSON watch streams, chunk by chunk, bounded memory: [`WatchMasker`] |
//! | [`write_guard`] | request bodies refused for masked users (placeholder write-back, JSON-patch oracles) |
//! | [`text`] | literal Secret values replaced in logs and exec output: [`Replacer`], [`TextStream`] |
//!
//! What the caller must do around it (the relay's response path): ask upstream for JSON only
//! (rewrite `Accept`, drop `Accept-Encoding`), decide from the *response* Content-Type, and
//! fail closed — cut the response — on any type it cannot mask or any error here. Errors never
//! quote the values they are about.

mod json;
pub mod object;
pub mod placeholder;
pub mod profile;
pub mod stream;
mod tape;
pub mod text;
pub mod write_guard;

pub use json::{JsonError, MAX_DEPTH};
pub use object::{mask_body, mask_body_into, mask_value, MaskError};
pub use placeholder::{is_placeholder, BASE64 as PLACEHOLDER_BASE64, TEXT as PLACEHOLDER_TEXT};
pub use profile::{MaskProfile, MaskProfileConfig, MaskProfiles, MaskProfilesConfig, ProfileError};
pub use stream::{mask_event_into, StreamError, WatchMasker, DEFAULT_MAX_EVENT};
pub use text::{secret_values, Replacer, TextError, TextStream};
pub use write_guard::{check_body, check_decoded, WriteRefused};
