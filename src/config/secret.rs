//! Which environment values are secrets: shared by export (what goes into a
//! Kubernetes Secret) and audit (what is never printed).
//!
//! A name is secret when it contains SECRET, PASSWORD, PASSWD, TOKEN, KEY,
//! CREDENTIAL or PRIVATE (any case); a value is secret when it is a URL that
//! carries a password (`scheme://user:password@host`).

const SECRET_WORDS: [&str; 7] = [
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
    "PRIVATE",
];

/// True when the variable's name says it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|word| upper.contains(word))
}

/// True when the value is a URL with a password in its user-info part.
pub fn url_has_password(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((userinfo, _host)) => userinfo
            .split_once(':')
            .is_some_and(|(_, password)| !password.is_empty()),
        None => false,
    }
}

/// True when this variable must be kept secret: by its name or its value.
pub fn is_secret(name: &str, value: &str) -> bool {
    is_secret_name(name) || url_has_password(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_look_secret() {
        for name in [
            "SECRET_KEY_BASE",
            "api_token",
            "DB_PASSWORD",
            "SMTP_PASSWD",
            "STRIPE_KEY",
            "GOOGLE_CREDENTIALS",
            "PRIVATE_PEM",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["PORT", "DATABASE_URL", "RAILS_ENV", "WEB_CONCURRENCY"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn urls_with_a_password() {
        assert!(url_has_password("postgres://app:s3cret@db:5432/app"));
        assert!(url_has_password("redis://:pw@localhost:6379/0"));
        assert!(!url_has_password("postgres://app@db/app"));
        assert!(!url_has_password("postgres://db/app"));
        assert!(!url_has_password("https://example.com/a:b@c"));
        assert!(!url_has_password("user:pw@host"));
        assert!(!url_has_password("postgres://app:@db/app"));
        assert!(is_secret("DATABASE_URL", "postgres://app:s3cret@db/app"));
        assert!(!is_secret("DATABASE_URL", "postgres://db/app"));
    }
}
