//! `records:` in relay.yaml — where the relay records every request and exec session, how long
//! it keeps them, where it exports them, and who may read everyone's.
//!
//! ```yaml
//! records:
//!   store: relay-records.sqlite   # default, beside this file (SQLite, WAL, created 0600)
//!   retention_days: 30            # 1..=3650, default 30
//!   max_records: 10000000         # optional: keep at most this many (the newest)
//!   durability: normal            # normal (survives a relay crash) | full (fsync every commit)
//!   record_stdin: true            # keystrokes typed into exec/attach; false counts them only
//!   auditors: [sre]               # groups that may read every user's records (others: their own)
//!   export:
//!     file: audit.jsonl           # audit.k8s.io/v1 Event lines (0600, O_APPEND)
//!     webhook: https://siem.example.com/k8s-audit   # EventList batches, like the apiserver's
//! ```
//!
//! The section is optional and so is every key: recording is always on (it is what the relay
//! is for), with the defaults above. Unknown keys, out-of-range numbers, an empty or directory
//! path and a webhook that is not `https://` (or `http://` to loopback) are refused with their
//! key path.

use std::path::PathBuf;

use serde::Deserialize;

use super::{is_loopback, parse_url, ConfigError, Cx};
use crate::record::store::Durability;

/// The default store file name, beside the config file.
pub const DEFAULT_RECORDS_STORE: &str = "relay-records.sqlite";
/// The default `retention_days`.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// `records:` — validated, paths absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsConfig {
    pub store: PathBuf,
    pub retention_days: u32,
    pub max_records: Option<u64>,
    pub durability: Durability,
    pub record_stdin: bool,
    pub auditors: Vec<String>,
    pub export_file: Option<PathBuf>,
    pub export_webhook: Option<String>,
}

/// The section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecords {
    store: Option<PathBuf>,
    retention_days: Option<u32>,
    max_records: Option<u64>,
    #[serde(default)]
    durability: Durability,
    record_stdin: Option<bool>,
    #[serde(default)]
    auditors: Vec<String>,
    #[serde(default)]
    export: RawExport,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExport {
    file: Option<PathBuf>,
    webhook: Option<String>,
}

impl Cx<'_> {
    pub(super) fn file_path(&self, key: &str, p: PathBuf) -> Result<PathBuf, ConfigError> {
        if p.as_os_str().is_empty() {
            return Err(self.invalid(key, "is empty; name a file"));
        }
        let p = self.base.join(p);
        if p.is_dir() {
            return Err(self.invalid(key, format!("{} is a directory; name a file", p.display())));
        }
        if let Some(parent) = p.parent() {
            if !parent.is_dir() {
                return Err(self.invalid(key, format!("the directory {} does not exist", parent.display())));
            }
        }
        Ok(p)
    }

    pub(super) fn records(&self, raw: RawRecords) -> Result<RecordsConfig, ConfigError> {
        let store = self.file_path("records.store", raw.store.unwrap_or_else(|| PathBuf::from(DEFAULT_RECORDS_STORE)))?;
        let retention_days = raw.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS);
        if !(1..=3650).contains(&retention_days) {
            return Err(self.invalid("records.retention_days", format!("{retention_days} is out of range; allowed 1–3650 (days)")));
        }
        if raw.max_records == Some(0) {
            return Err(self.invalid("records.max_records", "0 would keep nothing; leave it out to keep records by age only"));
        }
        for (i, g) in raw.auditors.iter().enumerate() {
            if g.trim().is_empty() {
                return Err(self.invalid(format!("records.auditors[{i}]"), "is empty; name a group"));
            }
        }
        let export_file = raw.export.file.map(|f| self.file_path("records.export.file", f)).transpose()?;
        let export_webhook = match raw.export.webhook {
            None => None,
            Some(w) => {
                let url = parse_url(self.file, "records.export.webhook", &w)?;
                if url.scheme() == "http" && !is_loopback(&url) {
                    return Err(self.invalid("records.export.webhook", format!("{w:?}: http is only allowed on 127.0.0.1, ::1 or localhost; use https")));
                }
                Some(w)
            }
        };
        Ok(RecordsConfig {
            store,
            retention_days,
            max_records: raw.max_records,
            durability: raw.durability,
            record_stdin: raw.record_stdin.unwrap_or(true),
            auditors: raw.auditors,
            export_file,
            export_webhook,
        })
    }
}
