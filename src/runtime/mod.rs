//! The runtime: the actor that owns the supervisor and carries out its
//! actions with real processes. It only acts: what an event means (a
//! restart, a stop, which instances a request names, what a scale changes)
//! is the supervisor's to decide.
//!
//! One task owns all state. It `select!`s over one receiver per event
//! source, each sending its own type: OS signals ([`SignalEvent`]), relays
//! ([`RelayEvent`]), the writer thread (stdout is gone), health checks
//! ([`health::Report`]), control connections ([`control::Request`]), the
//! file watcher ([`files::Notice`]), and
//! the supervisor's next deadline. It never sleeps, so a second Ctrl-C is
//! answered at once. SIGCHLD leads to [`process::reap`], the only
//! `waitpid(-1)` in pm. No event source imports the runtime.

mod attach;
pub mod relay;
mod waiters;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::{oneshot, watch};

use crate::config::pm_toml::{Check, Probe, WatchGlobs};
use crate::control::protocol::{Command, Reply};
use crate::control::{self, reply};
use crate::health::{self, ExecStarted, Kind, Report, Verdict};
use crate::supervisor::{Event, Phase};
use crate::watch as files;

use crate::config::command::exec_form;
use crate::error::{Error, Result, io_message};
use crate::model::ExitStatus;
use crate::output::scrollback::ScrollbackEvents;
use crate::output::{Clock, Framer, Notice, OutputTx, SYSTEM_NAME, Scrollback};
use crate::plan::Plan;
use crate::plan::RELEASE;
use crate::process::{self, Containment, Group, Guardian, SpawnSpec, Stdin};
use crate::signals::{SignalEvent, Signals};
use crate::supervisor::{Action, Supervisor};
use relay::RelayEvent;
use waiters::Waiters;

/// How output is shown: computed once from the flags and the terminal.
#[derive(Debug, Clone, Copy)]
pub struct OutputStyle {
    pub color: bool,
    pub timestamps: bool,
    pub width: usize,
}

/// One run of one instance, from spawn until its exit has been handled.
///
/// A run is its process group, not its leader: it ends once the group is
/// empty (and its output drained), whenever the leader itself exited.
struct Run {
    id: usize,
    group: Group,
    /// The leader's status, once it has been reaped.
    exit: Option<ExitStatus>,
    /// The group is empty: the run is ending (its output is being drained).
    ending: bool,
    output_open: bool,
    drain: UnboundedSender<()>,
    /// The write end of the instance's stdin, held open for the run's life
    /// so that a program reading stdin waits instead of seeing end-of-file.
    #[allow(dead_code)]
    stdin: Option<std::os::fd::OwnedFd>,
    /// Its health check tasks, aborted when the run ends.
    checks: Vec<tokio::task::AbortHandle>,
    /// A pty type's master, a second descriptor of it: where `pm attach`
    /// writes (a pipe type's input goes to `stdin`).
    master: Option<std::os::fd::OwnedFd>,
}

/// How often a run whose leader exited is looked at while other processes
/// remain in its group, besides every reap: the last of them may be reaped
/// by a parent of its own, which pm does not hear of.
const GROUP_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// How often pm looks for adopted orphans to record with the guardian when
/// it has no cgroup.
const ADOPTION_SCAN: std::time::Duration = std::time::Duration::from_secs(2);

/// A balanced type's listener, bound before anything starts: (type index,
/// address as shown, the socket).
pub type ProxyListener = (usize, String, std::net::TcpListener);

/// A process type's load balancer.
struct Balancer {
    type_index: usize,
    address: String,
    listener: Option<std::net::TcpListener>,
    rotation: watch::Sender<Vec<u16>>,
}

