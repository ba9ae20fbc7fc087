//! The simulator's object store: objects, resourceVersions and watch fan-out.
//!
//! One global, monotonically increasing resourceVersion, as etcd gives the apiserver. Every
//! change is kept in a bounded history so a watch can resume from a recent resourceVersion; one
//! older than the history gets `410 Expired`, exactly as kube-apiserver answers once etcd has
//! compacted. Changes are published under the same lock that assigns their resourceVersion, so a
//! watcher that subscribes under that lock sees every later change exactly once.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

/// How many changes the store remembers for watches that resume.
pub const HISTORY: usize = 1000;

/// Identity of a stored object: resource (`group/plural`), namespace ("" if cluster-scoped), name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    /// The watch event `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One change, as watchers receive it.
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub kind: ChangeType,
    pub key: Key,
    pub object: Arc<Value>,
}

struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Arc<Value>>,
    history: VecDeque<Change>,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    changes: broadcast::Sender<Change>,
}

/// A locked view of the store for read-modify-write sequences.
pub struct Txn<'a> {
    inner: MutexGuard<'a, Inner>,
    changes: &'a broadcast::Sender<Change>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store whose first resourceVersion is 1.
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(4096);
        Store { inner: Arc::new(Mutex::new(Inner { rv: 1, objects: BTreeMap::new(), history: VecDeque::new() })), changes }
    }

    /// Lock the store.
    pub fn txn(&self) -> Txn<'_> {
        // A poisoned lock means a panic while holding it; the data is still consistent
        // because every mutation is a single insert/remove.
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Txn { inner, changes: &self.changes }
    }
}

/// Where a watch starts.
pub enum WatchStart {
    /// Replay these changes, then follow.
    Replay(Vec<Change>),
    /// The requested resourceVersion is older than the history.
    Expired { requested: u64, oldest: u64 },
}

impl Txn<'_> {
    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.inner.rv
    }

    /// One object.
    pub fn get(&self, key: &Key) -> Option<Arc<Value>> {
        self.inner.objects.get(key).cloned()
    }

    /// All objects of a resource, optionally in one namespace, ordered by namespace and name.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Vec<(Key, Arc<Value>)> {
        self.inner
            .objects
            .iter()
            .filter(|(k, _)| k.resource == resource && namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Store an object (create or replace). Sets `metadata.resourceVersion` and publishes the change.
    pub fn put(&mut self, key: Key, mut object: Value) -> Arc<Value> {
        self.inner.rv += 1;
        let rv = self.inner.rv;
        object["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let object = Arc::new(object);
        let kind = if self.inner.objects.insert(key.clone(), object.clone()).is_some() { ChangeType::Modified } else { ChangeType::Added };
        self.publish(Change { rv, kind, key, object: object.clone() });
        object
    }

    /// Remove an object; the DELETED event carries its final state with a new resourceVersion.
    pub fn delete(&mut self, key: &Key) -> Option<Arc<Value>> {
        let old = self.inner.objects.remove(key)?;
        self.inner.rv += 1;
        let rv = self.inner.rv;
        let mut last = (*old).clone();
        last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let last = Arc::new(last);
        self.publish(Change { rv, kind: ChangeType::Deleted, key: key.clone(), object: last.clone() });
        Some(last)
    }

    fn publish(&mut self, change: Change) {
        if self.inner.history.len() == HISTORY {
            self.inner.history.pop_front();
        }
        self.inner.history.push_back(change.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.changes.send(change);
    }

    /// Subscribe to changes after `from_rv` (exclusive): the remembered ones now, the rest live.
    pub fn watch_from(&self, from_rv: u64) -> (WatchStart, broadcast::Receiver<Change>) {
        let rx = self.changes.subscribe();
        let oldest = self.inner.history.front().map(|c| c.rv).unwrap_or(self.inner.rv + 1);
        // Every change after from_rv must still be in history; the one right after it is
        // from_rv + 1 (resourceVersions are dense).
        if from_rv + 1 < oldest && from_rv < self.inner.rv {
            return (WatchStart::Expired { requested: from_rv, oldest }, rx);
        }
        let replay = self.inner.history.iter().filter(|c| c.rv > from_rv).cloned().collect();
        (WatchStart::Replay(replay), rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(n: &str) -> Key {
        Key { resource: "/pods".into(), namespace: "default".into(), name: n.into() }
    }

    #[test]
    fn resource_versions_increase_and_are_stamped() {
        let s = Store::new();
        let mut t = s.txn();
        let a = t.put(key("a"), json!({"metadata":{"name":"a"}}));
        let b = t.put(key("b"), json!({"metadata":{"name":"b"}}));
        assert_eq!(a["metadata"]["resourceVersion"], "2");
        assert_eq!(b["metadata"]["resourceVersion"], "3");
        assert_eq!(t.list("/pods", Some("default")).len(), 2);
        assert_eq!(t.list("/pods", Some("other")).len(), 0);
    }

    #[test]
    fn watch_replays_after_rv_and_expires_old_ones() {
        let s = Store::new();
        let mut t = s.txn();
        for i in 0..(HISTORY + 10) {
            t.put(key(&format!("p{i}")), json!({"metadata":{}}));
        }
        let now = t.rv();
        match t.watch_from(now - 2).0 {
            WatchStart::Replay(c) => assert_eq!(c.iter().map(|c| c.rv).collect::<Vec<_>>(), vec![now - 1, now]),
            WatchStart::Expired { .. } => panic!("recent rv must replay"),
        }
        assert!(matches!(t.watch_from(3).0, WatchStart::Expired { requested: 3, .. }));
    }

    #[test]
    fn delete_publishes_final_state() {
        let s = Store::new();
        let (_, mut rx) = s.txn().watch_from(1);
        let mut t = s.txn();
        t.put(key("a"), json!({"metadata":{"name":"a"}}));
        let gone = t.delete(&key("a")).unwrap();
        assert!(t.delete(&key("a")).is_none());
        drop(t);
        assert_eq!(rx.try_recv().unwrap().kind, ChangeType::Added);
        let d = rx.try_recv().unwrap();
        assert_eq!(d.kind, ChangeType::Deleted);
        assert_eq!(d.object, gone);
    }
}
