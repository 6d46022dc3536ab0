//! What the keys typed in `pm attach` do: pure, bytes in, actions out.
//!
//! On a pty type every key goes to the instance's terminal as it is, whose
//! own line discipline edits, echoes and turns Ctrl-C into SIGINT. On a
//! pipe type nothing on the other side does that, so this edits the line:
//! it echoes, handles backspace and Ctrl-U, sends the line whole on Enter,
//! turns Ctrl-C into SIGINT for the instance's group and ignores Ctrl-D
//! (the pipe stays open). `Ctrl-]` detaches at once in both.

/// `Ctrl-]`, as telnet uses it.
pub const DETACH: u8 = 0x1d;

const CTRL_C: u8 = 0x03;
const CTRL_D: u8 = 0x04;
const BACKSPACE: u8 = 0x08;
const CTRL_U: u8 = 0x15;
const ESC: u8 = 0x1b;
const DEL: u8 = 0x7f;

/// What to do about the keys typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Bytes for the instance's input.
    Send(Vec<u8>),
    /// Bytes for the client's own terminal (the local echo).
    Echo(Vec<u8>),
    /// SIGINT for the instance's process group.
    Interrupt,
    /// Detach now; keys after it are not looked at.
    Detach,
}

/// Where an escape sequence stands (arrow keys and the like, which a line
/// on a pipe cannot use: they are dropped whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Started,
    /// After `ESC [`: parameters until a final byte.
    Csi,
    /// After `ESC O`: one more byte.
    Ss3,
}

/// The key table of one attach.
#[derive(Debug)]
pub struct Keys {
    pty: bool,
    /// The line being edited (pipe types).
    line: Vec<u8>,
    escape: Escape,
}

impl Keys {
    pub fn new(pty: bool) -> Keys {
        Keys {
            pty,
            line: Vec::new(),
            escape: Escape::None,
        }
    }

    /// The line typed so far and echoed (pipe types), to draw again after
    /// output came in between.
    pub fn pending(&self) -> &[u8] {
        &self.line
    }

    /// What the bytes typed mean, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Action> {
        if self.pty {
            return match bytes.iter().position(|&b| b == DETACH) {
                Some(0) => vec![Action::Detach],
                Some(at) => vec![Action::Send(bytes[..at].to_vec()), Action::Detach],
                None if bytes.is_empty() => Vec::new(),
                None => vec![Action::Send(bytes.to_vec())],
            };
        }
        let mut actions = Vec::new();
        let mut echo = Vec::new();
        for &byte in bytes {
            if self.skip_escape(byte) {
                continue;
            }
            match byte {
                DETACH => {
                    flush_echo(&mut actions, &mut echo);
                    actions.push(Action::Detach);
                    return actions;
                }
                CTRL_C => {
                    echo.extend_from_slice(b"^C\r\n");
                    flush_echo(&mut actions, &mut echo);
                    self.line.clear();
                    actions.push(Action::Interrupt);
                }
                CTRL_D => {}
                b'\r' | b'\n' => {
                    echo.extend_from_slice(b"\r\n");
                    flush_echo(&mut actions, &mut echo);
                    let mut line = std::mem::take(&mut self.line);
                    line.push(b'\n');
                    actions.push(Action::Send(line));
                }
                BACKSPACE | DEL => {
                    if self.pop_char() {
                        echo.extend_from_slice(b"\x08 \x08");
                    }
                }
                CTRL_U => {
                    while self.pop_char() {
                        echo.extend_from_slice(b"\x08 \x08");
                    }
                }
                ESC => self.escape = Escape::Started,
                b'\t' => {
                    self.line.push(byte);
                    echo.push(byte);
                }
                // Other control keys mean nothing to a line on a pipe.
                0..0x20 => {}
                _ => {
                    self.line.push(byte);
                    echo.push(byte);
                }
            }
        }
        flush_echo(&mut actions, &mut echo);
        actions
    }

    /// Follows an escape sequence; true while `byte` belongs to one.
    fn skip_escape(&mut self, byte: u8) -> bool {
        match self.escape {
            Escape::None => false,
            Escape::Started => {
                self.escape = match byte {
                    b'[' => Escape::Csi,
                    b'O' => Escape::Ss3,
                    _ => Escape::None,
                };
                true
            }
            Escape::Csi => {
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::None;
                }
                true
            }
            Escape::Ss3 => {
                self.escape = Escape::None;
                true
            }
        }
    }

    /// Removes the last character (all of its UTF-8 bytes); false when the
    /// line is empty.
    fn pop_char(&mut self) -> bool {
        let Some(&last) = self.line.last() else {
            return false;
        };
        self.line.pop();
        if last >= 0x80 {
            // Continuation bytes, up to the lead byte.
            while let Some(&b) = self.line.last() {
                if b & 0xC0 != 0x80 {
                    if b >= 0xC0 {
                        self.line.pop();
                    }
                    break;
                }
                self.line.pop();
            }
        }
        true
    }
}

