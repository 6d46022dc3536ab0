//! The control clients waiting for an answer: `pm wait`, and `pm restart`,
//! `pm stop` and `pm scale` without `--no-wait`. Each holds a goal (what
//! the supervisor says it waits for), a deadline, the reply to send once the
//! goal is reached, and where that reply goes.
//!
//! The runtime settles them after every batch of events and wakes at the
//! time [`Waiters::settle`] returns; nothing polls. Whether a goal is
//! reached is the supervisor's to say ([`Supervisor::progress`]).

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::control::protocol::Reply;
use crate::model::Secs;
use crate::supervisor::{Goal, Progress, Supervisor};

struct Waiter {
    goal: Goal,
    deadline: Instant,
    timeout: Duration,
    /// Sent once the goal is reached.
    done: Reply,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
pub struct Waiters {
    waiting: Vec<Waiter>,
}

impl Waiters {
    /// Waits up to `timeout` for `goal`, then answers `done` (or why not).
    pub fn add(
        &mut self,
        goal: Goal,
        timeout: Duration,
        done: Reply,
        reply: oneshot::Sender<Reply>,
        now: Instant,
    ) {
        self.waiting.push(Waiter {
            goal,
            deadline: now + timeout,
            timeout,
            done,
            reply,
        });
    }

    /// Answers every waiter whose goal is reached, cannot be, or whose time
    /// is up; returns when to look again if nothing happens before.
    pub fn settle(&mut self, sup: &Supervisor, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut keep = Vec::with_capacity(self.waiting.len());
        for w in self.waiting.drain(..) {
            if w.reply.is_closed() {
                // The client left: nobody to answer.
                continue;
            }
            let answer = match sup.progress(&w.goal, now) {
                Progress::Done => Some(w.done.clone()),
                Progress::Failed(why) => Some(Reply::error(why)),
                Progress::Pending { name, .. } if w.deadline <= now => Some(Reply::error(format!(
                    "timed out after {} waiting for {name}",
                    Secs(w.timeout)
                ))),
                Progress::Pending { recheck, .. } => {
                    for t in recheck.into_iter().chain([w.deadline]) {
                        next = Some(next.map_or(t, |n| n.min(t)));
                    }
                    None
                }
            };
            match answer {
                Some(reply) => {
                    let _ = w.reply.send(reply);
                }
                None => keep.push(w),
            }
        }
        self.waiting = keep;
        next
    }
}
