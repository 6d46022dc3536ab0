//! `pm start`: load the Plan, set up the guardian, the output writer and the
//! runtime, supervise until the end. With `--detach`, fork first (after
//! what can refuse to start, before any thread exists) and let the
//! foreground pm return once the background one is up.

use std::io::Write;
use std::time::Duration;

use crate::app::load::{self, LoadOptions};
use crate::cli::{StartArgs, stdout_color};
use crate::control;
use crate::error::{Error, Result};
use crate::output;
use crate::process::{self, Guardian};
use crate::proxy;
use crate::runtime::{OutputStyle, Runtime};

pub fn start(args: StartArgs) -> Result<i32> {
    let options = LoadOptions {
        formation: args.formation.clone(),
        timeout: args.timeout.map(load::timeout).transpose()?,
        pty: args.pty,
        no_release: args.no_release,
        max_restarts: args.max_restarts,
        procfile_optional: false,
    };
    let (plan, _) = load::load(&args.app, &options)?;
    if plan.instances.is_empty() {
        return Err(Error::Invalid(
            "nothing to start: the formation runs no process".into(),
        ));
    }

    // The socket comes first: a second pm in the same place stops here,
    // before it starts anything.
    let paths = load::paths(&args.app)?;
    let socket = control::socket_path(args.app.socket.as_ref(), &paths.root);
    let (listener, socket_guard) = control::server::bind(&socket)?;
    // So do the balancers' ports: one in use is an error before any start.
    let mut proxies = Vec::new();
    for (type_index, spec) in plan.types.iter().enumerate() {
        if let Some(p) = &spec.proxy {
            let address = if p.host.contains(':') {
                format!("[{}]:{}", p.host, p.port)
            } else {
                format!("{}:{}", p.host, p.port)
            };
            let bound = proxy::bind(&p.host, p.port).map_err(|e| {
                Error::Invalid(format!(
                    "cannot listen on {address} for the proxy of \"{}\": {e}",
                    spec.name
                ))
            })?;
            proxies.push((type_index, address, bound));
        }
    }

    // --detach forks here: after everything that can refuse to start (the
    // foreground pm reports it as `pm start` would), before the guardian,
    // the output thread and the runtime, which belong to the background pm.
    let mut announcer = None;
    if args.detach {
        let log = args.log.as_ref().map(|path| open_log(path)).transpose()?;
        match process::detach(log).map_err(|e| Error::os("cannot start in the background", e))? {
            process::Detached::Foreground(starter) => {
                // The socket is the background pm's now: leave it in place.
                socket_guard.leave();
                return starter
                    .wait()
                    .map_err(|e| Error::os("cannot learn whether pm started", e));
            }
            process::Detached::Background(a) => announcer = Some(a),
        }
    }

    let color = stdout_color(args.color, args.no_color);
    let style = OutputStyle {
        color,
        timestamps: !args.no_timestamp,
        width: output::name_width(plan.instances.iter().map(|i| i.name.as_str())),
    };

    // Containment first, so the guardian knows pm's cgroup; the guardian is
    // forked while pm still has a single thread.
    // Room for every instance's descriptors (its output, its stdin, its
    // cgroup; the pipes of its start) and pm's own, made while the table
    // can still grow without a wait.
    process::size_descriptor_table((64 + 8 * plan.instances.len()).max(1024));
    let containment = process::Containment::create();
    let guardian = Guardian::start(containment.as_ref().map(|c| c.root()))
        .map_err(|e| Error::os("cannot start the guardian", e))?;
    process::become_subreaper();

    // The writer thread's one event, a failed write, has its own channel.
    let (broken, stdout_closed) = tokio::sync::oneshot::channel();
    let on_error = Box::new(move |error| {
        let _ = broken.send(error);
    });
    // In the background, stdout is the log (or /dev/null); until pm is up,
    // the foreground pm gets a copy (shown if pm ends before being up).
    // Every line still passes through output/ as in the foreground, so
    // whatever output/ keeps of them (for `pm logs`) it keeps here too.
    let copy = announcer
        .as_mut()
        .and_then(process::Announcer::take_output_copy);
    let direct = copy.is_none();
    let (out, writer) =
        output::spawn_writer(output::Tee::new(output::stdout_sink(), copy), on_error)
            .map_err(|e| Error::os("cannot start the output writer", e))?;
    if direct {
        // Nothing but stdout to write to: while nothing waits in the queue,
        // the runtime writes a chunk itself when stdout takes it at once.
        out.write_directly_to(libc::STDOUT_FILENO);
    }
    // tokio panics, rather than fail, when its runtime cannot get the few
    // descriptors it needs (its signal handling's socket pair): make sure
    // they are free first, so `ulimit -n 8` is an error, not a panic.
    reserve_descriptors(RUNTIME_DESCRIPTORS)
        .map_err(|e| Error::os("cannot start the runtime", e))?;
    // Current-thread: PR_SET_PDEATHSIG follows the thread that forks, and
    // every spawn happens on this one.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::os("cannot start the runtime", e))?;
    // The balancers get threads of their own: relaying bytes is the one
    // CPU-bound thing pm does, and it owns no state, so it needs neither the
    // ordering nor the forking thread of the supervisor's runtime.
    let proxies = if proxies.is_empty() {
        None
    } else {
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 4);
        Some((
            proxies,
            proxy::Threads::start(threads)
                .map_err(|e| Error::os("cannot start the load balancer", e))?,
        ))
    };
    let result = runtime.block_on(
        Runtime::new(plan, guardian, out, style, stdout_closed)
            .with_containment(containment)
            .with_control(listener)
            .with_announcer(announcer)
            .with_proxies(proxies)
            .run(),
    );
    drop(runtime);
    let dropped = writer.finish();
    if dropped > 0 && result.is_ok() {
        let s = if dropped == 1 { "" } else { "s" };
        say_within(
            &format!("pm: stdout did not keep up: {dropped} line{s} of output dropped\n"),
            STDERR_PATIENCE,
        );
    }
    drop(socket_guard);
    result
}

/// The descriptors a tokio runtime takes (its poller, its waker, the
/// signal handling's socket pair), with room to spare.
const RUNTIME_DESCRIPTORS: usize = 8;

/// Opens and closes `count` descriptors: the next `count` are then free
/// (pm has one thread here, so nothing takes them in between).
fn reserve_descriptors(count: usize) -> std::io::Result<()> {
    let held = (0..count)
        .map(|_| std::fs::File::open("/dev/null"))
        .collect::<std::io::Result<Vec<_>>>()?;
    drop(held);
    Ok(())
}

/// How long pm's last words may wait for stderr, which may be as stalled as
/// stdout was (one terminal, paused with Ctrl-S).
const STDERR_PATIENCE: Duration = Duration::from_secs(1);

/// Writes `text` on stderr from a thread of its own, waiting for it at most
/// `patience`: pm exits either way.
fn say_within(text: &str, patience: Duration) {
    let text = text.to_string();
    let (done, written) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("pm-stderr".into())
        .spawn(move || {
            let _ = std::io::stderr().write_all(text.as_bytes());
            let _ = done.send(());
        });
    if spawned.is_ok() {
        let _ = written.recv_timeout(patience);
    }
}

/// `--log FILE`: appended to, created if missing (mode 0600: it may hold
/// secrets a process prints).
fn open_log(path: &std::path::Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::File::options()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::File {
            path: path.display().to_string(),
            message: crate::error::io_message(&e),
        })
}