pub struct Runtime {
    plan: Plan,
    sup: Supervisor,
    guardian: Guardian,
    out: OutputTx,
    style: OutputStyle,
    system: Framer,
    clock: Clock,
    /// One channel per event source; the runtime keeps a sender of each so
    /// that none closes while it runs.
    relay_tx: UnboundedSender<RelayEvent>,
    relays: UnboundedReceiver<RelayEvent>,
    health_tx: UnboundedSender<Report>,
    health: UnboundedReceiver<Report>,
    request_tx: UnboundedSender<control::Request>,
    requests: UnboundedReceiver<control::Request>,
    change_tx: UnboundedSender<files::Notice>,
    changes: UnboundedReceiver<files::Notice>,
    /// The file watcher, while it watches.
    _watcher: Option<files::Watcher>,
    /// The writer thread's one event: a write to stdout failed.
    stdout_closed: Option<oneshot::Receiver<std::io::Error>>,
    /// A write error other than a closed reader: pm's error once stopped.
    output_error: Option<std::io::Error>,
    stream_tx: UnboundedSender<control::StreamOpen>,
    streams: UnboundedReceiver<control::StreamOpen>,
    /// Every line of output, kept for `pm logs` and `pm attach`.
    scrollback: Scrollback,
    /// The scrollback's own events: clients dropped for falling behind.
    scrollback_events: ScrollbackEvents,
    /// Attached clients, by instance id.
    attached: HashMap<usize, attach::Attachment>,
    runs: HashMap<i32, Run>,
    /// Process groups pm started that may still have members.
    groups: BTreeSet<Group>,
    /// Relays whose output has not ended yet.
    open_relays: usize,
    /// Set once stragglers are being signaled; new orphans get it too.
    straggler_signal: Option<Signal>,
    /// The groups and the adopted orphans already sent a straggler signal.
    signaled_groups: HashSet<(Group, Signal)>,
    signaled: HashSet<(i32, Signal)>,
    /// The control socket, served once the runtime runs.
    control: Option<std::os::unix::net::UnixListener>,
    balancers: Vec<Balancer>,
    /// Where the balancers run (their own threads, which end with this).
    proxy_threads: Option<crate::proxy::Threads>,
    /// Running `exec` probes: where their exit status goes.
    probes: HashMap<i32, oneshot::Sender<ExitStatus>>,
    /// Control clients waiting for something to be done.
    waiters: Waiters,
    /// In the background (`pm start --detach`): told once pm is up.
    announcer: Option<process::Announcer>,
    /// pm's cgroup where it could make one, and each instance's in it (by
    /// instance id, kept across the instance's runs).
    containment: Option<Containment>,
    cgroups: HashMap<usize, process::Cgroup>,
    last_adoption_scan: Instant,
    /// A signal or `pm down` asked pm to stop (not: everything finished).
    shutdown_asked: bool,
}

impl Runtime {
    pub fn new(
        plan: Plan,
        guardian: Guardian,
        out: OutputTx,
        style: OutputStyle,
        stdout_closed: oneshot::Receiver<std::io::Error>,
    ) -> Runtime {
        let sup = Supervisor::new(&plan);
        let (relay_tx, relays) = mpsc::unbounded_channel();
        let (health_tx, health) = mpsc::unbounded_channel();
        let (request_tx, requests) = mpsc::unbounded_channel();
        let (stream_tx, streams) = mpsc::unbounded_channel();
        let (scrollback, scrollback_events) = Scrollback::new(plan.scrollback);
        let system = Framer::system(style.width, style.color, style.timestamps)
            .recording(scrollback.recorder(SYSTEM_NAME, None, None));
        let (change_tx, changes) = mpsc::unbounded_channel();
        Runtime {
            plan,
            sup,
            guardian,
            out,
            style,
            system,
            clock: Clock::default(),
            relay_tx,
            relays,
            health_tx,
            health,
            request_tx,
            requests,
            stream_tx,
            streams,
            scrollback,
            scrollback_events,
            attached: HashMap::new(),
            change_tx,
            changes,
            _watcher: None,
            stdout_closed: Some(stdout_closed),
            output_error: None,
            runs: HashMap::new(),
            groups: BTreeSet::new(),
            open_relays: 0,
            straggler_signal: None,
            signaled_groups: HashSet::new(),
            signaled: HashSet::new(),
            control: None,
            balancers: Vec::new(),
            proxy_threads: None,
            probes: HashMap::new(),
            waiters: Waiters::default(),
            announcer: None,
            containment: None,
            cgroups: HashMap::new(),
            last_adoption_scan: Instant::now(),
            shutdown_asked: false,
        }
    }

    /// Runs every instance in a cgroup of its own under pm's.
    pub fn with_containment(mut self, containment: Option<Containment>) -> Runtime {
        self.containment = containment;
        self
    }

    /// Balances each proxied type over its listener (bound by the caller,
    /// so that a port in use fails before anything starts).
    pub fn with_proxies(
        mut self,
        proxies: Option<(Vec<ProxyListener>, crate::proxy::Threads)>,
    ) -> Runtime {
        let Some((listeners, threads)) = proxies else {
            return self;
        };
        self.proxy_threads = Some(threads);
        for (type_index, address, listener) in listeners {
            let (rotation, _) = watch::channel(Vec::new());
            self.balancers.push(Balancer {
                type_index,
                address,
                listener: Some(listener),
                rotation,
            });
        }
        self
    }

