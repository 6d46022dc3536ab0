//! `pm run`: replace pm with one command that sees the environment a process
//! would get (env files, PORT = the base port).
//!
//! pm execs the command rather than supervising it: the command keeps pm's
//! pid, receives every signal sent to it directly, and its exit code is pm's.

use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::app::load::{self, LoadOptions};
use crate::cli::RunArgs;
use crate::error::{Error, Result, io_message};

pub fn run(args: RunArgs) -> Result<i32> {
    let options = LoadOptions {
        procfile_optional: true,
        ..LoadOptions::default()
    };
    let (plan, _) = load::load(&args.app, &options)?;
    let (first, rest) = match args.command.split_first() {
        Some(split) => split,
        None => return Err(Error::Invalid("run: no command given".into())),
    };

    let mut cmd = if let Some(spec) = plan.type_named(first) {
        // A process type: its Procfile command, with any extra arguments
        // appended, through the shell as `pm start` runs it.
        let mut line = spec.command.clone();
        for arg in rest {
            line.push(' ');
            line.push_str(&shell_quote(arg));
        }
        shell(&line)
    } else if rest.is_empty() {
        // One argument is a command line: `pm run 'echo $PORT'`.
        shell(first)
    } else {
        // Several arguments are a program and its arguments, untouched.
        let mut cmd = Command::new(first);
        cmd.args(rest);
        cmd
    };
    cmd.current_dir(&plan.root);
    for (key, value) in plan.env() {
        cmd.env(key, value);
    }
    cmd.env("PORT", plan.base_port.to_string());
    let error = cmd.exec();
    let code = match error.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    Err(Error::Exec {
        message: format!("run: cannot run \"{first}\": {}", io_message(&error)),
        code,
    })
}

fn shell(line: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(line);
    cmd
}

/// Quotes one argument for /bin/sh.
pub fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc"), "abc");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }
}
