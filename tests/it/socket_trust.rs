//! The control socket trusts no one else: a client talks only to a pm of
//! its own user, `pm start` never replaces what is not its own stale socket,
//! and no symbolic link is followed. The checks with a second user need
//! root (to create that user); without it they say so and the rest runs.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::*;

/// A user created for one test and removed after it.
struct OtherUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl OtherUser {
    /// None (with the reason on stderr) when the test does not run as root.
    fn create() -> Option<OtherUser> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "not root: the checks against another user's socket need a second user, \
                 which only root can create; they are skipped here (CI runs them as root)"
            );
            return None;
        }
        let name = format!("pmtrust{}", std::process::id());
        let out = run_with_deadline(
            Command::new("useradd")
                .args(["--no-create-home", "--shell", "/usr/sbin/nologin", &name])
                .stdin(Stdio::null()),
            SECS(30),
        );
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let user = nix::unistd::User::from_name(&name)
            .unwrap()
            .expect("the user just created");
        Some(OtherUser {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })
    }

    /// `program args...` in `dir`, run as this user.
    fn command(&self, program: &str, dir: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(dir)
            .uid(self.uid)
            .gid(self.gid)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", dir)
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for OtherUser {
    fn drop(&mut self) {
        let _ = run_with_deadline(Command::new("userdel").arg(&self.name), SECS(30));
    }
}

/// An app directory anyone may write to, without the sticky bit.
fn world_writable_app(procfile: &str) -> App {
    let app = App::with_procfile(procfile);
    fs::set_permissions(app.path(), fs::Permissions::from_mode(0o777)).unwrap();
    app
}

/// A fake pm run by `user`: listens on DIR/.pm.sock, logs how many bytes
/// each connection sent, answers with a forged `ps` reply.
const FAKE_SERVER: &str = r#"
import os, socket
s = socket.socket(socket.AF_UNIX)
s.bind(".pm.sock")
os.chmod(".pm.sock", 0o777)
s.listen(8)
open("ready", "w").close()
while True:
    c, _ = s.accept()
    c.settimeout(5)
    try:
        data = c.recv(65536)
    except OSError:
        data = b""
    with open("received", "a") as log:
        log.write("%d bytes\n" % len(data))
    try:
        c.sendall(b'{"version":1,"ok":true,"message":"forged","instances":[{"name":"forged.1","type":"forged","index":1,"pid":1,"state":"running","restarts":0,"uptime_s":1.0,"port":1,"health":null}]}\n')
    except OSError:
        pass
    c.close()
"#;

#[test]
fn another_users_socket_is_never_trusted_nor_replaced() {
    let Some(other) = OtherUser::create() else {
        return;
    };
    let me = nix::unistd::geteuid().as_raw();

    // 1. pm runs here; the other user's `pm start` must not take its place.
    let app = world_writable_app("web: exec sleep 1000\n");
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line(" started with pid ", SECS(10));
    let sock = app.path().join(".pm.sock");
    let inode = fs::symlink_metadata(&sock).unwrap().ino();
    let mut theirs = other.command(PM, app.path());
    theirs.arg("start");
    let out = Finished::from(run_with_deadline(&mut theirs, SECS(30)));
    let expected = format!(
        "pm: {}: is a socket of uid {me}, not yours (uid {}): another user's pm may run here; \
         pm leaves it alone (remove it or use --socket)\n",
        sock.display(),
        other.uid
    );
    out.assert_error(1, &expected);
    assert_eq!(
        fs::symlink_metadata(&sock).unwrap().ino(),
        inode,
        "socket replaced"
    );
    let table = app.run(&["ps"]);
    assert!(table.assert_ok().contains("web.1"), "{}", table.stdout);
    pm.stop_ok(SECS(10));

    // 2. The other user's fake pm answers here: no client sends it a thing.
    let app = world_writable_app("web: exec sleep 1000\n");
    let mut fake = other.command("python3", app.path());
    fake.args(["-c", FAKE_SERVER])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut fake = KillOnDrop(fake.spawn().expect("python3"));
    assert!(
        eventually(SECS(10), || app.path().join("ready").exists()),
        "the fake server did not start"
    );
    let sock = app.path().join(".pm.sock");
    for args in [
        &["ps"][..],
        &["stop", "web"],
        &["ps", "--json"],
        &["logs", "-n", "5"],
        // The streaming requests too (`pm attach` would first need a
        // terminal; it opens its stream the same way).
        &["logs", "-F"],
    ] {
        let out = app.run(args);
        out.assert_error(
            1,
            &format!(
                "pm: {}: the process answering here runs as uid {}, not as you (uid {me}); \
                 nothing was sent to it\n",
                sock.display(),
                other.uid
            ),
        );
        assert!(!out.stdout.contains("forged"), "{args:?}: {}", out.stdout);
    }
    // Each connection reached it and sent nothing.
    let received = fs::read_to_string(app.path().join("received")).unwrap_or_default();
    assert!(
        received.lines().all(|l| l == "0 bytes"),
        "the fake server received: {received}"
    );
    // And `pm start` here refuses rather than replace it.
    app.run(&["start"])
        .assert_error_contains(1, &format!("is a socket of uid {}, not yours", other.uid));
    assert!(!app.path().join("started").exists());
    assert!(fake.0.try_wait().unwrap().is_none(), "the fake server died");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.0.wait();
    }
}

#[test]
fn a_symbolic_link_or_a_file_in_the_sockets_place_is_left_alone() {
    let app = App::with_procfile("web: touch started\n");
    let target = app.file("precious", "keep me\n");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
    let sock = app.path().join(".pm.sock");
    std::os::unix::fs::symlink(&target, &sock).unwrap();
    app.run(&["start"]).assert_error(
        1,
        &format!(
            "pm: {}: is a symbolic link, which pm never follows for its socket; \
             pm leaves it alone (remove it or use --socket)\n",
            sock.display()
        ),
    );
    assert!(
        fs::symlink_metadata(&sock)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep me\n");
    assert_eq!(
        fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o644
    );

    fs::remove_file(&sock).unwrap();
    fs::write(&sock, "not a socket\n").unwrap();
    app.run(&["start"])
        .assert_error_contains(1, ".pm.sock: exists and is not a socket");
    assert_eq!(fs::read_to_string(&sock).unwrap(), "not a socket\n");
    assert!(!app.path().join("started").exists());
}
