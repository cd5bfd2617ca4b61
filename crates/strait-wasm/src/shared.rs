//! Shared data (key-value with compare-and-swap) and shared queues: the state plugins keep across requests and instances, process-wide and kept across reloads like Envoy's.
//!
//! Both are bounded: a full table or queue answers the plugin with an error status instead of
//! growing.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

use crate::abi::Status;

/// Most keys in shared data.
pub const MAX_SHARED_KEYS: usize = 100_000;
/// Largest shared data value or queue item.
pub const MAX_SHARED_VALUE: usize = 1 << 20;
/// Most items waiting in one queue.
pub const MAX_QUEUE_ITEMS: usize = 10_000;

/// Shared data: values with a version that changes on every write.
#[derive(Default)]
pub struct SharedData {
    map: Mutex<HashMap<Vec<u8>, (Bytes, u32)>>,
}

impl SharedData {
    /// The value and its version (`cas`), if the key exists.
    pub fn get(&self, key: &[u8]) -> Option<(Bytes, u32)> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).cloned()
    }

    /// Sets `key` to `value` if `cas` is 0 or the key's current version.
    pub fn set(&self, key: &[u8], value: &[u8], cas: u32) -> Status {
        if value.len() > MAX_SHARED_VALUE {
            return Status::BadArgument;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let full = map.len() >= MAX_SHARED_KEYS;
        match map.get_mut(key) {
            Some((_, version)) if cas != 0 && cas != *version => Status::CasMismatch,
            Some(entry) => {
                // Never 0: 0 means "no check" to the guest.
                let next = entry.1.wrapping_add(1).max(1);
                *entry = (Bytes::copy_from_slice(value), next);
                Status::Ok
            }
            None if cas != 0 => Status::CasMismatch,
            None if full => Status::InternalFailure,
            None => {
                map.insert(key.to_vec(), (Bytes::copy_from_slice(value), 1));
                Status::Ok
            }
        }
    }
}

struct Queue {
    name: String,
    items: VecDeque<Bytes>,
    /// Where the registering plugin hears that an item arrived.
    ready: Option<UnboundedSender<u32>>,
}

/// Shared queues by id; a name maps to one id for the life of the process.
#[derive(Default)]
pub struct SharedQueues {
    inner: Mutex<Queues>,
}

#[derive(Default)]
struct Queues {
    by_id: HashMap<u32, Queue>,
    by_name: HashMap<String, u32>,
}

impl SharedQueues {
    /// The queue called `name` (made if new), told to notify `ready`.
    pub fn register(&self, name: &str, ready: Option<UnboundedSender<u32>>) -> u32 {
        let mut q = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = q.by_name.get(name) {
            if let Some(queue) = q.by_id.get_mut(&id) {
                queue.ready = ready;
            }
            return id;
        }
        let id = q.by_id.len() as u32 + 1;
        q.by_name.insert(name.to_owned(), id);
        q.by_id.insert(
            id,
            Queue {
                name: name.to_owned(),
                items: VecDeque::new(),
                ready,
            },
        );
        id
    }

    /// The id of the queue called `name`, if one is registered.
    pub fn resolve(&self, name: &str) -> Option<u32> {
        let q = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        q.by_name.get(name).copied()
    }

    /// Appends `item` to queue `id` and tells its owner.
    pub fn enqueue(&self, id: u32, item: &[u8]) -> Status {
        if item.len() > MAX_SHARED_VALUE {
            return Status::BadArgument;
        }
        let mut q = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(queue) = q.by_id.get_mut(&id) else {
            return Status::NotFound;
        };
        if queue.items.len() >= MAX_QUEUE_ITEMS {
            tracing::debug!(queue = %queue.name, "wasm shared queue full");
            return Status::InternalFailure;
        }
        queue.items.push_back(Bytes::copy_from_slice(item));
        if let Some(tx) = &queue.ready {
            let _ = tx.send(id);
        }
        Status::Ok
    }

    /// Takes the oldest item of queue `id`.
    pub fn dequeue(&self, id: u32) -> Result<Bytes, Status> {
        let mut q = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let queue = q.by_id.get_mut(&id).ok_or(Status::NotFound)?;
        queue.items.pop_front().ok_or(Status::Empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_data_set_checks_the_version_it_was_read_at() {
        let d = SharedData::default();
        assert_eq!(d.set(b"k", b"1", 0), Status::Ok);
        let (_, cas) = d.get(b"k").unwrap();
        assert_eq!(d.set(b"k", b"2", cas), Status::Ok);
        assert_eq!(d.set(b"k", b"3", cas), Status::CasMismatch);
        assert_eq!(d.get(b"k").unwrap().0, Bytes::from_static(b"2"));
        assert_eq!(d.set(b"new", b"x", 7), Status::CasMismatch);
    }

    #[test]
    fn queues_are_found_by_name_and_hand_out_items_in_order() {
        let q = SharedQueues::default();
        let id = q.register("jobs", None);
        assert_eq!(q.resolve("jobs"), Some(id));
        assert_eq!(q.resolve("other"), None);
        assert_eq!(q.dequeue(id), Err(Status::Empty));
        assert_eq!(q.enqueue(id, b"a"), Status::Ok);
        assert_eq!(q.enqueue(id, b"b"), Status::Ok);
        assert_eq!(q.dequeue(id).unwrap(), Bytes::from_static(b"a"));
        assert_eq!(q.enqueue(99, b"x"), Status::NotFound);
    }
}
