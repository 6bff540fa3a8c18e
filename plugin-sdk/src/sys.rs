//! The host imports the guest helpers call: the component's WIT imports, or, in a native test
//! with the `harness` feature, the in-memory host of [`crate::harness`]. Both have the same
//! functions, so a connector's code is the same in the hub and in its unit tests.

#[cfg(not(all(feature = "harness", not(target_arch = "wasm32"))))]
pub(crate) use crate::bindings::hub::connector::host::*;

#[cfg(all(feature = "harness", not(target_arch = "wasm32")))]
pub(crate) use crate::harness::imports::*;
