//! The command line: one clap-derived struct per subcommand, with the options
//! every subcommand shares (which files, which directory) flattened in, and
//! the `--color` choice with the pure rule that turns it into on or off (the
//! rest of pm, `output/` included, only sees the resulting bool).

use std::ffi::OsStr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::engine::ArgValueCandidates;

use crate::app::complete;

#[derive(Debug, Parser)]
#[command(
    name = "pm",
    version = env!("PM_VERSION"),
    about = "Run a Procfile's process model: the same on a laptop, in CI and in a container",
    propagate_version = true,
    after_help = "Examples:
  pm start web=2 worker=3     Run two webs and three workers from ./Procfile
  pm check                    Validate the Procfile and env files, show the ports
  pm restart web              Restart every web instance of the running pm"
)]
pub struct Cli {
    /// The shared options given before the subcommand (`pm -f Procfile.dev
    /// start`, as honcho takes them); the subcommand's own win.
    #[command(flatten)]
    pub before: BeforeArgs,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The subcommand, with the options given before it filled in where
    /// the subcommand did not give them.
    pub fn into_command(self) -> Command {
        let mut command = self.command;
        if let Some(app) = command.app_mut() {
            self.before.fill(app);
        }
        command
    }
}

/// The options of [`AppArgs`], as given before the subcommand.
#[derive(Debug, Args, Clone, Default)]
pub struct BeforeArgs {
    #[arg(short = 'f', long = "procfile", value_name = "PATH", hide = true)]
    pub procfile: Option<PathBuf>,
    #[arg(short = 'd', long = "root", value_name = "DIR", hide = true)]
    pub root: Option<PathBuf>,
    #[arg(
        short = 'e',
        long = "env",
        value_name = "FILE",
        value_delimiter = ',',
        hide = true
    )]
    pub env: Vec<PathBuf>,
    #[arg(short = 'p', long = "port", value_name = "N", hide = true)]
    pub port: Option<String>,
    #[arg(long = "port-step", value_name = "N", hide = true)]
    pub port_step: Option<u16>,
    #[arg(long = "socket", value_name = "PATH", hide = true)]
    pub socket: Option<PathBuf>,
}

impl BeforeArgs {
    fn fill(self, app: &mut AppArgs) {
        if app.procfile.is_none() {
            app.procfile = self.procfile;
        }
        if app.root.is_none() {
            app.root = self.root;
        }
        if app.env.is_empty() {
            app.env = self.env;
        }
        if app.port.is_none() {
            app.port = self.port;
        }
        if let Some(step) = self.port_step
            && app.port_step == DEFAULT_PORT_STEP
        {
            app.port_step = step;
        }
        if app.socket.is_none() {
            app.socket = self.socket;
        }
    }
}

