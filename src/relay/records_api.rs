//! The records API on the relay: `/hoop-kube/v1/records` and `/hoop-kube/v1/sessions`, what
//! `hoop-kube sessions list|show|replay|export|tail` reads.
//!
//! Reading records is itself decided: a user sees their own records (by subject), members of
//! `records.auditors` see everyone's. A list or watch by someone else is narrowed to their own
//! records, and asking for another user's explicitly is a 403; a record or session of someone
//! else is a 404, so that ids do not reveal what exists. The routes and their parameters are
//! parsed by [`crate::record::query`]; every error is a `Status`.

use std::collections::HashSet;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::authn::Authenticated;
use super::records::Records;
use crate::kube::status::Status;
use crate::record::asciicast::{to_cast, SessionExport};
use crate::record::event::{now_micros, EventList};
use crate::record::query::{self, ListFormat, RecordList, Route, SessionFormat, WatchLine};
use crate::record::store::{FeedEvent, RecordFilter};
use crate::record::Record;
use crate::respond::{self, Body};

/// Whether `path` belongs to the records API.
pub fn is_api_path(path: &str) -> bool {
    let under = |base: &str| path == base || path.strip_prefix(base).is_some_and(|r| r.starts_with('/'));
    under(query::RECORDS_PATH) || under(query::SESSIONS_PATH)
}

/// Serve one records API request.
pub async fn handle(records: &Records, who: &Authenticated, req: Request<Incoming>) -> Response<Body> {
    match serve(records, who, &req).await {
        Ok(r) => r,
        Err(s) => respond::status(&s),
    }
}

/// Who is asking, and whether they may see everyone's records.
struct Reader<'a> {
    subject: &'a str,
    username: &'a str,
    auditor: bool,
    /// For an agent: its session. An agent reads its own session's records only, never its
    /// engineer's others (nor everyone's, whatever the engineer's groups).
    agent_session: Option<&'a str>,
}

impl Reader<'_> {
    fn may_read(&self, r: &Record) -> bool {
        match self.agent_session {
            Some(s) => r.agent_session.as_deref() == Some(s),
            None => self.auditor || r.subject == self.subject,
        }
    }

    /// Narrow a filter to what this reader may see.
    fn narrow(&self, filter: &mut RecordFilter) -> Result<(), Status> {
        if let Some(s) = self.agent_session {
            if filter.agent_session.as_deref().is_some_and(|f| f != s) {
                return Err(Status::forbidden("an agent may read its own session's records only"));
            }
            filter.agent_session = Some(s.to_string());
        }
        if self.auditor && self.agent_session.is_none() {
            return Ok(());
        }
        match filter.user.as_deref() {
            None => {
                filter.user = Some(self.subject.to_string());
                Ok(())
            }
            Some(u) if u == self.subject || u == self.username => {
                filter.user = Some(self.subject.to_string());
                Ok(())
            }
            Some(u) => Err(Status::forbidden(format!("you may read your own records only, not {u:?}'s; members of the relay's records.auditors groups read everyone's"))),
        }
    }
}

fn not_found(what: &str, id: &str) -> Status {
    Status::failure(404, "NotFound", format!("no {what} {id} that you may read"))
}

fn store_err(e: crate::record::StoreError) -> Status {
    Status::unavailable(format!("the records store is unavailable ({e}); retry shortly"))
}

