//! OS signals turned into one typed stream for the runtime.
//!
//! Handlers are installed once, before any instance is spawned, so no SIGCHLD
//! or SIGTERM is missed. This module only reports; it never acts on a signal.

use std::io;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// A signal pm reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEvent {
    /// SIGINT, SIGTERM or SIGHUP: stop everything gracefully (a second one
    /// while stopping kills at once).
    Shutdown(nix::sys::signal::Signal),
    /// SIGCHLD: some child changed state; time to reap.
    Child,
}

pub struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
    chld: Signal,
}

impl Signals {
    /// Installs the handlers. Must run inside the tokio runtime.
    pub fn install() -> io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            chld: signal(SignalKind::child())?,
        })
    }

    /// The next signal. SIGCHLD is reported last when several are pending, so
    /// that a shutdown request is never delayed behind a burst of exits.
    pub async fn recv(&mut self) -> SignalEvent {
        use nix::sys::signal::Signal as S;
        tokio::select! {
            biased;
            _ = self.int.recv() => SignalEvent::Shutdown(S::SIGINT),
            _ = self.term.recv() => SignalEvent::Shutdown(S::SIGTERM),
            _ = self.hup.recv() => SignalEvent::Shutdown(S::SIGHUP),
            _ = self.chld.recv() => SignalEvent::Child,
        }
    }
}
