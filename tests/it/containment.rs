//! Nothing pm started outlives it, whatever the processes do to their
//! group or session: cgroup containment where pm can make a cgroup, the
//! guardian's records otherwise, and a guardian that is replaced if killed.

use std::fs;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::*;

/// Three ways out of a process group, each printing the pid that escapes.
const ESCAPES: &str = "\
a: setsid sh -c 'echo escaped=$$; exec sleep 1001' & wait
b: python3 -c \"import os,time; os.setpgid(0,0); print('escaped=%d' % os.getpid(), flush=True); time.sleep(1002)\" & wait
c: (setsid sh -c 'echo escaped=$$; exec sleep 1003' &); sleep 1004
";

/// Whether pm can contain by cgroup here: root, with a cgroup2 hierarchy.
/// CI runs as root; elsewhere the cgroup tests say why they do not run.
fn cgroups_here() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let cgroup2 = fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|m| m.lines().any(|l| l.contains(" - cgroup2 ")));
    if !(root && cgroup2) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run as root on a machine with cgroup2"
        );
        eprintln!("not root or no cgroup2: containment by cgroup is not tested here");
    }
    root && cgroup2
}

fn escaped(pm: &mut Running, count: usize) -> Vec<i32> {
    while numbers_after(&pm.seen, "escaped=").len() < count {
        pm.wait_for(|l| l.contains("escaped="), SECS(10))
            .unwrap_or_else(|| panic!("fewer than {count} escapes:\n{}", pm.seen.join("\n")));
    }
    numbers_after(&pm.seen, "escaped=")
}

fn all_gone(pids: &[i32]) {
    wait_until(
        SECS(5),
        "escaped processes gone",
        || {
            pids.iter()
                .copied()
                .filter(|&p| alive(p))
                .collect::<Vec<_>>()
        },
        Vec::is_empty,
    );
}

/// pm's children other than its instances: the guardian.
fn guardian_of(pm_pid: i32, instances: &[i32]) -> i32 {
    let children =
        fs::read_to_string(format!("/proc/{pm_pid}/task/{pm_pid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .find(|p| !instances.contains(p))
        .expect("a guardian")
}

/// pm running [`ESCAPES`], with what escaped, its instances and its guardian.
struct Escapes {
    _app: App,
    pm: Running,
    pids: Vec<i32>,
    instances: Vec<i32>,
    guardian: i32,
}

impl Escapes {
    fn start() -> Escapes {
        let app = App::with_procfile(ESCAPES);
        let mut pm = app.start(&["start", "--no-timestamp"]);
        let pids = escaped(&mut pm, 3);
        let instances = numbers_after(&pm.seen, "started with pid ");
        let guardian = guardian_of(pm.pid(), &instances);
        Escapes {
            _app: app,
            pm,
            pids,
            instances,
            guardian,
        }
    }
}

#[test]
fn sigkill_of_pm_leaves_nothing_that_left_its_group() {
    if !cgroups_here() {
        return;
    }
    let app = App::with_procfile(ESCAPES);
    let mut pm = app.start(&["start", "--no-timestamp"]);
    let pids = escaped(&mut pm, 3);
    kill(Pid::from_raw(pm.pid()), Signal::SIGKILL).expect("kill -9 pm");
    all_gone(&pids);
}

#[test]
fn restart_and_stop_end_what_an_instance_started_outside_its_group() {
    if !cgroups_here() {
        return;
    }
    let app = App::with_procfile(ESCAPES);
    let mut pm = app.start(&["start", "--no-timestamp"]);
    let pids = escaped(&mut pm, 3);
    let old_a = pids
        .iter()
        .copied()
        .find(|&p| {
            fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.contains("1001"))
        })
        .expect("a's escape");
    app.run(&["restart", "a"]).assert_ok();
    pm.wait_for_line("a.1 started with pid", SECS(10));
    all_gone(&[old_a]);
    pm.stop_ok(SECS(10));
    all_gone(&numbers_after(&pm.seen, "escaped="));
}

#[test]
fn a_killed_guardian_is_replaced_and_still_cleans_up() {
    if !cgroups_here() {
        return;
    }
    let Escapes {
        mut pm,
        pids,
        guardian,
        ..
    } = Escapes::start();
    kill(Pid::from_raw(guardian), Signal::SIGKILL).expect("kill the guardian");
    pm.wait_for_line(
        &format!("the guardian (pid {guardian}) killed by SIGKILL; started a new one (pid "),
        SECS(10),
    );
    kill(Pid::from_raw(pm.pid()), Signal::SIGKILL).expect("kill -9 pm");
    all_gone(&pids);
}

#[test]
fn killall_dash_9_pm_leaves_nothing_that_left_its_group() {
    if !cgroups_here() {
        return;
    }
    let Escapes {
        pm,
        pids,
        instances,
        guardian,
        ..
    } = Escapes::start();
    // What `killall -9 pm` does, limited to this pm and its children (other
    // tests run their own pm): SIGKILL to every process named as pm is.
    let name = comm(pm.pid());
    assert_ne!(comm(guardian), name, "the guardian has a name of its own");
    let mut targets = vec![pm.pid()];
    targets.extend(&instances);
    targets.push(guardian);
    for pid in targets {
        if comm(pid) == name {
            kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill -9");
        }
    }
    all_gone(&pids);
}

#[test]
fn a_cgroup_left_by_a_killed_pm_is_emptied_by_the_next_start() {
    if !cgroups_here() {
        return;
    }
    let Escapes {
        mut pm,
        pids,
        guardian,
        ..
    } = Escapes::start();
    // Both gone at once: nothing was there to clean up.
    kill(Pid::from_raw(guardian), Signal::SIGSTOP).expect("stop the guardian");
    kill(Pid::from_raw(pm.pid()), Signal::SIGKILL).expect("kill -9 pm");
    kill(Pid::from_raw(guardian), Signal::SIGKILL).expect("kill the guardian");
    pm.wait_for_exit(SECS(10));
    let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    assert!(!left.is_empty(), "the escapes should have outlived both");
    let other = App::with_procfile("x: exec sleep 1000\n");
    let mut next = other.start(&["start", "--no-timestamp"]);
    next.wait_for_line("x.1 started with pid", SECS(10));
    all_gone(&left);
    next.stop_ok(SECS(10));
}

#[test]
fn without_a_cgroup_adopted_orphans_are_still_recorded() {
    // The fallback: the guardian knows each group from before its first
    // fork, and the groups of orphans pm adopts. `c` leaves its group
    // through a subshell that exits, so pm adopts the escape and records it.
    let app = App::with_procfile(
        "c: (setsid sh -c 'echo escaped=$$; exec sleep 1005' &); exec sleep 1006\n",
    );
    let mut cmd = app.cmd(&["start", "--no-timestamp"]);
    cmd.env("PM_CGROUP", "off");
    let mut pm = Running::spawn(cmd);
    let pids = escaped(&mut pm, 1);
    // Adopted (its subshell has exited) before pm goes.
    wait_until(
        SECS(5),
        "the escape adopted by pm",
        || fs::read_to_string(format!("/proc/{}/stat", pids[0])).unwrap_or_default(),
        |stat| {
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1))
                .is_some_and(|ppid| ppid == pm.pid().to_string())
        },
    );
    // pm records what it adopted at the latest when asked something.
    app.run(&["ps"]).assert_ok();
    kill(Pid::from_raw(pm.pid()), Signal::SIGKILL).expect("kill -9 pm");
    all_gone(&pids);
}