async fn serve(records: &Records, who: &Authenticated, req: &Request<Incoming>) -> Result<Response<Body>, Status> {
    let id = who.identity();
    let agent_session = who.agent_session().map(|l| l.id());
    let reader = Reader { subject: &id.subject, username: &id.username, auditor: records.is_auditor(&id.groups), agent_session };
    let route = query::route(req.method(), req.uri().path(), req.uri().query(), now_micros())
        .map_err(|e| Status::failure(e.code(), if e.code() == 404 { "NotFound" } else { "BadRequest" }, format!("records API: {e}")))?
        .ok_or_else(|| not_found("route", req.uri().path()))?;
    let store = &records.store;
    match route {
        Route::List { mut filter, format } => {
            reader.narrow(&mut filter)?;
            let items = store.list(filter).await.map_err(store_err)?;
            let body = match format {
                ListFormat::Records => serde_json::to_value(RecordList::new(items)),
                ListFormat::Audit => serde_json::to_value(EventList::new(items.iter().map(Record::to_event).collect())),
            }
            .map_err(|e| Status::internal(e.to_string()))?;
            Ok(respond::json(200, &body))
        }
        Route::Get { id } => {
            let r = store.get(&id).await.map_err(store_err)?.filter(|r| reader.may_read(r)).ok_or_else(|| not_found("record", &id))?;
            Ok(respond::json(200, &serde_json::to_value(&r).map_err(|e| Status::internal(e.to_string()))?))
        }
        Route::Session { id, format } => {
            let info = store.session(&id).await.map_err(store_err)?.ok_or_else(|| not_found("session", &id))?;
            let record = store.get(&info.record_id).await.map_err(store_err)?;
            if !record.as_ref().is_some_and(|r| reader.may_read(r)) {
                return Err(not_found("session", &id));
            }
            let mut events = Vec::new();
            let mut from = 0;
            loop {
                let page = store.session_events(&id, from, 1000).await.map_err(store_err)?;
                let Some((last, _)) = page.last() else { break };
                from = last + 1;
                events.extend(page.into_iter().map(|(_, e)| e));
            }
            match format {
                SessionFormat::Asciicast => {
                    let mut r = Response::new(respond::full(to_cast(&info, record.as_ref(), &events)));
                    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-asciicast"));
                    Ok(r)
                }
                SessionFormat::Json => {
                    let export = SessionExport::new(info, record, events);
                    Ok(respond::json(200, &serde_json::to_value(&export).map_err(|e| Status::internal(e.to_string()))?))
                }
            }
        }
        Route::Watch { mut filter } => {
            reader.narrow(&mut filter)?;
            // Subscribe before listing the backlog, so nothing written in between is missed.
            let mut feed = store.subscribe();
            let mut backlog = Vec::new();
            if filter.since.is_some() {
                let mut f = filter.clone();
                f.limit = crate::record::store::MAX_LIMIT;
                backlog = store.list(f).await.map_err(store_err)?;
                backlog.reverse();
            }
            let (tx, rx) = mpsc::channel::<Bytes>(64);
            tokio::spawn(async move {
                let mut seen: HashSet<String> = HashSet::new();
                for r in backlog {
                    seen.insert(r.id.clone());
                    let stage = r.stage();
                    if tx.send(Bytes::from(WatchLine::Record { stage, record: Box::new(r) }.to_line())).await.is_err() {
                        return;
                    }
                }
                while let Some(ev) = feed.next().await {
                    let line = match ev {
                        FeedEvent::Record(item) => {
                            if !filter.matches(&item.record) || (seen.remove(&item.record.id) && item.record.completed.is_some()) {
                                continue;
                            }
                            WatchLine::Record { stage: item.stage, record: Box::new((*item.record).clone()) }
                        }
                        FeedEvent::Missed(count) => WatchLine::Missed { count },
                    };
                    if tx.send(Bytes::from(line.to_line())).await.is_err() {
                        return;
                    }
                }
            });
            let mut r = Response::new(respond::channel_body(rx));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
            Ok(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths() {
        for p in ["/hoop-kube/v1/records", "/hoop-kube/v1/records/x", "/hoop-kube/v1/sessions/x"] {
            assert!(is_api_path(p), "{p}");
        }
        for p in ["/hoop-kube/v1/recordsx", "/api/v1/records", "/hoop-kube/v1/reviews"] {
            assert!(!is_api_path(p), "{p}");
        }
    }

    #[test]
    fn readers_are_narrowed_to_their_own_records() {
        let r = Reader { subject: "sub-alice", username: "alice", auditor: false, agent_session: None };
        let mut f = RecordFilter::default();
        r.narrow(&mut f).unwrap();
        assert_eq!(f.user.as_deref(), Some("sub-alice"));
        let mut f = RecordFilter { user: Some("alice".into()), ..RecordFilter::default() };
        r.narrow(&mut f).unwrap();
        assert_eq!(f.user.as_deref(), Some("sub-alice"));
        let mut f = RecordFilter { user: Some("bob".into()), ..RecordFilter::default() };
        assert_eq!(r.narrow(&mut f).unwrap_err().code, 403);
        let auditor = Reader { subject: "sub-sam", username: "sam", auditor: true, agent_session: None };
        let mut f = RecordFilter { user: Some("bob".into()), ..RecordFilter::default() };
        auditor.narrow(&mut f).unwrap();
        assert_eq!(f.user.as_deref(), Some("bob"));
        let mine = Record { subject: "sub-alice".into(), ..Record::default() };
        let theirs = Record { subject: "sub-bob".into(), ..Record::default() };
        assert!(r.may_read(&mine) && !r.may_read(&theirs) && auditor.may_read(&theirs));
    }

    #[test]
    fn an_agent_reads_its_own_session_only_even_for_an_auditor() {
        let agent = Reader { subject: "sub-sam", username: "sam", auditor: true, agent_session: Some("s-1") };
        let mut f = RecordFilter::default();
        agent.narrow(&mut f).unwrap();
        assert_eq!((f.user.as_deref(), f.agent_session.as_deref()), (Some("sub-sam"), Some("s-1")));
        let mut f = RecordFilter { user: Some("bob".into()), ..RecordFilter::default() };
        assert_eq!(agent.narrow(&mut f).unwrap_err().code, 403);
        let mut f = RecordFilter { agent_session: Some("s-2".into()), ..RecordFilter::default() };
        assert_eq!(agent.narrow(&mut f).unwrap_err().code, 403);
        let own = Record { subject: "sub-sam".into(), agent_session: Some("s-1".into()), ..Record::default() };
        let engineer = Record { subject: "sub-sam".into(), ..Record::default() };
        let other = Record { subject: "sub-sam".into(), agent_session: Some("s-2".into()), ..Record::default() };
        assert!(agent.may_read(&own) && !agent.may_read(&engineer) && !agent.may_read(&other));
    }
}
