//! The devices' routes, remembered by the intake between batches. Looking up
//! a batch's devices was 4 ms of a 25–45 ms intake cycle at ward scale
//! (docs/benchmarks.md), and routes change only when a device or an episode
//! does. What is remembered was looked up under one route generation (a
//! counter that database triggers move on every route change, from any
//! process), and a batch is committed only if the generation is still that
//! one (`Store::store_routed_batch`); if it moved, the intake forgets
//! everything, looks the routes up again and routes the batch again
//! (decision 0007, hazard AL-15).

use std::collections::HashMap;

use vigil_store::{DeviceRoute, Store, StoreError};

/// Routes looked up under one route generation.
#[derive(Default)]
pub(super) struct Routes {
    /// `None` until read, and after [`Routes::forget`]; `known` is then empty.
    generation: Option<i64>,
    known: HashMap<String, DeviceRoute>,
}

impl Routes {
    /// Make [`Routes::known`] hold the routes of `devices`: keep what was
    /// looked up under the remembered generation (reading the store's
    /// generation first if none is), and look up the rest in one query. A
    /// device with no route is not remembered: it is looked up again next
    /// time. Returns the generation to commit the batch under.
    pub(super) async fn refresh(
        &mut self,
        store: &dyn Store,
        devices: &[&str],
    ) -> Result<i64, StoreError> {
        let generation = match self.generation {
            Some(g) => g,
            None => {
                // Nothing is known here (`forget`, or the start).
                let g = store.route_generation().await?;
                self.generation = Some(g);
                g
            }
        };
        let unknown: Vec<&str> = devices
            .iter()
            .copied()
            .filter(|d| !self.known.contains_key(*d))
            .collect();
        if !unknown.is_empty() {
            self.known.extend(store.device_routes(&unknown).await?);
        }
        Ok(generation)
    }

    /// Forget every route: the generation moved.
    pub(super) fn forget(&mut self) {
        self.generation = None;
        self.known.clear();
    }

    /// Every route looked up since the generation last moved: after
    /// [`Routes::refresh`], those of its devices that have one, and others.
    pub(super) fn known(&self) -> &HashMap<String, DeviceRoute> {
        &self.known
    }
}

#[cfg(test)]
mod tests;