/// `--port-step`'s default.
pub const DEFAULT_PORT_STEP: u16 = 100;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the process types of the Procfile and supervise them.
    #[command(after_help = "Examples:
  pm start                    Every process type, once each
  pm start web=2 worker=3     Only these types, this many of each
  pm start -D --log pm.log    In the background; `pm down` stops it")]
    Start(StartArgs),
    /// Run one command with the environment a process would get.
    #[command(after_help = "Examples:
  pm run 'echo $DATABASE_URL'    One command with the app's environment
  pm run web                     A process type's command, in the foreground
  pm run -e .env.test rake test  With other env files")]
    Run(RunArgs),
    /// Validate the Procfile and env files; print the process types and ports.
    #[command(after_help = "Examples:
  pm check                    Validate ./Procfile and .env, show types and ports
  pm check -f Procfile.dev    Another Procfile
  pm check web=2 worker=3     With this formation's instances and ports")]
    Check(CheckArgs),
    /// Show every instance of the running `pm start`.
    #[command(after_help = "Examples:
  pm ps                       A table of every instance
  pm ps --json                The same, as a JSON array")]
    Ps(PsArgs),
    /// Restart instances (`web` or `web.2`) of the running `pm start`.
    #[command(after_help = "Examples:
  pm restart web              Every web instance, one after the other
  pm restart web.2            Only this instance
  pm restart worker --no-wait Return at once")]
    Restart(TargetArgs),
    /// Stop instances (`web` or `web.2`); `pm restart` brings them back.
    #[command(after_help = "Examples:
  pm stop worker              Every worker instance
  pm stop web.2               Only this instance; `pm restart web.2` brings it back")]
    Stop(TargetArgs),
    /// Change the formation of the running `pm start`: `pm scale web=4 worker=0`.
    #[command(after_help = "Examples:
  pm scale web=4              Four web instances
  pm scale web=2 worker=0     Two webs, no workers")]
    Scale(ScaleArgs),
    /// Wait until instances of the running `pm start` are ready (all by default).
    #[command(after_help = "Examples:
  pm wait                     Until every instance is ready
  pm wait web --timeout 30    Until every web is ready, 30 seconds at most")]
    Wait(WaitArgs),
    /// Shut the running `pm start` down (as on SIGTERM) and wait until it has exited.
    #[command(after_help = "Examples:
  pm down                     Shut down the pm running here
  pm down --timeout 20        Give it 20 seconds")]
    Down(DownArgs),
    /// Print the recent output of the running `pm start`; -F follows it.
    #[command(after_help = "Examples:
  pm logs -n 50 web
  pm logs -F worker | grep ERROR
  pm logs system")]
    Logs(LogsArgs),
    /// Make this terminal an instance's console: its output, and the keyboard to its stdin (Ctrl-] detaches).
    #[command(after_help = "Examples:
  pm attach web.1
  pm attach worker")]
    Attach(AttachArgs),
    /// Write files that run the same process model on systemd, Docker Compose or Kubernetes.
    #[command(after_help = "Examples:
  pm export systemd /etc/systemd/system --user app
  pm export compose deploy --image shop:1.4
  pm export kubernetes k8s --image shop:1.4 web=3")]
    Export(ExportArgs),
    /// Compare this model with production's; exit 1 when they drift apart.
    #[command(after_help = "Examples:
  pm audit --against .env.production
  pm audit --against deploy --strict
  pm audit --against k8s --json")]
    Audit(AuditArgs),
    /// pm's own: a replacement guardian, started by a running pm whose
    /// guardian died (its pipe on stdin).
    #[command(name = "__guardian", hide = true)]
    Guardian(GuardianArgs),
    /// Balance TCP connections over TARGETs as `pm start`'s proxy does (the balancer exports run).
    #[command(after_help = "Examples:
  pm balance 0.0.0.0:8080 127.0.0.1:5000 127.0.0.1:5001
  pm balance 0.0.0.0:8080 web:5000 --http /health")]
    Balance(BalanceArgs),
    /// Print the script that completes pm's subcommands, flags and process names in SHELL.
    #[command(after_help = "Examples:
  pm completions bash > ~/.local/share/bash-completion/completions/pm
  pm completions zsh > ~/.zfunc/_pm    (with ~/.zfunc in fpath)
  pm completions fish > ~/.config/fish/completions/pm.fish")]
    Completions(CompletionsArgs),
    /// Write pm's man pages (pm.1, pm-start.1, ...) into DIR.
    #[command(
        hide = true,
        after_help = "Examples:
  pm man target/man                  Write the pages there
  man -l target/man/pm-start.1       Read one"
    )]
    Man(ManArgs),
    /// Wait until every TARGET passes a readiness check (exports order start-up with it).
    #[command(after_help = "Examples:
  pm probe 127.0.0.1:5000              Until a tcp connect passes
  pm probe db:5432 --within 60          60 seconds at most
  pm probe web:5000 --http /health")]
    Probe(ProbeArgs),
}

impl Command {
    /// The shared options of whichever subcommand this is; None for the
    /// subcommands that read no application (`balance`, `probe`).
    pub fn app_mut(&mut self) -> Option<&mut AppArgs> {
        match self {
            Command::Start(a) => Some(&mut a.app),
            Command::Run(a) => Some(&mut a.app),
            Command::Check(a) => Some(&mut a.app),
            Command::Ps(a) => Some(&mut a.app),
            Command::Restart(a) | Command::Stop(a) => Some(&mut a.app),
            Command::Scale(a) => Some(&mut a.app),
            Command::Wait(a) => Some(&mut a.app),
            Command::Down(a) => Some(&mut a.app),
            Command::Logs(a) => Some(&mut a.app),
            Command::Attach(a) => Some(&mut a.app),
            Command::Export(a) => Some(&mut a.app),
            Command::Audit(a) => Some(&mut a.app),
            Command::Balance(_)
            | Command::Probe(_)
            | Command::Guardian(_)
            | Command::Completions(_)
            | Command::Man(_) => None,
        }
    }
}