    /// Says "up" to the foreground pm of `pm start --detach` once the
    /// release phase (if any) is over: the socket listens already.
    pub fn with_announcer(mut self, announcer: Option<process::Announcer>) -> Runtime {
        self.announcer = announcer;
        self
    }

    /// Serves `pm ps`, `pm restart`, `pm stop` and `pm scale` on this socket.
    pub fn with_control(mut self, listener: std::os::unix::net::UnixListener) -> Runtime {
        self.control = Some(listener);
        self
    }

    /// Supervises until everything has ended; returns pm's exit code.
    pub async fn run(mut self) -> Result<i32> {
        let mut signals =
            Signals::install().map_err(|e| Error::os("cannot install signal handlers", e))?;
        if let Some(listener) = self.control.take() {
            tokio::spawn(control::server::serve(
                listener,
                self.request_tx.clone(),
                self.stream_tx.clone(),
            ));
        }
        if let Some(threads) = &self.proxy_threads {
            for b in &mut self.balancers {
                if let Some(listener) = b.listener.take() {
                    threads
                        .serve(listener, &b.rotation.subscribe())
                        .map_err(|e| Error::os("cannot start the load balancer", e))?;
                }
            }
        }
        let listening: Vec<Event> = self
            .balancers
            .iter()
            .map(|b| Event::ProxyListening {
                name: self.plan.types[b.type_index].name.clone(),
                address: b.address.clone(),
            })
            .collect();
        for event in listening {
            self.say(&event.to_string());
        }
        self.start_watching();
        let actions = self.sup.start(Instant::now());
        self.apply(actions);
        let code = loop {
            // Reap first: a child may have ended before the handlers existed.
            self.reap();
            let now = Instant::now();
            let recheck = self.waiters.settle(&self.sup, now);
            if self.sup.phase() == Phase::Running
                && let Some(announcer) = self.announcer.take()
            {
                announcer.up();
            }
            if let Some(code) = self.sup.finished(|| self.descendants_left(), now) {
                break code;
            }
            let deadline = self.sup.next_deadline(now);
            let poll_groups = self
                .runs
                .values()
                .any(|run| run.exit.is_some() && !run.ending);
            // Without a cgroup, orphans pm adopts are recorded with the
            // guardian; their adoption makes no signal, so pm looks now and
            // then (and on every reap and control request).
            let adoption_scan = (self.containment.is_none() && !self.runs.is_empty())
                .then(|| self.last_adoption_scan + ADOPTION_SCAN);
            tokio::select! {
                biased;
                signal = signals.recv() => match signal {
                    SignalEvent::Shutdown(sig) => {
                        self.shutdown_asked = true;
                        let actions = self.sup.shutdown(sig, Instant::now());
                        self.apply(actions);
                        self.give_up_on_stalled_output();
                    }
                    SignalEvent::Child => self.reap(),
                },
                Some(event) = self.relays.recv() => self.on_relay(event),
                error = closed(&mut self.stdout_closed) => self.output_failed(error),
                Some(report) = self.health.recv() => self.on_health(report),
                Some(request) = self.requests.recv() => {
                    if self.containment.is_none() {
                        self.watch_adopted();
                    }
                    self.control(request);
                    // `pm down` stops pm as a signal does.
                    self.give_up_on_stalled_output();
                }
                _ = sleep_until(adoption_scan), if adoption_scan.is_some() => self.watch_adopted(),
                Some(open) = self.streams.recv() => {
                    let stream = self.open_stream(open.command);
                    let _ = open.reply.send(stream);
                }
                Some(notice) = self.scrollback_events.notices.recv() => {
                    let Notice::Dropped { what } = notice;
                    self.say(&Event::ClientDropped { what }.to_string());
                }
                Some(notice) = self.changes.recv() => match notice {
                    files::Notice::Changed(change) => {
                        let actions = self.sup.restart_watched(
                            change.type_index,
                            &change.path,
                            Instant::now(),
                        );
                        self.apply(actions);
                    }
                    files::Notice::Trouble(line) => self.say(&line),
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let actions = self.sup.tick(Instant::now());
                    self.apply(actions);
                    self.give_up_on_stalled_output();
                }
                // A waiting client's time is up, or an instance has settled.
                _ = sleep_until(recheck), if recheck.is_some() => {}
                _ = tokio::time::sleep(GROUP_POLL), if poll_groups => self.end_empty_runs(),
            }
        };
        self.give_up_on_stalled_output();
        self.wait_for_relays().await;
        self.end_streams().await;
        // Written to the end, unless stdout takes nothing for a while or a
        // shutdown signal says not to wait.
        let give_up = self.shutdown_asked;
        self.out
            .end(give_up, async {
                while !matches!(signals.recv().await, SignalEvent::Shutdown(_)) {}
            })
            .await;
        self.guardian.release();
        match self.output_error.take() {
            Some(e) => Err(Error::File {
                path: "stdout".into(),
                message: io_message(&e),
            }),
            None => Ok(code),
        }
    }

