//! Which Procfile commands run as the program itself.
//!
//! A Procfile command runs through `/bin/sh -c`. Most real Procfiles do not
//! write `exec` (`web: bundle exec puma -C config/puma.rb`), and dash keeps a
//! shell wrapped around such a command: `pm ps` then shows the shell's pid,
//! and a signal to that pid never reaches the program. foreman runs a simple
//! command without a shell; pm gets the same by placing `exec` in front of
//! the program (after any assignments: `RAILS_ENV=development exec bin/rails
//! s`), which dash runs with the same words, quoting, expansions and
//! redirections.
//!
//! Only a command that is one POSIX simple command naming a program is
//! rewritten: anything with an operator (`&&`, `;`, `|`, `&`, parentheses), a
//! command substitution, a here-document, a reserved word, or a builtin that
//! changes the shell (`cd`, `ulimit`, `exec`, `export`...) keeps its shell as
//! written. This module only reads text: no I/O.

/// The command with `exec` placed before its program, or None when it must
/// keep its shell (see the module docs).
pub fn exec_form(command: &str) -> Option<String> {
    let words = words(command)?;
    let program = words.iter().find(|w| !w.assignment)?;
    if program.redirection {
        return None;
    }
    let text = &command[program.start..program.end];
    if KEEP_SHELL.contains(&text) {
        return None;
    }
    Some(format!(
        "{}exec {}",
        &command[..program.start],
        &command[program.start..]
    ))
}

/// Reserved words and builtins that either are not programs or change the
/// shell that would run what follows them.
const KEEP_SHELL: &[&str] = &[
    // Reserved words.
    "!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if",
    "in", "select", "then", "time", "until", "while", "[[", "]]",
    // Special and regular builtins with no program of the same name, or
    // whose effect is on the shell itself.
    ".", ":", "alias", "bg", "break", "cd", "command", "continue", "eval", "exec", "exit", "export",
    "fg", "getopts", "hash", "jobs", "local", "read", "readonly", "return", "set", "shift",
    "source", "times", "trap", "type", "ulimit", "umask", "unalias", "unset", "wait",
];

/// One word of a simple command, by byte range.
struct Word {
    start: usize,
    end: usize,
    /// `NAME=value`: an assignment before the program.
    assignment: bool,
    /// Holds a redirection (`2>&1`, `>log`, `<in`).
    redirection: bool,
}

/// The words of `command` if it is one simple command; None at the first
/// operator, command substitution, here-document or unclosed quote.
fn words(command: &str) -> Option<Vec<Word>> {
    let bytes = command.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] == b'#' {
            return Some(words);
        }
        let start = i;
        let mut redirection = false;
        while i < bytes.len() && bytes[i] != b' ' && bytes[i] != b'\t' {
            match bytes[i] {
                b'\'' => {
                    i += 1 + memchr::memchr(b'\'', &bytes[i + 1..])?;
                }
                b'"' => {
                    i += 1;
                    loop {
                        match *bytes.get(i)? {
                            b'"' => break,
                            b'\\' => i += 1,
                            b'`' => return None,
                            b'$' if bytes.get(i + 1) == Some(&b'(') => return None,
                            _ => {}
                        }
                        i += 1;
                    }
                }
                b'\\' => i += 1,
                b'`' | b';' | b'&' | b'|' | b'(' | b')' | b'\n' | b'\r' => return None,
                b'$' => match bytes.get(i + 1) {
                    Some(b'(') => return None,
                    Some(b'{') => {
                        // `${PORT:-3000}`, `${x:-a b}`: blanks inside do not
                        // split the word.
                        let close = memchr::memchr(b'}', &bytes[i..])?;
                        if bytes[i..i + close].contains(&b'`')
                            || bytes[i + 2..i + close].windows(2).any(|w| w == b"$(")
                        {
                            return None;
                        }
                        i += close;
                    }
                    _ => {}
                },
                b'<' | b'>' => {
                    redirection = true;
                    match bytes.get(i + 1) {
                        Some(b'<') if bytes[i] == b'<' => return None,
                        Some(b'&' | b'>' | b'|') => i += 1,
                        _ => {}
                    }
                }
                _ => {}
            }
            i += 1;
        }
        let end = i.min(bytes.len());
        let text = &command[start..end];
        let assignment = !redirection
            && text.find('=').is_some_and(|eq| {
                let name = &text[..eq];
                name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
            && words.iter().all(|w: &Word| w.assignment);
        words.push(Word {
            start,
            end,
            assignment,
            redirection,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::exec_form;

    #[test]
    fn simple_commands_run_as_the_program() {
        for (command, expected) in [
            (
                "bundle exec puma -C config/puma.rb",
                "exec bundle exec puma -C config/puma.rb",
            ),
            (
                "RAILS_ENV=development bin/rails server -p ${PORT:-3000}",
                "RAILS_ENV=development exec bin/rails server -p ${PORT:-3000}",
            ),
            (
                "A=1 B=\"x y\" ./bin/web --name 'a b' \"$PORT\"",
                "A=1 B=\"x y\" exec ./bin/web --name 'a b' \"$PORT\"",
            ),
            ("node server.js 2>&1", "exec node server.js 2>&1"),
            (
                "celery -A app worker >>log",
                "exec celery -A app worker >>log",
            ),
            (
                "python3 -m http.server $PORT",
                "exec python3 -m http.server $PORT",
            ),
            ("web --x ${X:-a b} # note", "exec web --x ${X:-a b} # note"),
            ("echo \\; done", "exec echo \\; done"),
            ("  sidekiq", "  exec sidekiq"),
            (
                "gunicorn -b \"$PM_LISTEN_HOST:$PORT\" app:app",
                "exec gunicorn -b \"$PM_LISTEN_HOST:$PORT\" app:app",
            ),
        ] {
            assert_eq!(exec_form(command).as_deref(), Some(expected), "{command}");
        }
    }

    #[test]
    fn anything_else_keeps_its_shell() {
        for command in [
            "exec puma",
            "cd frontend && npm run dev",
            "ulimit -n 4096; exec web",
            "web & worker",
            "web | tee log",
            "web || true",
            "(cd x; web)",
            "web $(cat args)",
            "web `cat args`",
            "web \"$(cat args)\"",
            "web ${X:-$(date)}",
            "cat <<EOF",
            "if true; then web; fi",
            "while true; do web; done",
            "{ web; }",
            "! web",
            "export A=1",
            "A=1",
            "A=1 B=2",
            "> log",
            ": ${PORT:=3000}",
            "web 'unclosed",
            "web \"unclosed",
            "",
            "   ",
            "# just a comment",
            "source .env",
            ". ./env.sh",
            "eval \"$CMD\"",
        ] {
            assert_eq!(exec_form(command), None, "{command}");
        }
    }

    #[test]
    fn assignments_count_only_before_the_program() {
        assert_eq!(
            exec_form("env A=1 web").as_deref(),
            Some("exec env A=1 web")
        );
        assert_eq!(exec_form("web A=1").as_deref(), Some("exec web A=1"));
        // Not a name before `=`: the program itself.
        assert_eq!(exec_form("./x=1 run").as_deref(), Some("exec ./x=1 run"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_only_adds_exec(text in "[ -~\t\u{e9}\u{1f600}]{0,40}") {
            if let Some(rewritten) = exec_form(&text) {
                proptest::prop_assert_eq!(rewritten.replacen("exec ", "", 1), text);
            }
        }
    }
}
