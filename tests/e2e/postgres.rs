//! The end-to-end suites for the core path, automation, schedules and hostile input again, with
//! every hub's state in PostgreSQL (`util::on_postgres`): the same tests, the second backend.

mod automation;
mod core;
mod hostile;
#[allow(dead_code)]
mod hostile_kit;
mod oauth;
#[allow(dead_code)]
mod oauth_server;
mod scale_out;
mod schedules;
#[allow(dead_code)]
mod util;
