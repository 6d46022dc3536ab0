//! An env value as pm keeps it: text with the references that can only be
//! resolved per runtime (the address variables `PM_<TYPE>_HOST/PORT` and
//! `PM_LISTEN_HOST`) left in place.
//!
//! The env file parser resolves every other reference once, when it reads
//! the file; a [`Value`] then holds literal text and the names of runtime
//! variables, and each runtime (`pm start`, a compose file, a Kubernetes
//! ConfigMap) expands it with its own addresses. It owns no syntax: nothing
//! here parses text.

/// A piece of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    /// A runtime variable, by name.
    Var(String),
}

/// Literal text and runtime variables, in order. Adjacent texts are merged,
/// so a value without variables is one `Text` (or nothing, when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Value {
    parts: Vec<Part>,
}

impl Value {
    pub fn literal(text: impl Into<String>) -> Value {
        let mut value = Value::default();
        value.push_text(&text.into());
        value
    }

    pub fn push_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        match self.parts.last_mut() {
            Some(Part::Text(last)) => last.push_str(text),
            _ => self.parts.push(Part::Text(text.to_string())),
        }
    }

    pub fn push_var(&mut self, name: &str) {
        self.parts.push(Part::Var(name.to_string()));
    }

    pub fn append(&mut self, other: &Value) {
        for part in &other.parts {
            match part {
                Part::Text(text) => self.push_text(text),
                Part::Var(name) => self.push_var(name),
            }
        }
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The runtime variables the value uses, in order (repeats included).
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(name) => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// The text, when the value uses no runtime variable.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(text)] => Some(text),
            _ => None,
        }
    }

    /// The value with each variable replaced by `resolve(name)`.
    pub fn expand(&self, resolve: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var(name) => out.push_str(&resolve(name)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_merge_and_variables_expand() {
        let mut v = Value::literal("redis://");
        v.push_var("PM_STORE_HOST");
        v.push_text(":");
        v.push_var("PM_STORE_PORT");
        v.push_text("/0");
        assert_eq!(v.as_literal(), None);
        assert_eq!(
            v.vars().collect::<Vec<_>>(),
            ["PM_STORE_HOST", "PM_STORE_PORT"]
        );
        let expanded = v.expand(|name| match name {
            "PM_STORE_HOST" => "127.0.0.1".into(),
            _ => "5000".into(),
        });
        assert_eq!(expanded, "redis://127.0.0.1:5000/0");

        let mut w = Value::literal("a");
        w.append(&Value::literal("b"));
        w.push_text("");
        assert_eq!(w.parts(), [Part::Text("ab".into())]);
        assert_eq!(Value::default().as_literal(), Some(""));
    }
}
