//! The `pm` binary: parse the command line, run it, map the outcome to an exit code.

use clap::Parser;

fn main() {
    let cli = pm::cli::Cli::parse();
    let code = match pm::app::run(cli) {
        Ok(code) => code,
        Err(error) => {
            for line in error.lines() {
                eprintln!("pm: {line}");
            }
            error.exit_code()
        }
    };
    std::process::exit(code);
}
