//! The miCDR rules beyond the Bundle forms of `bundle/contribution.rs` (`EngineConfig::contribution_rules`,
//! the server's `--mode micdr`; Ontario MI guide §8 items 15 and 17–19): the patient and provider registry
//! check (`registry.rs`), the report lifecycle and addenda (`lifecycle.rs`), the DocumentReference index
//! entry of every order, study and report (`index_entry.rs`), and the rules of single requests
//! (`single.rs`). Transactions call them while planning and applying; single writes call them from
//! `write.rs` and `patch/`. With the rules off none of them runs.

mod index_entry;
pub(crate) mod lifecycle;
pub(crate) mod registry;
mod single;

pub use self::index_entry::INDEX_ENTRY_SYSTEM;
pub(crate) use self::index_entry::Source;
pub use self::registry::{
    AcceptAll, LocalRegistry, PersonIdentifier, PersonRegistry, RegistryFuture, Verdict,
};
