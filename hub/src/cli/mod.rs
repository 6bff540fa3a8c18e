//! The `hub` binary's subcommands that need more than a few lines; `main.rs` parses the command
//! line and hands each its arguments. Not part of the library: they only call it.

pub mod deliveries;
pub mod migrate;
pub mod new_connector;
pub mod seal;
pub mod simulate;
pub mod test_connector;
pub mod versions;
