//! Timing-sensitive end-to-end tests, alone in their test binary (see `fairness`).

mod fairness;
#[allow(dead_code)]
mod hostile_kit;
#[allow(dead_code)]
mod util;
