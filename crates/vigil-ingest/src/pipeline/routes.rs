//! The devices' routes, remembered by the intake between batches. Looking up
//! a batch's devices was 4 ms of a 25–45 ms intake cycle at ward scale
//! (docs/benchmarks.md), and routes change only when a device or an episode
//! does. Each batch reads the store's route generation (one row), which
//! triggers move on every such write from any process; a new value drops
//! everything remembered (decision 0007, hazard AL-15).

use std::collections::HashMap;

use vigil_store::{DeviceRoute, Store, StoreError};

/// Routes looked up under one route generation.
#[derive(Default)]
pub(super) struct Routes {
    generation: Option<i64>,
    known: HashMap<String, DeviceRoute>,
}

impl Routes {
    /// Make [`Routes::known`] hold the routes of `devices` as the store has
    /// them now: keep what was looked up under the store's current
    /// generation, and look up the rest in one query. A device with no
    /// route is not remembered: it is looked up again next time.
    pub(super) async fn refresh(
        &mut self,
        store: &dyn Store,
        devices: &[&str],
    ) -> Result<(), StoreError> {
        let generation = store.route_generation().await?;
        if self.generation != Some(generation) {
            self.known.clear();
            self.generation = Some(generation);
        }
        let unknown: Vec<&str> = devices
            .iter()
            .copied()
            .filter(|d| !self.known.contains_key(*d))
            .collect();
        if !unknown.is_empty() {
            self.known.extend(store.device_routes(&unknown).await?);
        }
        Ok(())
    }

    /// Every route looked up since the generation last moved: after
    /// [`Routes::refresh`], those of its devices that have one, and others.
    pub(super) fn known(&self) -> &HashMap<String, DeviceRoute> {
        &self.known
    }
}

#[cfg(test)]
mod tests;
