//! Integration tests: the real `pm` binary on real Procfiles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod attach;
mod audit;
mod audit_expected;
mod background;
mod balance;
mod balance_cmd;
mod cli_habits;
mod containment;
mod control;
mod corpus;
mod envfiles;
mod errors;
mod examples;
mod export;
mod inputs;
mod install;
mod lifetime;
mod log_ready;
mod logs;
mod output;
mod output_failures;
mod run_check;
mod shop;
mod shutdown;
mod socket_trust;
mod spawn_errors;
mod supervision;
mod watch;
