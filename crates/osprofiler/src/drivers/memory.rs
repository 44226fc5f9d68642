//! In-memory driver, for tests and examples.

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};

use super::Driver;
use crate::error::Result;
use crate::notification::Notification;

/// Keeps payloads in memory. Clones share the same store, so a test can
/// install one clone and read the other.
#[derive(Debug, Clone, Default)]
pub struct MemoryDriver {
    project: Option<String>,
    service: Option<String>,
    payloads: Arc<Mutex<Vec<Value>>>,
}

impl MemoryDriver {
    /// An empty store with no project or service.
    pub fn new() -> MemoryDriver {
        MemoryDriver::default()
    }

    /// An empty store that stamps `project` and `service` on payloads.
    pub fn with_identity(project: Option<&str>, service: Option<&str>) -> MemoryDriver {
        MemoryDriver {
            project: project.map(String::from),
            service: service.map(String::from),
            payloads: Arc::default(),
        }
    }

    /// Every payload stored so far, in arrival order.
    pub fn payloads(&self) -> Vec<Value> {
        self.lock().clone()
    }

    /// Removes every stored payload.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Value>> {
        // A panic elsewhere must not make the store unusable.
        self.payloads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Driver for MemoryDriver {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn notify(&self, batch: &[Notification]) -> Result<()> {
        let mut store = self.lock();
        store.extend(
            batch
                .iter()
                .map(|n| n.to_value(self.project.as_deref(), self.service.as_deref())),
        );
        Ok(())
    }

    fn get_events(&self, base_id: &str) -> Result<Vec<Value>> {
        Ok(self
            .lock()
            .iter()
            .filter(|p| p.get("base_id").and_then(Value::as_str) == Some(base_id))
            .cloned()
            .collect())
    }

    fn list_traces(&self, fields: &[&str]) -> Result<Vec<Map<String, Value>>> {
        let fields: &[&str] = if fields.is_empty() {
            &["base_id", "timestamp"]
        } else {
            fields
        };
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for p in self.lock().iter() {
            let Some(obj) = p.as_object() else { continue };
            let Some(base) = obj.get("base_id").and_then(Value::as_str) else {
                continue;
            };
            if seen.insert(base.to_string()) {
                out.push(
                    obj.iter()
                        .filter(|(k, _)| fields.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                );
            }
        }
        Ok(out)
    }
}
