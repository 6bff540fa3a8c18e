//! End-to-end tests that need the two cores to themselves, alone in their test binary (see `fairness`).

mod fairness;
#[allow(dead_code)]
mod hostile_kit;
#[allow(dead_code)]
mod util;