    /// Watches the files of the types that have `watch` globs; a failure
    /// (too many directories for inotify, say) is a `system` line, and pm
    /// goes on without watching.
    fn start_watching(&mut self) {
        let types: Vec<(usize, &WatchGlobs)> = self
            .plan
            .types
            .iter()
            .enumerate()
            .filter_map(|(t, spec)| spec.watch.as_ref().map(|w| (t, w)))
            .collect();
        if types.is_empty() {
            return;
        }
        let started = files::Rules::new(&self.plan.root, &types)
            .and_then(|rules| files::start(rules, self.change_tx.clone()));
        match started {
            Ok(watcher) => self._watcher = Some(watcher),
            Err(e) => self.say(&format!("{e}; files are not watched")),
        }
    }

    fn on_relay(&mut self, event: RelayEvent) {
        match event {
            RelayEvent::Drained(pid) => self.output_done(pid, false),
            RelayEvent::Closed(pid) => {
                self.open_relays = self.open_relays.saturating_sub(1);
                self.output_done(pid, true);
            }
        }
    }

    fn on_health(&mut self, report: Report) {
        match report {
            Report::Verdict { pid, verdict } => {
                let Some(id) = self.live_run(pid) else {
                    return;
                };
                let now = Instant::now();
                let actions = match verdict {
                    Verdict::Ready => self.sup.ready_changed(id, true, String::new(), now),
                    Verdict::Unready(reason) => self.sup.ready_changed(id, false, reason, now),
                    Verdict::LiveFailed(reason) => self.sup.live_failed(id, reason, now),
                };
                self.apply(actions);
            }
            Report::Exec {
                instance_pid,
                command,
                reply,
            } => {
                let _ = reply.send(self.start_probe(instance_pid, &command));
            }
        }
    }

    /// The instance id of a run that has not exited yet.
    fn live_run(&self, pid: i32) -> Option<usize> {
        self.runs
            .get(&pid)
            .filter(|run| run.exit.is_none())
            .map(|run| run.id)
    }

    /// Starts an `exec` probe for the run `instance_pid`, with its env.
    fn start_probe(&mut self, instance_pid: i32, command: &str) -> ExecStarted {
        let stopping = !matches!(self.sup.phase(), Phase::Release | Phase::Running);
        let Some(id) = self.live_run(instance_pid).filter(|_| !stopping) else {
            return Err(std::io::Error::other("the process is stopping"));
        };
        let env = self.plan.instance_env(&self.sup.instances()[id].spec);
        let (pid, group) = process::spawn_quiet(command, &self.plan.root, &env)?;
        self.groups.insert(group);
        self.guardian.watch(group);
        let (tx, rx) = oneshot::channel();
        self.probes.insert(pid, tx);
        Ok((group, rx))
    }

    /// Publishes each balanced type's instances in rotation.
    fn update_rotations(&self) {
        for b in &self.balancers {
            let ports = self.sup.rotation(b.type_index);
            b.rotation.send_if_modified(|current| {
                let changed = *current != ports;
                if changed {
                    *current = ports;
                }
                changed
            });
        }
    }

