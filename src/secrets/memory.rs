//! The in-memory store behind [`SecretBackend::Memory`](super::SecretBackend::Memory): for tests
//! and demos, never chosen by detection. It counts the calls made to it, so tests can see which
//! reads the cache answered.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::backend::Store;
use super::naming::Slot;
use super::{Secret, SecretError};

#[derive(Default)]
pub(crate) struct MemoryStore {
    values: Mutex<HashMap<(String, String), Secret>>,
    pub(crate) gets: AtomicUsize,
    pub(crate) writes: AtomicUsize,
}

impl MemoryStore {
    fn values(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Secret>> {
        self.values.lock().expect("memory secret store")
    }
}

fn pair(slot: &Slot) -> (String, String) {
    (slot.extension().to_owned(), slot.key().to_owned())
}

impl Store for MemoryStore {
    fn get(&self, slot: &Slot) -> Result<Option<Secret>, SecretError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        Ok(self.values().get(&pair(slot)).cloned())
    }

    fn set(&self, slot: &Slot, value: &Secret) -> Result<(), SecretError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.values().insert(pair(slot), value.clone());
        Ok(())
    }

    fn delete(&self, slot: &Slot) -> Result<bool, SecretError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(self.values().remove(&pair(slot)).is_some())
    }

    fn list(&self, extension: &str) -> Result<Vec<String>, SecretError> {
        Ok(self
            .values()
            .keys()
            .filter(|(ext, _)| ext == extension)
            .map(|(_, key)| key.clone())
            .collect())
    }

    fn delete_all(&self, extension: &str) -> Result<usize, SecretError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut values = self.values();
        let before = values.len();
        values.retain(|(ext, _), _| ext != extension);
        Ok(before - values.len())
    }
}
