//! pm: a Procfile-driven process manager.
//!
//! Inputs (Procfile, env files, formation, flags) are parsed by pure functions
//! in [`config`] into one [`plan::Plan`], which every subcommand reads: the
//! supervisor ([`supervisor`] decides, [`runtime`] acts through [`process`]),
//! `pm check` and `pm run`.
//!
//! Only what the binary, the fuzz targets and the integration tests use is
//! public; the rest is `pub(crate)`, so the compiler finds dead code.

pub mod app;
pub(crate) mod audit;
pub mod cli;
pub mod config;
pub(crate) mod console;
pub(crate) mod control;
pub mod error;
pub(crate) mod export;
pub(crate) mod health;
pub(crate) mod input;
pub mod model;
pub(crate) mod output;
pub(crate) mod plan;
pub(crate) mod process;
pub(crate) mod proxy;
pub(crate) mod runtime;
pub(crate) mod signals;
pub(crate) mod supervisor;
pub mod syntax;
pub mod watch;