    /// Answers one control request: the supervisor decides, the runtime
    /// carries out what it decided, the control protocol words the reply.
    /// A request that waits is answered once the supervisor says its goal
    /// is reached (or cannot be, or its time is up).
    fn control(&mut self, request: control::Request) {
        let now = Instant::now();
        let wait = request.command.wait().map(Duration::from_secs_f64);
        let (actions, reply, goal) = match request.command {
            Command::Ps => (Vec::new(), reply::ps(&self.sup, now), None),
            Command::Restart { targets, .. } => {
                // Taken before the restart: only the runs it starts count.
                let goal = self.sup.goal_restarted(&targets).ok();
                let (actions, answer) = self.sup.restart_named(&targets, now);
                (actions, reply::restarting(answer), goal)
            }
            Command::Stop { targets, .. } => {
                let goal = self.sup.goal_stopped(&targets).ok();
                let (actions, answer) = self.sup.stop_named(&targets, now);
                (actions, reply::stopping(answer), goal)
            }
            Command::Scale { formation, .. } => {
                let (actions, answer) = self.sup.scale(&formation, now);
                let goal = answer
                    .as_ref()
                    .ok()
                    .map(|scaled| self.sup.goal_scaled(&scaled.changes));
                (actions, reply::scaled(answer), goal)
            }
            Command::Wait { targets, .. } => match self.sup.goal_ready(&targets) {
                Ok(goal) => (Vec::new(), reply::ready(&targets), Some(goal)),
                Err(e) => (Vec::new(), Reply::error(e), None),
            },
            Command::Down => {
                self.shutdown_asked = true;
                let actions = self.sup.down(now);
                let grace = self.sup.longest_grace();
                (actions, Reply::down(std::process::id(), grace), None)
            }
        };
        self.apply(actions);
        match (wait, goal) {
            (Some(timeout), Some(goal)) if reply.ok => {
                self.waiters.add(goal, timeout, reply, request.reply, now);
            }
            _ => {
                let _ = request.reply.send(reply);
            }
        }
    }

    /// A run's output is drained (or closed): if the process was reaped too,
    /// its exit is now handed to the supervisor.
    fn output_done(&mut self, pid: i32, closed: bool) {
        let Some(run) = self.runs.get_mut(&pid) else {
            return;
        };
        if closed {
            run.output_open = false;
        }
        // Output may close before the group is empty (a member redirected
        // its output): the run still ends only with its group.
        if let (Some(status), true) = (run.exit, run.ending || !closed) {
            self.finish_run(pid, status);
        }
    }

    fn reap(&mut self) {
        for (pid, status) in process::reap() {
            if let Some(probe) = self.probes.remove(&pid) {
                let _ = probe.send(status);
                continue;
            }
            let alive = self.runs.get(&pid).is_some_and(|run| self.run_alive(run));
            match self.runs.get_mut(&pid) {
                Some(run) => {
                    run.exit = Some(status);
                    if alive {
                        // Other processes remain in the group (a shell's
                        // background job, a program the shell did not exec):
                        // the run goes on until the group is empty.
                        let id = run.id;
                        let actions = self.sup.leader_exited(id, status, Instant::now());
                        self.apply(actions);
                    }
                }
                None if pid == self.guardian.pid() => self.replace_guardian(pid, status),
                None => {
                    // An adopted orphan: reaped, nothing more.
                    debug(format_args!("reaped {pid} ({status:?})"));
                }
            }
        }
        if self.containment.is_none() {
            self.watch_adopted();
        }
        self.end_empty_runs();
        self.forget_empty_groups();
        if let Some(sig) = self.straggler_signal {
            self.signal_stragglers(sig);
        }
    }

    /// Ends every run whose leader was reaped and whose group is empty:
    /// its relay drains what the group wrote, then the exit is handled.
    fn end_empty_runs(&mut self) {
        let empty: Vec<i32> = self
            .runs
            .iter()
            .filter(|(_, run)| run.exit.is_some() && !run.ending && !self.run_alive(run))
            .map(|(&pid, _)| pid)
            .collect();
        for pid in empty {
            let Some(run) = self.runs.get_mut(&pid) else {
                continue;
            };
            run.ending = true;
            if run.output_open && run.drain.send(()).is_ok() {
                // The relay answers with Drained; the exit waits.
                continue;
            }
            if let Some(status) = run.exit {
                self.finish_run(pid, status);
            }
        }
    }

    fn finish_run(&mut self, pid: i32, status: ExitStatus) {
        let Some(run) = self.runs.remove(&pid) else {
            return;
        };
        for check in &run.checks {
            check.abort();
        }
        self.end_attachment(run.id, status);
        let actions = self.sup.exited(run.id, status, Instant::now());
        self.apply(actions);
    }

    fn forget_empty_groups(&mut self) {
        let live: HashSet<Group> = self.runs.values().map(|run| run.group).collect();
        let empty: Vec<Group> = self
            .groups
            .iter()
            .copied()
            .filter(|group| !live.contains(group) && !group.is_alive())
            .collect();
        for group in empty {
            self.groups.remove(&group);
            self.guardian.forget(group);
        }
    }