/// Where the application is: shared by every subcommand.
#[derive(Debug, Args, Clone, Default)]
pub struct AppArgs {
    /// The Procfile to read [default: ./Procfile, or DIR/Procfile with --root].
    #[arg(short = 'f', long = "procfile", value_name = "PATH")]
    pub procfile: Option<PathBuf>,

    /// The application's root directory, where commands run [default: the Procfile's directory].
    #[arg(short = 'd', long = "root", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Env files to read instead of ROOT/.env (repeatable, or comma-separated).
    #[arg(short = 'e', long = "env", value_name = "FILE", value_delimiter = ',')]
    pub env: Vec<PathBuf>,

    /// Base port [default: pm.toml's, else PORT from the env files, else $PORT, else 5000].
    #[arg(short = 'p', long = "port", value_name = "N")]
    pub port: Option<String>,

    /// Port distance between process types.
    #[arg(long = "port-step", value_name = "N", default_value_t = DEFAULT_PORT_STEP)]
    pub port_step: u16,

    /// The control socket [default: $PM_SOCKET, else ROOT/.pm.sock].
    #[arg(long = "socket", value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// How many of each process type: shared by start, check (and export).
#[derive(Debug, Args, Clone, Default)]
pub struct FormationArgs {
    /// How many of each type: `web=2,worker=3`; `all=N` sets the default for the others.
    /// (`-c/--concurrency` is accepted too, as honcho and old foreman spell it.)
    #[arg(
        short = 'm',
        long = "formation",
        value_name = "SPEC",
        short_alias = 'c',
        alias = "concurrency"
    )]
    pub formation: Option<String>,

    /// Process types to run, as NAME or NAME=COUNT (only these run).
    #[arg(value_name = "NAME[=COUNT]", add = ArgValueCandidates::new(complete::types))]
    pub processes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub app: AppArgs,

    #[command(flatten)]
    pub formation: FormationArgs,

    /// Seconds to wait after SIGTERM before SIGKILL at shutdown [default: pm.toml's, else 5].
    #[arg(short = 't', long = "timeout", value_name = "SECONDS")]
    pub timeout: Option<f64>,

    /// When to color the output.
    #[arg(long = "color", value_name = "WHEN", default_value = "auto")]
    pub color: ColorChoice,

    /// Never color the output (same as --color never).
    #[arg(long = "no-color")]
    pub no_color: bool,

    /// Do not print the time in front of each line.
    #[arg(long = "no-timestamp")]
    pub no_timestamp: bool,

    /// Restarts in a row before pm gives up on an instance [default: unlimited].
    #[arg(long = "max-restarts", value_name = "N")]
    pub max_restarts: Option<u32>,

    /// Do not run the `release` process type before the others.
    #[arg(long = "no-release")]
    pub no_release: bool,

    /// Run every process on a pseudo-terminal instead of pipes.
    #[arg(long = "pty")]
    pub pty: bool,

    /// Run in the background; return once the control socket listens and the release phase has ended.
    #[arg(short = 'D', long = "detach")]
    pub detach: bool,

    /// With --detach: append the output (and pm's own messages) to this file.
    #[arg(long = "log", value_name = "FILE", requires = "detach")]
    pub log: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub app: AppArgs,

    /// A process type name, or a command (one argument runs through /bin/sh -c).
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub app: AppArgs,

    #[command(flatten)]
    pub formation: FormationArgs,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub app: AppArgs,

    /// Print a JSON array instead of a table.
    #[arg(long = "json")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    #[command(flatten)]
    pub app: AppArgs,

    /// A process type (every instance) or one instance, e.g. `web` or `web.2`.
    #[arg(value_name = "TARGET", required = true, add = ArgValueCandidates::new(complete::targets))]
    pub targets: Vec<String>,

    #[command(flatten)]
    pub wait: WaitFlags,
}

/// How long `pm restart`, `pm stop` and `pm scale` wait for what they asked.
#[derive(Debug, Args, Clone, Copy)]
pub struct WaitFlags {
    /// Seconds to wait for it to be done (new runs ready, instances stopped).
    #[arg(long = "timeout", value_name = "SECONDS", default_value_t = 60.0)]
    pub timeout: f64,

