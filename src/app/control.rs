//! `pm ps`, `pm restart`, `pm stop`, `pm scale`, `pm wait`, `pm down`:
//! clients of a running `pm start`, found through its control socket.
//! Waiting is pm's: a client sends how long it may take and reads the one
//! answer (for `down`, then the end of the connection), never polling; the
//! one exception is the instant between pm's socket closing as it exits and
//! its process ending, which `down` waits out.

use std::collections::BTreeMap;

use crate::app::load;
use std::time::Duration;

use crate::cli::{AppArgs, DownArgs, PsArgs, ScaleArgs, TargetArgs, WaitArgs, WaitFlags};
use crate::config::formation::Formation;
use crate::control::protocol::{Command, InstanceInfo, MAX_WAIT, Reply};
use crate::control::{client, find_root, socket_path};
use crate::error::{Error, Result};
use crate::model::Number;
use crate::process;

/// The socket of the pm that `app` names.
pub fn socket(app: &AppArgs) -> Result<std::path::PathBuf> {
    let root = match (&app.procfile, &app.root) {
        // Neither -f nor -d: the nearest directory up that has a socket or
        // a Procfile, else here.
        (None, None) => {
            let here = std::env::current_dir().map_err(|e| Error::File {
                path: ".".into(),
                message: crate::error::io_message(&e),
            })?;
            find_root(&here).unwrap_or(here)
        }
        _ => load::paths(app)?.root,
    };
    Ok(socket_path(app.socket.as_ref(), &root))
}

fn send(app: &AppArgs, command: Command) -> Result<Reply> {
    let reply = client::send(&socket(app)?, command)?;
    if reply.ok {
        Ok(reply)
    } else {
        Err(Error::Invalid(
            reply.error.unwrap_or_else(|| "request refused".into()),
        ))
    }
}

pub fn ps(args: PsArgs) -> Result<i32> {
    let reply = send(&args.app, Command::Ps)?;
    let instances = reply.instances.unwrap_or_default();
    if args.json {
        let text =
            serde_json::to_string_pretty(&instances).map_err(|e| Error::Internal(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", table(&instances));
    }
    Ok(0)
}

/// `1h02m`, `3m05s`, `12s`.
fn uptime(seconds: Option<f64>) -> String {
    let Some(s) = seconds else {
        return "-".into();
    };
    let s = s as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

pub fn table(instances: &[InstanceInfo]) -> String {
    let width = instances
        .iter()
        .map(|i| i.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<width$}  {:<11}  {:>7}  {:>5}  {:>8}  {:>7}  HEALTH\n",
        "NAME", "STATE", "PID", "PORT", "RESTARTS", "UPTIME"
    );
    for i in instances {
        out.push_str(&format!(
            "{:<width$}  {:<11}  {:>7}  {:>5}  {:>8}  {:>7}  {}\n",
            i.name,
            i.state,
            i.pid.map_or("-".into(), |p| p.to_string()),
            i.port,
            i.restarts,
            uptime(i.uptime_s),
            i.health.as_deref().unwrap_or("-"),
        ));
    }
    out
}

/// How long pm may take: None with `--no-wait`.
fn wait(flags: WaitFlags) -> Result<Option<f64>> {
    if flags.no_wait {
        return Ok(None);
    }
    seconds(flags.timeout).map(Some)
}

fn seconds(s: f64) -> Result<f64> {
    if s.is_finite() && (0.0..=MAX_WAIT).contains(&s) {
        Ok(s)
    } else {
        Err(Error::Invalid(format!(
            "--timeout {}: expected a number of seconds between 0 and {MAX_WAIT}",
            Number(s)
        )))
    }
}

pub fn restart(args: TargetArgs) -> Result<i32> {
    let reply = send(
        &args.app,
        Command::Restart {
            targets: args.targets,
            wait: wait(args.wait)?,
        },
    )?;
    println!("{}", reply.message.unwrap_or_default());
    Ok(0)
}

pub fn stop(args: TargetArgs) -> Result<i32> {
    let reply = send(
        &args.app,
        Command::Stop {
            targets: args.targets,
            wait: wait(args.wait)?,
        },
    )?;
    println!("{}", reply.message.unwrap_or_default());
    Ok(0)
}

/// `pm wait`: 0 once every target is ready at the same moment.
pub fn wait_ready(args: WaitArgs) -> Result<i32> {
    let reply = send(
        &args.app,
        Command::Wait {
            targets: args.targets,
            timeout: seconds(args.timeout)?,
        },
    )?;
    println!("{}", reply.message.unwrap_or_default());
    Ok(0)
}

/// The slack `pm down` gives pm on top of its longest grace.
const DOWN_SLACK: Duration = Duration::from_secs(5);

/// `pm down`: 0 once pm has exited.
pub fn down(args: DownArgs) -> Result<i32> {
    let explicit = args.timeout.map(seconds).transpose()?;
    let (reply, exited) = client::down(&socket(&args.app)?, |reply| match explicit {
        Some(s) => Duration::from_secs_f64(s),
        None => {
            let grace = reply.grace_s.filter(|g| g.is_finite() && *g >= 0.0);
            Duration::from_secs_f64(grace.unwrap_or(0.0).min(MAX_WAIT)) + DOWN_SLACK
        }
    })?;
    if !reply.ok {
        return Err(Error::Invalid(
            reply.error.unwrap_or_else(|| "request refused".into()),
        ));
    }
    // pm's end of the connection closes as its process exits, a moment
    // before the process has ended: `pm down` returns after that moment.
    let exited = exited && reply.pid.is_none_or(ended_soon);
    let pid = reply
        .pid
        .map_or_else(String::new, |p| format!(" (pid {p})"));
    if !exited {
        return Err(Error::Invalid(format!(
            "pm{pid} has not exited in time; it goes on stopping"
        )));
    }
    println!("pm{pid} has exited");
    Ok(0)
}

/// How long an exiting pm may take from closing its files to having ended.
const EXIT_SETTLE: Duration = Duration::from_secs(2);

/// Whether `pid`, whose files are closed, ends within [`EXIT_SETTLE`].
fn ended_soon(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return true;
    };
    let deadline = std::time::Instant::now() + EXIT_SETTLE;
    while !process::has_ended(pid) {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

pub fn scale(args: ScaleArgs) -> Result<i32> {
    let parsed =
        Formation::parse_args(&args.formation).map_err(|e| Error::Invalid(e.to_string()))?;
    if parsed.all.is_some() {
        return Err(Error::Invalid(
            "pm scale takes NAME=COUNT for each type to change; \"all\" is not supported".into(),
        ));
    }
    let formation: BTreeMap<String, u32> = parsed.entries.into_iter().collect();
    let reply = send(
        &args.app,
        Command::Scale {
            formation,
            wait: wait(args.wait)?,
        },
    )?;
    println!("{}", reply.message.unwrap_or_default());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptimes() {
        assert_eq!(uptime(None), "-");
        assert_eq!(uptime(Some(12.7)), "12s");
        assert_eq!(uptime(Some(185.0)), "3m05s");
        assert_eq!(uptime(Some(3725.0)), "1h02m");
    }
}
