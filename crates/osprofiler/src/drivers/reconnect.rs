//! A backend connection opened on first use and dropped after a failure,
//! so the next use reconnects: how the network drivers survive restarts.

use std::sync::Mutex;

use crate::error::Result;

/// The connection slot of a driver.
#[derive(Debug)]
pub(crate) struct Reconnecting<C>(Mutex<Option<C>>);

impl<C> Reconnecting<C> {
    pub(crate) fn new() -> Self {
        Reconnecting(Mutex::new(None))
    }

    /// Runs `work` on the connection, opening it with `connect` first if
    /// needed; drops the connection when `work` fails.
    pub(crate) fn with<T>(
        &self,
        connect: impl FnOnce() -> Result<C>,
        work: impl FnOnce(&mut C) -> Result<T>,
    ) -> Result<T> {
        // A panic elsewhere must not make the driver unusable.
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let connection = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(connect()?),
        };
        let result = work(connection);
        if result.is_err() {
            *slot = None;
        }
        result
    }
}