    /// Whether anything pm started is still alive, apart from the guardian.
    fn descendants_left(&self) -> bool {
        process::descendants_left(&self.guardian, &self.groups)
    }

    fn apply(&mut self, actions: Vec<Action>) {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Spawn(id) => {
                    let mut ids = vec![id];
                    while let Some(&Action::Spawn(next)) = queue.front() {
                        queue.pop_front();
                        ids.push(next);
                    }
                    queue.extend(self.spawn_all(&ids));
                }
                Action::Signal(id, sig) => {
                    // Out of the rotation before the signal can reach it.
                    self.update_rotations();
                    // The run's group, also after its leader exited: the
                    // rest of the group is what the signal is for then.
                    let current = self.runs.values().find(|run| run.id == id && !run.ending);
                    if let Some(run) = current {
                        self.signal_run(run, sig);
                    }
                }
                Action::SignalStragglers(sig) => {
                    self.straggler_signal = Some(sig);
                    self.signal_stragglers(sig);
                }
                Action::KillAll => {
                    for group in &self.groups {
                        group.signal(Signal::SIGKILL);
                    }
                    for cgroup in self.cgroups.values() {
                        cgroup.signal(Signal::SIGKILL, |_| false);
                    }
                    self.straggler_signal = Some(Signal::SIGKILL);
                    self.signal_stragglers(Signal::SIGKILL);
                }
                Action::Say(event) => self.say(&event.to_string()),
            }
        }
        self.update_rotations();
    }

    /// Signals what pm started that is not an instance's run: groups pm
    /// still knows that no run owns, and orphans adopted as subreaper that
    /// left their instance's group. Each gets a given signal once; an
    /// orphan still in a run's group is that run's, and gets the run's stop
    /// signal with its group, not a second one.
    fn signal_stragglers(&mut self, sig: Signal) {
        let running: HashMap<i32, Group> = self
            .runs
            .iter()
            .map(|(&pid, run)| (pid, run.group))
            .collect();
        let running_groups: HashSet<Group> = running.values().copied().collect();
        let groups: Vec<Group> = self
            .groups
            .iter()
            .copied()
            .filter(|group| !running_groups.contains(group))
            .collect();
        for group in groups {
            if self.signaled_groups.insert((group, sig)) {
                group.signal(sig);
            }
        }
        let guardian = self.guardian.pid();
        let orphans: Vec<i32> = process::children()
            .into_iter()
            .filter(|&pid| {
                pid != guardian
                    && !running.contains_key(&pid)
                    && !self.signaled.contains(&(pid, sig))
            })
            .collect();
        if orphans.is_empty() {
            // The usual case, after each reaping while pm stops: no cgroup
            // needs reading.
            return;
        }
        // Processes that left their instance's group but not its cgroup
        // belong to that instance too.
        let contained: HashSet<i32> = self
            .runs
            .values()
            .filter_map(|run| self.cgroups.get(&run.id))
            .flat_map(|cgroup| cgroup.pids())
            .collect();
        for pid in orphans {
            // Signalled already with its group (a run's, or a straggler
            // group just above): each process gets the signal once.
            if contained.contains(&pid)
                || process::group_of(pid).is_some_and(|g| {
                    running_groups.contains(&g) || self.signaled_groups.contains(&(g, sig))
                })
            {
                continue;
            }
            if self.signaled.insert((pid, sig)) {
                process::signal_pid(pid, sig);
            }
        }
    }

    /// Starts instances `ids` together: every one forks before any is
    /// waited on, so their execs run side by side.
    fn spawn_all(&mut self, ids: &[usize]) -> Vec<Action> {
        // Their cgroups first: making one is the costliest step, best done
        // before the first child competes with pm for a core.
        for &id in ids {
            self.make_cgroup(id);
        }
        // Then all they need, so the forks follow each other touching
        // little memory (a page pm writes while a forked child has not
        // exec'd is copied for it).
        let prepared: Vec<_> = ids.iter().map(|&id| (id, self.prepare(id))).collect();
        let starting: Vec<_> = prepared
            .into_iter()
            .map(|(id, prepared)| (id, prepared.and_then(process::Prepared::start)))
            .collect();
        let mut actions = Vec::new();
        for (id, started) in starting {
            let result = started.and_then(process::Starting::finish);
            actions.extend(self.spawned(id, result));
        }
        actions
    }

    /// Instance `id`'s cgroup, made once (where pm contains by cgroup).
    fn make_cgroup(&mut self, id: usize) {
        if let Some(containment) = &self.containment
            && !self.cgroups.contains_key(&id)
        {
            let name = &self.sup.instances()[id].spec.name;
            match containment.instance(name) {
                Ok(cgroup) => {
                    self.cgroups.insert(id, cgroup);
                }
                Err(e) => debug(format_args!("no cgroup for {name}: {e}")),
            }
        }
    }

    /// Prepares instance `id`'s process (in its cgroup, made by
    /// [`Runtime::make_cgroup`]); once forked and exec'd,
    /// [`Runtime::spawned`] takes it on.
    fn prepare(&mut self, id: usize) -> std::io::Result<process::Prepared> {
        let instance = &self.sup.instances()[id].spec;
        let spec = &self.plan.types[instance.type_index];
        let env = self.plan.instance_env(instance);
        // A simple command runs as its program (`exec` in front), so the pid
        // pm shows and signals is the program's.
        let command = exec_form(&spec.command);
        process::prepare(&SpawnSpec {
            command: command.as_deref().unwrap_or(&spec.command),
            cwd: &self.plan.root,
            env: &env,
            pty: spec.pty,
            // A one-shot must not wait on a prompt.
            stdin: if spec.name == RELEASE {
                Stdin::Null
            } else {
                Stdin::Pipe
            },
            cgroup: self.cgroups.get(&id),
            guardian: Some(&self.guardian),
        })
    }

    /// Instance `id`'s process runs (or could not start): its relay, its
    /// checks, its record.
    fn spawned(&mut self, id: usize, result: std::io::Result<process::Spawned>) -> Vec<Action> {
        let instance = &self.sup.instances()[id].spec;
        let spec = &self.plan.types[instance.type_index];
        let now = Instant::now();
        match result {
            Ok(spawned) => {
                let pid = spawned.pid;
                self.groups.insert(spawned.group);
                self.guardian.watch(spawned.group);
                let framer = Framer::new(
                    &instance.name,
                    self.style.width,
                    self.style.color.then_some(id),
                    self.style.timestamps,
                )
                .recording(self.scrollback.recorder(
                    &instance.name,
                    Some(&spec.name),
                    Some(id),
                ));
                // `pm attach` writes to a pty through a second descriptor
                // of its master (the relay owns the first).
                let master = if spec.pty {
                    spawned.output.try_clone().ok()
                } else {
                    None
                };
                let (drain_tx, drain_rx) = mpsc::unbounded_channel();
                // A `log` readiness check reads the output: the relay feeds it.
                let log = match spec.ready.as_ref().map(|c| &c.probe) {
                    Some(Probe::Log(pattern)) => Some(health::LogWatch::new(
                        pid,
                        pattern.clone(),
                        self.health_tx.clone(),
                    )),
                    _ => None,
                };
                tokio::spawn(relay::relay(
                    pid,
                    spawned.output,
                    framer,
                    log,
                    self.out.clone(),
                    drain_rx,
                    self.relay_tx.clone(),
                ));
                self.open_relays += 1;
                let mut checks = Vec::new();
                let ready = spec.ready.clone().or_else(|| {
                    // A balanced type without a readiness check joins the
                    // rotation once its port accepts connections.
                    spec.proxy.as_ref().map(|_| Check::tcp())
                });
                for (kind, check) in [(Kind::Ready, ready), (Kind::Live, spec.live.clone())] {
                    if let Some(check) = check.filter(|c| !matches!(c.probe, Probe::Log(_))) {
                        let watch = health::Watch {
                            pid,
                            port: instance.port,
                            kind,
                            check,
                        };
                        let task = tokio::spawn(health::watch(watch, self.health_tx.clone()));
                        checks.push(task.abort_handle());
                    }
                }
                self.runs.insert(
                    pid,
                    Run {
                        id,
                        group: spawned.group,
                        exit: None,
                        ending: false,
                        output_open: true,
                        drain: drain_tx,
                        stdin: spawned.stdin,
                        checks,
                        master,
                    },
                );
                self.sup.spawned(id, pid, now)
            }
            Err(error) => self.sup.spawn_failed(id, &error, now),
        }
    }

    /// The writer thread failed to write. A closed reader (or a closed
    /// stdout) stops pm quietly, as SIGPIPE would; any other error (a full
    /// disk) stops everything and makes pm exit 1 with it.
    fn output_failed(&mut self, error: std::io::Error) {
        let now = Instant::now();
        let reader_gone = error.kind() == std::io::ErrorKind::BrokenPipe
            || error.raw_os_error() == Some(libc::EBADF);
        let actions = if reader_gone {
            self.sup.shutdown(Signal::SIGPIPE, now)
        } else {
            self.output_error = Some(error);
            self.sup.output_failed(now)
        };
        self.apply(actions);
    }

    /// While pm stops, a stdout that takes nothing (a paused terminal, a
    /// reader that stopped reading) is given up on: its output is dropped,
    /// so relays drain, exits are handled and pm can end.
    ///
    /// Only for a shutdown someone asked for (a signal, `pm down`): when
    /// everything simply finished, a slow reader gets every line.
    fn give_up_on_stalled_output(&self) {
        let stopping = matches!(
            self.sup.phase(),
            Phase::Stopping { .. } | Phase::Killing { .. }
        );
        if stopping && self.shutdown_asked && self.out.stalled() {
            self.out.discard();
        }
    }

    /// The guardian died: say so, and start a new one that knows every
    /// group pm still has.
    fn replace_guardian(&mut self, pid: i32, status: ExitStatus) {
        let groups: Vec<Group> = self.groups.iter().copied().collect();
        let cgroup = self.containment.as_ref().map(|c| c.root().to_path_buf());
        let new = self
            .guardian
            .replace(groups, cgroup.as_deref())
            .map(|()| self.guardian.pid())
            .map_err(|e| crate::error::io_message(&e));
        self.say(&Event::GuardianDied { pid, status, new }.to_string());
    }

    /// Without a cgroup, the guardian knows only the groups it was told of:
    /// an orphan pm adopted may lead a group of its own (`setsid` in a
    /// background job), which is recorded as soon as pm sees it.
    fn watch_adopted(&mut self) {
        self.last_adoption_scan = Instant::now();
        let guardian = self.guardian.pid();
        for pid in process::children() {
            if pid == guardian {
                continue;
            }
            if let Some(group) = process::group_of(pid)
                && self.groups.insert(group)
            {
                self.guardian.watch(group);
            }
        }
    }

    /// Whether anything of the run is left: its group, or (with
    /// containment) anything in its instance's cgroup.
    fn run_alive(&self, run: &Run) -> bool {
        run.group.is_alive()
            || self
                .cgroups
                .get(&run.id)
                .is_some_and(|cgroup| cgroup.is_populated())
    }

    /// Sends a signal to a run: its group, and what left the group but not
    /// the instance's cgroup (each process once).
    fn signal_run(&self, run: &Run, sig: Signal) {
        run.group.signal(sig);
        if let Some(cgroup) = self.cgroups.get(&run.id) {
            cgroup.signal(sig, |pid| process::group_of(pid) == Some(run.group));
        }
    }

    fn say(&mut self, text: &str) {
        let mut buf = Vec::new();
        self.system.line(text, &mut self.clock, &mut buf);
        self.out.send_now(buf);
    }

    /// pm is exiting: every `pm logs --follow` and `pm attach` client gets
    /// the end of its stream; their connections get a moment to write what
    /// is left, never more than a second.
    async fn end_streams(&mut self) {
        self.scrollback.close();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        let gone = self.scrollback_events.feeds_gone.recv();
        let _ = tokio::time::timeout_at(deadline, gone).await;
    }

    /// After the last exit: let every relay read to the end of its output so
    /// no line is lost, but never wait forever for a pipe some stray process
    /// still holds open.
    async fn wait_for_relays(&mut self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while self.open_relays > 0 {
            match tokio::time::timeout_at(deadline, self.relays.recv()).await {
                Ok(Some(RelayEvent::Closed(_))) => self.open_relays -= 1,
                Ok(Some(RelayEvent::Drained(_))) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// Resolves once, with the error, when the writer thread says a write to
/// stdout failed; a writer that ended without saying so (pm is exiting)
/// never resolves it.
async fn closed(stdout: &mut Option<oneshot::Receiver<std::io::Error>>) -> std::io::Error {
    if let Some(rx) = stdout {
        let said = rx.await;
        *stdout = None;
        if let Ok(error) = said {
            return error;
        }
    }
    std::future::pending().await
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// Developer diagnostics on stderr, only with PM_LOG=debug.
pub fn debug(args: std::fmt::Arguments<'_>) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var("PM_LOG").is_ok_and(|v| v == "debug")) {
        eprintln!("pm: debug: {args}");
    }
}
