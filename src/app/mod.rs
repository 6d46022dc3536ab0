//! The glue of each subcommand: load the Plan, hand it to the part of pm that
//! acts on it, return the exit code.

pub mod attach;
pub mod audit;
pub mod balance;
pub mod check;
pub mod complete;
pub mod control;
pub mod export;
pub mod load;
pub mod logs;
pub mod man;
pub mod run;
pub mod start;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Runs one command line; returns the exit code.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.into_command() {
        Command::Start(args) => start::start(args),
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(args),
        Command::Ps(args) => control::ps(args),
        Command::Restart(args) => control::restart(args),
        Command::Stop(args) => control::stop(args),
        Command::Scale(args) => control::scale(args),
        Command::Wait(args) => control::wait_ready(args),
        Command::Down(args) => control::down(args),
        Command::Logs(args) => logs::logs(args),
        Command::Attach(args) => attach::attach(args),
        Command::Export(args) => export::export(args),
        Command::Audit(args) => audit::audit(args),
        Command::Guardian(args) => crate::process::guardian_main(args.cgroup.as_deref()),
        Command::Balance(args) => balance::balance(args),
        Command::Probe(args) => balance::probe(args),
        Command::Completions(args) => complete::completions(args),
        Command::Man(args) => man::man(args),
    }
}
