//! The runtime's side of `pm logs` and `pm attach`: opening their streams
//! (the supervisor names the instances, the scrollback holds the lines) and
//! carrying out what an attached client sends: bytes to the instance's
//! input (the write end of its stdin pipe, or its pty's master), its window
//! size to its pty, Ctrl-C to its process group.

use tokio::sync::mpsc;

use super::Runtime;
use crate::control::protocol::{STREAM_VERSION, StreamCommand, StreamStart, VERSION};
use crate::control::{Input, Stream};
use crate::model::{ExitStatus, How};
use crate::output::{Filter, SYSTEM_NAME};
use crate::process::{Group, InputPipe};
use nix::sys::signal::Signal;

/// What a client may send ahead of the instance reading it.
const INPUT_QUEUE: usize = 64;

/// An attached client, seen from the runtime.
pub(super) struct Attachment {
    name: String,
    /// The task that writes what the client sends; it ends when the client
    /// detaches, and is aborted when the run ends.
    task: tokio::task::AbortHandle,
}

impl Runtime {
    /// Opens a `pm logs` or `pm attach` stream.
    pub(super) fn open_stream(&mut self, command: StreamCommand) -> Result<Stream, String> {
        let start = StreamStart {
            version: VERSION,
            ok: true,
            stream: STREAM_VERSION,
            width: self.style.width,
            timestamps: self.style.timestamps,
            name: None,
            pty: false,
        };
        match command {
            StreamCommand::Logs {
                targets,
                lines,
                follow,
            } => {
                let filter = if targets.is_empty() {
                    Filter::All
                } else {
                    let (system, instances): (Vec<String>, Vec<String>) =
                        targets.into_iter().partition(|t| t == SYSTEM_NAME);
                    let mut named = self.sup.log_targets(&instances)?;
                    named.names.extend(system);
                    Filter::Only {
                        names: named.names,
                        types: named.types,
                    }
                };
                let (lines, feed) =
                    self.scrollback
                        .logs(filter, lines, follow, "a `pm logs --follow` client");
                Ok(Stream::Logs { start, lines, feed })
            }
            StreamCommand::Attach { target, lines } => self.attach(&target, lines, start),
        }
    }

    fn attach(&mut self, target: &str, lines: usize, start: StreamStart) -> Result<Stream, String> {
        let id = self.sup.attach_target(target)?;
        let instance = &self.sup.instances()[id].spec;
        let name = instance.name.clone();
        let pty = self.plan.types[instance.type_index].pty;
        if self
            .attached
            .get(&id)
            .is_some_and(|a| !a.task.is_finished())
        {
            return Err(format!(
                "{name} is already attached: one pm attach per instance at a time"
            ));
        }
        let Some(run) = self
            .runs
            .values()
            .find(|run| run.id == id && run.exit.is_none())
        else {
            return Err(format!("{name} is not running"));
        };
        let input = match run.stdin.as_ref().or(run.master.as_ref()) {
            Some(fd) => Some(
                fd.try_clone()
                    .map_err(|e| format!("cannot attach to {name}: {e}"))?,
            ),
            None => None,
        };
        let group = run.group;
        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
        let task = tokio::spawn(carry(input_rx, input, group));
        self.attached.insert(
            id,
            Attachment {
                name: name.clone(),
                task: task.abort_handle(),
            },
        );
        let (lines, feed) = self.scrollback.attach(&name, lines);
        Ok(Stream::Attach {
            start: StreamStart {
                name: Some(name),
                pty,
                ..start
            },
            lines,
            feed,
            input: input_tx,
        })
    }

    /// The run of instance `id` ended: so does its attachment, after the
    /// last of its output.
    pub(super) fn end_attachment(&mut self, id: usize, status: ExitStatus) {
        if let Some(attachment) = self.attached.remove(&id) {
            attachment.task.abort();
            let message = format!("{} {}", attachment.name, How(status));
            self.scrollback.detach(&attachment.name, &message);
        }
    }
}

/// Carries out what one attached client sends, until it detaches.
async fn carry(
    mut requests: mpsc::Receiver<Input>,
    input: Option<std::os::fd::OwnedFd>,
    group: Group,
) {
    let pipe = input.and_then(|fd| InputPipe::register(fd).ok());
    while let Some(request) = requests.recv().await {
        match request {
            Input::Bytes(bytes) => {
                if let Some(pipe) = &pipe {
                    // A closed input (the program closed its stdin) leaves
                    // nothing to write to; the output goes on.
                    let _ = pipe.write_all(&bytes).await;
                }
            }
            Input::Resize { rows, cols } => {
                if let Some(pipe) = &pipe {
                    let _ = pipe.set_window_size(rows, cols);
                }
            }
            Input::Interrupt => {
                group.signal(Signal::SIGINT);
            }
        }
    }
}
