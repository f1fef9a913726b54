//! Host bindings of the WIT contract, one frozen module per released
//! version; `latest` names the newest. Old versions convert into the host's
//! own types (`crate::verdict`, `crate::change`), so everything after the
//! call is version-independent.

pub mod v0_1;

pub use v0_1 as latest;

/// The WIT package every plugin's exports belong to.
pub const PACKAGE: &str = "cairn:plugin";