    /// Return at once instead of waiting until it is done.
    #[arg(long = "no-wait")]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub app: AppArgs,

    /// New counts, as NAME=COUNT (types not named keep theirs).
    #[arg(value_name = "NAME=COUNT", required = true, add = ArgValueCandidates::new(complete::counts))]
    pub formation: Vec<String>,

    #[command(flatten)]
    pub wait: WaitFlags,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub app: AppArgs,

    /// Process types or instances to wait for [default: every instance].
    #[arg(value_name = "TARGET", add = ArgValueCandidates::new(complete::targets))]
    pub targets: Vec<String>,

    /// Seconds to wait before giving up (exit 1).
    #[arg(long = "timeout", value_name = "SECONDS", default_value_t = 60.0)]
    pub timeout: f64,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub app: AppArgs,

    /// Seconds to wait for pm to exit [default: the longest stop grace + 5].
    #[arg(long = "timeout", value_name = "SECONDS")]
    pub timeout: Option<f64>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub app: AppArgs,

    /// A process type (every instance), an instance (`web.2`) or `system` (pm's own lines) [default: all of them].
    #[arg(value_name = "TARGET", add = ArgValueCandidates::new(complete::targets))]
    pub targets: Vec<String>,

    /// How many recent lines to print.
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 100)]
    pub lines: usize,

    /// Keep printing new lines until Ctrl-C or until pm exits.
    #[arg(short = 'F', long = "follow")]
    pub follow: bool,

    /// When to color the output.
    #[arg(long = "color", value_name = "WHEN", default_value = "auto")]
    pub color: ColorChoice,

    /// Never color the output (same as --color never).
    #[arg(long = "no-color")]
    pub no_color: bool,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    #[command(flatten)]
    pub app: AppArgs,

    /// The instance (`web.1`), or a type that has one instance (`web`).
    #[arg(value_name = "TARGET", add = ArgValueCandidates::new(complete::targets))]
    pub target: String,
}

/// The engines `pm export` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Systemd,
    Compose,
    Kubernetes,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The engine to write files for.
    #[arg(value_name = "FORMAT")]
    pub format: ExportFormat,

    /// The directory to write into (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    #[command(flatten)]
    pub app: AppArgs,

    #[command(flatten)]
    pub formation: FormationArgs,

    /// The application's name [default: the root directory's name].
    #[arg(long = "app", value_name = "NAME")]
    pub name: Option<String>,

    /// The container image every service runs (compose, kubernetes).
    #[arg(long = "image", value_name = "IMAGE")]
    pub image: Option<String>,

    /// The user the units run as (systemd).
    #[arg(long = "user", value_name = "USER")]
    pub user: Option<String>,

    /// pm's absolute path, as the units run `pm balance` and `pm probe` (systemd) [default: this pm].
    #[arg(long = "pm-path", value_name = "PATH")]
    pub pm_path: Option<PathBuf>,

    /// Overwrite existing files, and remove those an earlier export of this app wrote.
    #[arg(long = "force")]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub app: AppArgs,

    /// Production's side: env files (`.env.production`) and/or directories written by `pm export`.
    #[arg(long = "against", value_name = "FILE_OR_DIR", num_args = 1..)]
    pub against: Vec<PathBuf>,

    /// The development Procfile to compare with the Procfile [default: Procfile.dev next to it, if any].
    #[arg(long = "dev-procfile", value_name = "PATH")]
    pub dev_procfile: Option<PathBuf>,

    /// Print the findings as JSON instead of a table.
    #[arg(long = "json")]
    pub json: bool,

    /// Count warnings (settings the production format cannot carry) as drift.
    #[arg(long = "strict")]
    pub strict: bool,
}

/// How `pm balance` and `pm probe` check a target, with pm.toml's readiness
/// keys and defaults (a tcp connect unless `--http`).
#[derive(Debug, Args, Clone)]
pub struct ReadyArgs {
    /// Probe with an HTTP GET of this path (2xx and 3xx pass) instead of a tcp connect.
    #[arg(long = "http", value_name = "PATH")]
    pub http: Option<String>,

    /// Seconds between probes.
    #[arg(long = "interval", value_name = "SECONDS", default_value_t = 1.0)]
    pub interval: f64,

    /// Seconds one probe may take.
    #[arg(long = "timeout", value_name = "SECONDS", default_value_t = 1.0)]
    pub timeout: f64,

