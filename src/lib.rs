//! pm: a Procfile-driven process manager.
//!
//! Inputs (Procfile, env files, formation, flags) are parsed by pure functions
//! in [`config`] into one [`plan::Plan`], which every subcommand reads: the
//! supervisor ([`supervisor`] decides, [`runtime`] acts through [`process`]),
//! `pm check` and `pm run`.

pub mod app;
pub mod audit;
pub mod cli;
pub mod config;
pub mod control;
pub mod error;
pub mod export;
pub mod health;
pub mod input;
pub mod model;
pub mod output;
pub mod plan;
pub mod process;
pub mod proxy;
pub mod runtime;
pub mod signals;
pub mod supervisor;
pub mod syntax;
