//! `pm completions SHELL` and the values the completion scripts ask pm for.
//!
//! The scripts are clap_complete's dynamic ones: the shell calls `pm` again
//! with `PM_COMPLETE=SHELL` set and the words typed so far, and pm answers
//! from its own command definition, so every subcommand and flag completes
//! as it is defined. Process names come from the Procfile of the current
//! directory (or the nearest one up), instances from the pm running there
//! when it answers. Completing never starts, stops or writes anything, and
//! never prints an error: a Procfile that cannot be read completes nothing.

use std::io::Write;
use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::engine::CompletionCandidate;
use clap_complete::env::{Bash, CompleteEnv, EnvCompleter, Fish, Zsh};

use crate::cli::{Cli, CompletionsArgs, Shell};
use crate::config::procfile;
use crate::control::protocol::Command;
use crate::control::{client, find_root, socket_path};
use crate::error::{Error, Result};

/// The variable that makes `pm` answer a completion request.
pub const VAR: &str = "PM_COMPLETE";

/// Answers a completion request and exits when the shell made one; returns
/// at once otherwise. Called before the command line is parsed.
pub fn answer_if_asked() {
    CompleteEnv::with_factory(Cli::command)
        .var(VAR)
        .bin("pm")
        .completer("pm")
        .complete();
}

/// `pm completions SHELL`: prints the script that registers pm's completion.
pub fn completions(args: CompletionsArgs) -> Result<i32> {
    let shell: &dyn EnvCompleter = match args.shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
    };
    let mut script = Vec::new();
    shell
        .write_registration(VAR, "pm", "pm", "pm", &mut script)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&script).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(0),
        // `pm completions bash | head` is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Error::Internal(format!("stdout: {e}"))),
    }
}

/// The root of the app the current directory is in.
fn root() -> Option<PathBuf> {
    let here = std::env::current_dir().ok()?;
    find_root(&here)
}

/// The process types of the app's Procfile, in its order.
fn type_names() -> Vec<String> {
    let Some(root) = root() else {
        return Vec::new();
    };
    let path = root.join("Procfile");
    let Ok(text) = crate::input::read(&path) else {
        return Vec::new();
    };
    match procfile::parse(&text, &path.display().to_string()) {
        Ok(procfile) => procfile.types.into_iter().map(|t| t.name).collect(),
        Err(_) => Vec::new(),
    }
}

/// The instances of the pm running for the app, when one answers.
fn running_instances() -> Option<Vec<String>> {
    let root = root()?;
    let socket = socket_path(None, &root);
    if !socket.exists() {
        return None;
    }
    let reply = client::send(&socket, Command::Ps).ok()?;
    let instances = reply.instances.filter(|_| reply.ok)?;
    Some(instances.into_iter().map(|i| i.name).collect())
}

/// Process types: `pm start NAME`, `pm check NAME`.
pub fn types() -> Vec<CompletionCandidate> {
    type_names()
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// Types and instances: `pm restart web` or `web.2`. The instances are the
/// running pm's; without one, each type's first.
pub fn targets() -> Vec<CompletionCandidate> {
    let types = type_names();
    let instances =
        running_instances().unwrap_or_else(|| types.iter().map(|t| format!("{t}.1")).collect());
    let mut names = types;
    for instance in instances {
        if !names.contains(&instance) {
            names.push(instance);
        }
    }
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// `pm scale NAME=`: each type, ready for its count.
pub fn counts() -> Vec<CompletionCandidate> {
    type_names()
        .into_iter()
        .map(|t| CompletionCandidate::new(format!("{t}=")))
        .collect()
}
