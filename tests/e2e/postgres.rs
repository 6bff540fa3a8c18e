//! The end-to-end suites for the core path, automation, schedules, hostile input and traces again, with
//! every hub's state in PostgreSQL (`util::on_postgres`): the same tests, the second backend.

mod automation;
mod core;
mod hostile;
#[allow(dead_code)]
mod hostile_kit;
mod oauth;
#[allow(dead_code)]
mod oauth_server;
#[allow(dead_code)]
mod receiver;
mod scale_out;
mod schedules;
mod traces;
#[allow(dead_code)]
mod util;
mod versions;
