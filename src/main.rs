//! The `pm` binary: parse the command line, run it, map the outcome to an exit code.

use clap::Parser;

fn main() {
    // A bug must never leave processes behind: report it in one line and
    // exit at once, from whatever thread panicked. Exiting closes the
    // guardian's pipe, and the guardian SIGKILLs every process group pm
    // started (children also get PR_SET_PDEATHSIG).
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("pm: internal error: {message}{place}");
        std::process::exit(70);
    }));

    // A shell asking for completions (PM_COMPLETE set) is answered here.
    pm::app::complete::answer_if_asked();
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