fn flush_echo(actions: &mut Vec<Action>, echo: &mut Vec<u8>) {
    if !echo.is_empty() {
        actions.push(Action::Echo(std::mem::take(echo)));
    }
}

#[cfg(test)]
mod tests {
    use super::Action::*;
    use super::*;

    fn echo(s: &str) -> Action {
        Echo(s.as_bytes().to_vec())
    }

    fn send(s: &str) -> Action {
        Send(s.as_bytes().to_vec())
    }

    #[test]
    fn on_a_pty_every_key_goes_through_but_detach() {
        let mut keys = Keys::new(true);
        assert_eq!(keys.feed(b"ls\r"), [send("ls\r")]);
        // Ctrl-C, Ctrl-Z, Ctrl-\, Ctrl-D, arrows: the program's to handle.
        assert_eq!(
            keys.feed(b"\x03\x1a\x1c\x04\x1b[A"),
            [send("\x03\x1a\x1c\x04\x1b[A")]
        );
        assert_eq!(keys.feed(b"q\x1dmore"), [send("q"), Detach]);
        assert_eq!(keys.feed(b"\x1d"), [Detach]);
        assert_eq!(keys.feed(b""), []);
    }

    #[test]
    fn on_a_pipe_the_line_is_edited_here_and_sent_whole() {
        type Row = (&'static [u8], Vec<Action>);
        let table: Vec<Row> = vec![
            (b"p x", vec![echo("p x")]),
            (b"\x7f\x7fy", vec![echo("\x08 \x08\x08 \x08y")]),
            (b"\r", vec![echo("\r\n"), send("py\n")]),
            // Backspace on an empty line does nothing.
            (b"\x08", vec![]),
            // Ctrl-D is ignored; Ctrl-C interrupts and drops the line.
            (b"ab\x04\x03", vec![echo("ab^C\r\n"), Interrupt]),
            (b"\n", vec![echo("\r\n"), send("\n")]),
            // Arrow keys and other escapes are dropped whole.
            (b"a\x1b[1;5Db\x1bOAc", vec![echo("abc")]),
            // Ctrl-U erases the line.
            (b"\x15", vec![echo("\x08 \x08\x08 \x08\x08 \x08")]),
            (b"\x01\tz", vec![echo("\tz")]),
            (b"q\x1d\r", vec![echo("q"), Detach]),
        ];
        let mut keys = Keys::new(false);
        for (i, (typed, want)) in table.into_iter().enumerate() {
            assert_eq!(keys.feed(typed), want, "row {i}: {typed:?}");
        }
        assert_eq!(keys.pending(), b"\tzq");
    }

    #[test]
    fn backspace_removes_a_whole_character() {
        let mut keys = Keys::new(false);
        keys.feed("aé€𝄞".as_bytes());
        for left in ["aé€", "aé", "a", ""] {
            keys.feed(b"\x7f");
            assert_eq!(keys.pending(), left.as_bytes());
        }
    }
}