    /// Consecutive passes that make a target ready.
    #[arg(long = "successes", value_name = "N", default_value_t = 1)]
    pub successes: u32,

    /// Consecutive failures that make a ready target unready.
    #[arg(long = "failures", value_name = "N", default_value_t = 3)]
    pub failures: u32,
}

#[derive(Debug, Args)]
pub struct BalanceArgs {
    /// Where to listen, as HOST:PORT (`0.0.0.0:8080`).
    #[arg(value_name = "LISTEN")]
    pub listen: String,

    /// The instances, as HOST:PORT; a name resolving to several addresses is each of them,
    /// resolved again as they come and go.
    #[arg(value_name = "TARGET", required = true)]
    pub targets: Vec<String>,

    #[command(flatten)]
    pub ready: ReadyArgs,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// What to wait for, as HOST:PORT; every address a name resolves to must pass.
    #[arg(value_name = "TARGET", required = true)]
    pub targets: Vec<String>,

    #[command(flatten)]
    pub ready: ReadyArgs,

    /// Pass when this command exits 0 (run by /bin/sh with PORT and PM_PROBE_HOST set to the target's).
    #[arg(long = "exec", value_name = "COMMAND", conflicts_with = "http")]
    pub exec: Option<String>,

    /// Give up after this many seconds (exit 1) [default: wait as long as it takes].
    #[arg(long = "within", value_name = "SECONDS")]
    pub within: Option<f64>,
}

/// The shells `pm completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write the pages into (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// The `--color` choice.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// Color when stdout is a terminal and `NO_COLOR` is not set.
    #[default]
    Auto,
    /// Always color.
    Always,
    /// Never color.
    Never,
}

/// Whether pm's stdout gets colors: `--no-color`, else `--color`, applied
/// by [`color_enabled`] to `NO_COLOR` and whether stdout is a terminal.
pub fn stdout_color(color: ColorChoice, no_color: bool) -> bool {
    use std::io::IsTerminal;
    let choice = if no_color { ColorChoice::Never } else { color };
    color_enabled(
        choice,
        std::env::var_os("NO_COLOR").as_deref(),
        std::io::stdout().is_terminal(),
    )
}

/// Decides whether output is colored.
///
/// An explicit `Always` or `Never` wins (the caller maps `--no-color` to
/// `Never`). With `Auto`, a non-empty `NO_COLOR` disables color (the
/// no-color.org rule: an empty value counts as unset), else color is on iff
/// stdout is a terminal. Pure, so the whole table is unit tested.
pub fn color_enabled(
    choice: ColorChoice,
    no_color: Option<&OsStr>,
    stdout_is_terminal: bool,
) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            let no_color_set = no_color.is_some_and(|value| !value.is_empty());
            !no_color_set && stdout_is_terminal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn color_decision_table() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        let cases = [
            // (choice, NO_COLOR, is a terminal, expected)
            (ColorChoice::Always, None, false, true),
            (ColorChoice::Always, set, false, true),
            (ColorChoice::Always, set, true, true),
            (ColorChoice::Never, None, true, false),
            (ColorChoice::Never, None, false, false),
            (ColorChoice::Auto, None, true, true),
            (ColorChoice::Auto, None, false, false),
            (ColorChoice::Auto, set, true, false),
            (ColorChoice::Auto, set, false, false),
            (ColorChoice::Auto, empty, true, true),
            (ColorChoice::Auto, empty, false, false),
        ];
        for (choice, no_color, tty, expected) in cases {
            assert_eq!(
                color_enabled(choice, no_color, tty),
                expected,
                "{choice:?} NO_COLOR={no_color:?} tty={tty}"
            );
        }
    }

    #[test]
    fn color_choice_parses_from_the_command_line() {
        use clap::ValueEnum;
        assert_eq!(ColorChoice::from_str("auto", false), Ok(ColorChoice::Auto));
        assert_eq!(
            ColorChoice::from_str("always", false),
            Ok(ColorChoice::Always)
        );
        assert_eq!(
            ColorChoice::from_str("never", false),
            Ok(ColorChoice::Never)
        );
    }
}

#[derive(Debug, Args)]
pub struct GuardianArgs {
    /// pm's cgroup, to empty and remove once pm is gone.
    #[arg(long = "cgroup", value_name = "DIR")]
    pub cgroup: Option<PathBuf>,
}
