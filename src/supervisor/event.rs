//! pm's own events, shown as `system` lines. The wording is part of the
//! tested contract: change it here only, and the tests with it.

use std::fmt;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::model::{ExitStatus, How, Secs};

/// What pm does after a spawn failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterSpawnFailure {
    /// It may pass (out of descriptors or memory): try again after a delay.
    Retry(Duration),
    /// It would fail the same way again, or did too often: the instance is
    /// given up on, after this many attempts in a row.
    GiveUp { attempts: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Started {
        name: String,
        pid: i32,
        port: u16,
    },
    /// No process could be started; `next` says what pm does about it.
    SpawnFailed {
        name: String,
        error: String,
        next: AfterSpawnFailure,
    },
    /// Exited and will not run again, without being a failure pm acts on.
    Exited {
        name: String,
        status: ExitStatus,
    },
    Restarting {
        name: String,
        status: ExitStatus,
        delay: Duration,
    },
    GaveUp {
        name: String,
        status: ExitStatus,
        restarts: u32,
    },
    ReleaseDone {
        name: String,
    },
    ReleaseFailed {
        name: String,
        status: ExitStatus,
    },
    ShutdownRequested {
        signal: Signal,
    },
    /// `pm down` asked pm to stop.
    DownRequested,
    /// The stop signals about to go out, per signal the types that get it
    /// (in Procfile order).
    StoppingAll {
        signals: Vec<(Signal, Vec<String>)>,
    },
    /// The guardian died (someone killed it): pm started a new one, or
    /// could not (`error`).
    GuardianDied {
        pid: i32,
        status: ExitStatus,
        new: Result<i32, String>,
    },
    /// An instance's leader (its shell, or the program) exited while other
    /// processes remain in its group: they get the type's stop signal, and
    /// the run ends once the group is empty.
    LeftBehind {
        name: String,
        status: ExitStatus,
        signal: Signal,
    },
    FailedStopping {
        name: String,
    },
    AllDone,
    Killing {
        name: String,
        after: Duration,
    },
    KillingAll,
    /// A type's instances wait for the types they depend on.
    Waiting {
        name: String,
        on: Vec<String>,
    },
    /// The readiness check passed (`successes` times in a row).
    Ready {
        name: String,
    },
    /// The readiness check failed (`failures` times in a row) after passing.
    Unready {
        name: String,
        reason: String,
    },
    /// The liveness check failed `failures` times in a row: restarting.
    Unhealthy {
        name: String,
        reason: String,
    },
    /// `pm restart` of a balanced type: one instance at a time.
    Rolling {
        name: String,
        instances: Vec<String>,
    },
    /// A rolling restart could not go on.
    RollingStopped {
        name: String,
        because: String,
    },
    /// A file a type watches changed: it restarts.
    FileChanged {
        name: String,
        path: String,
    },
    /// The load balancer of a type accepts connections.
    ProxyListening {
        name: String,
        address: String,
    },
    /// A `pm logs --follow` or `pm attach` client fell too far behind.
    ClientDropped {
        what: String,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Started { name, pid, port } => {
                write!(f, "{name} started with pid {pid} on port {port}")
            }
            Event::SpawnFailed { name, error, next } => {
                write!(f, "{name} could not start: {error}; ")?;
                match next {
                    AfterSpawnFailure::Retry(delay) => {
                        write!(f, "trying again in {}", Secs(*delay))
                    }
                    AfterSpawnFailure::GiveUp { attempts: 1 } => write!(f, "giving up on it"),
                    AfterSpawnFailure::GiveUp { attempts } => {
                        write!(f, "gave up after {attempts} attempts")
                    }
                }
            }
            Event::Exited { name, status } => write!(f, "{name} {}", How(*status)),
            Event::Restarting {
                name,
                status,
                delay,
            } => write!(f, "{name} {}, restarting in {}", How(*status), Secs(*delay)),
            Event::GaveUp {
                name,
                status,
                restarts,
            } => {
                let s = if *restarts == 1 { "" } else { "s" };
                write!(
                    f,
                    "{name} {}, gave up after {restarts} restart{s}",
                    How(*status)
                )
            }
            Event::ReleaseDone { name } => {
                write!(f, "{name} completed, starting the other processes")
            }
            Event::ReleaseFailed { name, status } => {
                write!(
                    f,
                    "{name} {}, release failed: starting nothing else",
                    How(*status)
                )
            }
            Event::ShutdownRequested { signal } => {
                write!(f, "{} received, stopping all processes", signal.as_str())
            }
            Event::DownRequested => write!(f, "pm down requested, stopping all processes"),
            Event::StoppingAll { signals } => match signals.as_slice() {
                [(signal, _)] => write!(f, "sending {} to all processes", signal.as_str()),
                _ => {
                    let parts: Vec<String> = signals
                        .iter()
                        .map(|(signal, types)| {
                            format!("{} to {}", signal.as_str(), types.join(", "))
                        })
                        .collect();
                    write!(f, "sending {}", parts.join(", "))
                }
            },
            Event::GuardianDied { pid, status, new } => match new {
                Ok(new) => write!(
                    f,
                    "the guardian (pid {pid}) {}; started a new one (pid {new})",
                    How(*status)
                ),
                Err(error) => write!(
                    f,
                    "the guardian (pid {pid}) {}, and no new one could start: {error}; a SIGKILL of pm would now leave processes behind",
                    How(*status)
                ),
            },
            Event::LeftBehind {
                name,
                status,
                signal,
            } => write!(
                f,
                "{name}'s command {}, sending {} to the processes it left in its group",
                How(*status),
                signal.as_str()
            ),
            Event::FailedStopping { name } => write!(f, "{name} failed, stopping all processes"),
            Event::AllDone => write!(f, "all processes finished"),
            Event::Killing { name, after } => write!(
                f,
                "{name} still running after {}, sending SIGKILL",
                Secs(*after)
            ),
            Event::KillingAll => write!(f, "sending SIGKILL to all processes"),
            Event::Waiting { name, on } => {
                write!(f, "{name} waits for {} to be ready", on.join(", "))
            }
            Event::Ready { name } => write!(f, "{name} is ready"),
            Event::Unready { name, reason } => write!(f, "{name} is not ready: {reason}"),
            Event::Unhealthy { name, reason } => {
                write!(f, "{name} failed its liveness check ({reason}), restarting")
            }
            Event::Rolling { name, instances } => write!(
                f,
                "rolling restart of {name}: {}, one at a time",
                instances.join(", ")
            ),
            Event::RollingStopped { name, because } => {
                write!(f, "rolling restart of {name} stopped: {because}")
            }
            Event::FileChanged { name, path } => {
                write!(f, "{path} changed, restarting {name}")
            }
            Event::ProxyListening { name, address } => {
                write!(f, "balancing {name} on {address}")
            }
            Event::ClientDropped { what } => write!(
                f,
                "dropped {what}: it stopped reading and fell 4 MiB behind"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wording() {
        let n = || "web.1".to_string();
        let cases = [
            (
                Event::Started {
                    name: n(),
                    pid: 42,
                    port: 5000,
                },
                "web.1 started with pid 42 on port 5000",
            ),
            (
                Event::Exited {
                    name: n(),
                    status: ExitStatus::Code(0),
                },
                "web.1 exited with code 0",
            ),
            (
                Event::Exited {
                    name: n(),
                    status: ExitStatus::Signal(Signal::SIGTERM),
                },
                "web.1 killed by SIGTERM",
            ),
            (
                Event::Restarting {
                    name: n(),
                    status: ExitStatus::Code(1),
                    delay: Duration::from_secs(2),
                },
                "web.1 exited with code 1, restarting in 2s",
            ),
            (
                Event::Restarting {
                    name: n(),
                    status: ExitStatus::Code(1),
                    delay: Duration::from_millis(500),
                },
                "web.1 exited with code 1, restarting in 0.5s",
            ),
            (
                Event::GaveUp {
                    name: n(),
                    status: ExitStatus::Code(1),
                    restarts: 5,
                },
                "web.1 exited with code 1, gave up after 5 restarts",
            ),
            (
                Event::ShutdownRequested {
                    signal: Signal::SIGINT,
                },
                "SIGINT received, stopping all processes",
            ),
            (
                Event::DownRequested,
                "pm down requested, stopping all processes",
            ),
            (
                Event::Killing {
                    name: n(),
                    after: Duration::from_millis(1500),
                },
                "web.1 still running after 1.5s, sending SIGKILL",
            ),
        ];
        for (event, text) in cases {
            assert_eq!(event.to_string(), text);
        }
    }
}
