//! The kits: each is a suite of groups of tests. `onmi` checks the Ontario MI FHIR interactions.

mod onmi;

use crate::context::Ctx;
use crate::model::SuiteDef;

/// The kits there are.
pub(crate) const NAMES: [&str; 1] = ["onmi"];

/// The suite of a kit, by name.
pub(crate) fn suite(name: &str) -> Option<SuiteDef> {
    match name {
        "onmi" => Some(onmi::suite()),
        _ => None,
    }
}

/// Deletes what the run created; (deleted, not deleted).
pub(crate) async fn cleanup(ctx: &mut Ctx) -> (usize, usize) {
    onmi::cleanup(ctx).await
}
