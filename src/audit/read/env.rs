//! Production's env files (`--against .env.production`), read with the
//! rules pm reads its own env files by ([`crate::config::envfile`]): only
//! what a `${VAR}` reference reaches differs.

use super::super::Var;
use crate::config::envfile;
use crate::error::Result;

/// The variables of one env file, each carrying the file's name. A
/// `${VAR}` reference sees the variables of the files read before this one
/// (the last definition wins), then pm's own environment.
pub fn read(text: &str, shown: &str, earlier: &[Var]) -> Result<Vec<Var>> {
    let lookup = |name: &str| -> Option<String> {
        earlier
            .iter()
            .rev()
            .find(|v| v.name == name)
            .map(|v| v.value.clone())
            .or_else(|| std::env::var(name).ok())
    };
    let vars = envfile::parse_with_lookup(text, shown, &lookup)?;
    Ok(vars
        .into_iter()
        .map(|(name, value)| Var {
            name,
            value,
            file: shown.to_string(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str, value: &str, file: &str) -> Var {
        Var {
            name: name.to_string(),
            value: value.to_string(),
            file: file.to_string(),
        }
    }

    #[test]
    fn variables_carry_their_file() {
        let vars = read("A=1\nB=\"two words\"\n", ".env.production", &[]).unwrap();
        assert_eq!(
            vars,
            [
                var("A", "1", ".env.production"),
                var("B", "two words", ".env.production")
            ]
        );
    }

    /// An earlier file's variable wins over pm's environment (PATH is set
    /// in it), and its last definition wins.
    #[test]
    fn references_see_earlier_files_first() {
        let earlier = [
            var("PATH", "/first", "a.env"),
            var("PATH", "/second", "a.env"),
        ];
        let vars = read("DIR=${PATH}/app\n", "b.env", &earlier).unwrap();
        assert_eq!(vars, [var("DIR", "/second/app", "b.env")]);
        let path = std::env::var("PATH").unwrap();
        let vars = read("DIR=${PATH}/app\n", "b.env", &[]).unwrap();
        assert_eq!(vars, [var("DIR", &format!("{path}/app"), "b.env")]);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let err = read("A=1\nB=\"open\n", "prod.env", &[]).unwrap_err();
        assert!(err.to_string().starts_with("prod.env:2: "), "{err}");
    }
}
