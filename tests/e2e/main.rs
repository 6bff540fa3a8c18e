//! End-to-end tests: each starts the real `hub` binary on a loopback port with its own data
//! folder and config, and talks to it over HTTP like a provider and an operator would.

mod actions;
mod alerts;
mod api_errors;
mod app;
mod author;
mod automation;
mod backup;
mod browser;
mod calcom;
mod chain;
mod console;
mod console_edges;
mod core;
mod discovery;
mod email;
mod gcal;
mod gcal_server;
mod hostile;
mod hostile_kit;
mod hubspot;
mod listeners;
mod make;
mod masking;
mod oauth;
#[allow(dead_code)]
mod oauth_server;
mod postmark;
mod receiver;
mod registration;
mod registration_postmark;
mod registration_retell;
mod registration_sendgrid;
mod registration_twilio;
mod reload;
mod resend;
mod retell;
mod salesforce;
mod salesforce_server;
mod schedules;
mod sendgrid;
mod tools;
mod traces;
mod twilio;
mod util;
mod zapier;
