//! What a value says about a backing service: its kind (from a URL scheme or
//! from the value of a well-known variable) and the container images it names.
//!
//! These rules are deliberately small and literal: a kind is recognised only
//! from a URL scheme in [`SCHEMES`] or from a keyword in [`NAMED`], and an
//! image only from a `name:tag` token. Nothing is guessed from host names,
//! ports, paths or other hints, because a false alarm in CI is as costly as a
//! miss. docs/parity.md lists every rule with an example.

/// URL schemes and the kind of backing service they name. Schemes of one
/// kind are interchangeable spellings or TLS variants of one protocol.
/// A scheme with a `+suffix` (`postgresql+psycopg2`, `mongodb+srv`,
/// `redis+sentinel`) is looked up by the part before the `+`.
pub const SCHEMES: &[(&str, &[&str])] = &[
    (
        "postgres",
        &["postgres", "postgresql", "postgis", "pgsql", "pg"],
    ),
    ("mysql", &["mysql", "mysql2", "mariadb", "mysqlx"]),
    ("sqlite", &["sqlite", "sqlite3"]),
    ("sqlserver", &["sqlserver", "mssql"]),
    ("redis", &["redis", "rediss", "valkey", "valkeys"]),
    ("memcached", &["memcached", "memcache"]),
    ("mongodb", &["mongodb", "mongo"]),
    ("amqp", &["amqp", "amqps"]),
    ("kafka", &["kafka"]),
    ("nats", &["nats"]),
    ("sqs", &["sqs"]),
    ("s3", &["s3", "s3a"]),
    ("gcs", &["gs", "gcs"]),
    ("local disk", &["file"]),
    ("memory", &["memory", "mem"]),
    ("smtp", &["smtp", "smtps"]),
];

/// Variables whose value is a keyword naming a backing service, by family.
/// Only the listed names are read this way, and only the listed keywords
/// (compared without case); any other value is left unclassified.
pub struct Family {
    pub what: &'static str,
    pub names: &'static [&'static str],
    pub values: &'static [(&'static str, &'static [&'static str])],
}

pub const NAMED: &[Family] = &[
    Family {
        what: "cache",
        names: &[
            "CACHE_STORE",
            "CACHE_DRIVER",
            "CACHE_BACKEND",
            "CACHE_TYPE",
            "SESSION_DRIVER",
            "SESSION_STORE",
        ],
        values: &[
            (
                "memory",
                &[
                    "memory",
                    "memory_store",
                    "array",
                    "simple",
                    "simplecache",
                    "locmem",
                ],
            ),
            (
                "local disk",
                &["file", "file_store", "filesystem", "filesystemcache"],
            ),
            ("redis", &["redis", "redis_cache_store", "rediscache"]),
            (
                "memcached",
                &["memcached", "memcache", "mem_cache_store", "memcachedcache"],
            ),
            ("database", &["database", "db", "solid_cache_store"]),
            ("cookie", &["cookie", "cookie_store"]),
            ("none", &["null", "null_store", "nullcache", "none"]),
        ],
    },
    Family {
        what: "storage",
        names: &[
            "STORAGE",
            "STORAGE_BACKEND",
            "STORAGE_SERVICE",
            "FILESYSTEM_DISK",
            "FILESYSTEM_DRIVER",
            "ACTIVE_STORAGE_SERVICE",
        ],
        values: &[
            (
                "local disk",
                &["local", "disk", "file", "filesystem", "public"],
            ),
            ("s3", &["s3", "amazon", "aws", "minio"]),
            ("gcs", &["gcs", "google"]),
            ("azure", &["azure"]),
        ],
    },
    Family {
        what: "queue",
        names: &[
            "QUEUE_ADAPTER",
            "QUEUE_CONNECTION",
            "QUEUE_DRIVER",
            "QUEUE_BACKEND",
            "ACTIVE_JOB_QUEUE_ADAPTER",
        ],
        values: &[
            ("in-process", &["inline", "sync", "async", "test", "null"]),
            ("redis", &["redis", "sidekiq", "resque", "rq"]),
            (
                "database",
                &[
                    "database",
                    "db",
                    "good_job",
                    "solid_queue",
                    "delayed_job",
                    "que",
                ],
            ),
            ("amqp", &["amqp", "rabbitmq", "sneakers"]),
            ("sqs", &["sqs"]),
            ("beanstalkd", &["beanstalkd"]),
        ],
    },
    Family {
        what: "database",
        names: &[
            "DB_CONNECTION",
            "DB_ADAPTER",
            "DB_ENGINE",
            "DB_DRIVER",
            "DATABASE_ADAPTER",
            "DATABASE_ENGINE",
        ],
        values: &[
            ("sqlite", &["sqlite", "sqlite3"]),
            (
                "postgres",
                &["postgres", "postgresql", "postgis", "pgsql", "pg"],
            ),
            ("mysql", &["mysql", "mysql2", "mariadb"]),
            ("sqlserver", &["sqlsrv", "sqlserver", "mssql"]),
        ],
    },
];

/// What a value is, for comparing one side's with the other's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    /// The kind of service: `postgres`, `redis`, `local disk`...
    pub kind: &'static str,
    /// How it was recognised: `scheme postgresql` or `CACHE_STORE keyword`.
    pub by: String,
}

/// The scheme of a `scheme://...` value (lowercase), if it has one.
pub fn url_scheme(value: &str) -> Option<String> {
    let (scheme, _) = value.trim().split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    if !first.is_ascii_alphabetic()
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    Some(scheme.to_ascii_lowercase())
}

/// The kind of service a value names: by its URL scheme, else (for a
/// well-known variable name) by its keyword. None when nothing is known.
pub fn kind_of(name: &str, value: &str) -> Option<Kind> {
    if let Some(scheme) = url_scheme(value) {
        let base = scheme.split('+').next().unwrap_or(&scheme);
        return SCHEMES
            .iter()
            .find(|(_, schemes)| schemes.contains(&base))
            .map(|(kind, _)| Kind {
                kind,
                by: format!("{scheme}://"),
            });
    }
    let upper = name.to_ascii_uppercase();
    let family = NAMED.iter().find(|f| f.names.contains(&upper.as_str()))?;
    let word = value.trim().to_ascii_lowercase();
    // `django.db.backends.postgresql`: the last dotted part is the keyword.
    let word = word.rsplit('.').next().unwrap_or(&word);
    family
        .values
        .iter()
        .find(|(_, words)| words.contains(&word))
        .map(|(kind, _)| Kind {
            kind,
            by: format!("{} {}", family.what, word),
        })
}

/// Images recognised by their name alone, as `name:tag` with no registry.
/// Any value shaped `registry/name:tag` (with a `/`) counts too.
pub const KNOWN_IMAGES: &[&str] = &[
    "postgres",
    "postgis",
    "redis",
    "valkey",
    "mysql",
    "mariadb",
    "memcached",
    "rabbitmq",
    "mongo",
    "elasticsearch",
    "opensearch",
    "kibana",
    "nginx",
    "httpd",
    "minio",
    "localstack",
    "kafka",
    "zookeeper",
    "nats",
    "clickhouse",
    "cassandra",
    "neo4j",
    "influxdb",
    "couchdb",
    "mailhog",
    "python",
    "node",
    "ruby",
    "golang",
    "alpine",
    "debian",
    "ubuntu",
];

/// One container image reference found in a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The repository, normalised: `docker.io/library/postgres` is `postgres`.
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Image {
    /// `postgres:16`, `postgres@sha256:...` as written for people.
    pub fn reference(&self) -> String {
        let mut text = self.name.clone();
        if let Some(tag) = &self.tag {
            text.push(':');
            text.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            text.push('@');
            text.push_str(digest);
        }
        text
    }
}

/// Every image reference in a value: tokens split on blanks, commas,
/// semicolons, quotes and `=`.
pub fn images_in(value: &str) -> Vec<Image> {
    value
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '"' | '\'' | '=' | '(' | ')'))
        .filter_map(parse_image)
        .collect()
}

fn is_component(part: &str) -> bool {
    // Docker's grammar: lowercase alphanumerics separated by `.`, `_`, `__` or `-`.
    !part.is_empty()
        && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && part
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

fn is_registry(part: &str) -> bool {
    let (host, port) = match part.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (part, None),
    };
    (host.contains('.') || host == "localhost" || port.is_some())
        && !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        && port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn is_tag(tag: &str) -> bool {
    // Three or more digits after a known name are a port (`redis:6379`,
    // `postgres:5432`, `nginx:443`), and so is `80`; image versions that are
    // plain numbers have one or two digits (`postgres:16`, `redis:7`).
    let port_like = (tag.len() >= 3 || tag == "80") && tag.chars().all(|c| c.is_ascii_digit());
    !port_like
        && tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// One token as an image reference, when it is one: `name:tag`,
/// `name@sha256:...` or `name:tag@sha256:...`, with `name` a known image or
/// a path with a `/` (`ghcr.io/acme/api`, `bitnami/redis`).
pub fn parse_image(token: &str) -> Option<Image> {
    let token = token.strip_prefix("docker://").unwrap_or(token);
    if token.contains("://") || token.starts_with(['/', '.', '-', ':']) {
        return None;
    }
    let (rest, digest) = match token.split_once('@') {
        Some((rest, digest)) => {
            let (algo, hex) = digest.split_once(':')?;
            if algo.is_empty()
                || hex.len() < 32
                || !hex.chars().all(|c| c.is_ascii_hexdigit())
                || !algo.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return None;
            }
            (rest, Some(digest.to_string()))
        }
        None => (token, None),
    };
    let last_slash = rest.rfind('/');
    let (name, tag) = match rest.rfind(':') {
        Some(colon) if last_slash.is_none_or(|s| colon > s) => {
            (&rest[..colon], Some(rest[colon + 1..].to_string()))
        }
        _ => (rest, None),
    };
    if tag.is_none() && digest.is_none() {
        return None;
    }
    if let Some(tag) = &tag
        && !is_tag(tag)
    {
        return None;
    }
    let parts: Vec<&str> = name.split('/').collect();
    let (registry, path) = match parts.as_slice() {
        [only] => (None, vec![*only]),
        [first, rest @ ..] if is_registry(first) => (Some(*first), rest.to_vec()),
        all => (None, all.to_vec()),
    };
    if path.is_empty() || !path.iter().all(|p| is_component(p)) {
        return None;
    }
    let mut path = path.join("/");
    // Docker Hub's spellings of an official image are the same image.
    if matches!(registry, None | Some("docker.io" | "index.docker.io"))
        && let Some(short) = path.strip_prefix("library/")
    {
        path = short.to_string();
    }
    let name = match registry {
        Some("docker.io" | "index.docker.io") | None => path,
        Some(registry) => format!("{registry}/{path}"),
    };
    if !name.contains('/') && !KNOWN_IMAGES.contains(&name.as_str()) {
        return None;
    }
    Some(Image { name, tag, digest })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str, value: &str) -> Option<&'static str> {
        kind_of(name, value).map(|k| k.kind)
    }

    #[test]
    fn kinds_by_scheme() {
        let table = [
            ("postgres://u:p@db:5432/app", Some("postgres")),
            ("postgresql://db/app", Some("postgres")),
            ("postgresql+psycopg2://db/app", Some("postgres")),
            ("postgis://db/app", Some("postgres")),
            ("sqlite:///db/development.sqlite3", Some("sqlite")),
            ("sqlite3:///tmp/x.db", Some("sqlite")),
            ("mysql2://db/app", Some("mysql")),
            ("mariadb://db/app", Some("mysql")),
            ("REDIS://cache:6379/0", Some("redis")),
            ("rediss://cache:6380/0", Some("redis")),
            ("redis+sentinel://s1/mymaster", Some("redis")),
            ("memcached://cache:11211", Some("memcached")),
            ("mongodb+srv://cluster0.example.net/db", Some("mongodb")),
            ("amqps://mq/vhost", Some("amqp")),
            ("s3://bucket/prefix", Some("s3")),
            ("file:///var/data", Some("local disk")),
            ("memory://", Some("memory")),
            ("https://api.example.com", None),
            ("http://localhost:3000", None),
            ("unknown-scheme://x", None),
            ("db.sqlite3", None),
            ("", None),
            ("://nothing", None),
        ];
        for (value, expected) in table {
            assert_eq!(kind("ANY_URL", value), expected, "{value}");
        }
    }

    #[test]
    fn kinds_by_name() {
        let table = [
            ("CACHE_STORE", "memory", Some("memory")),
            ("CACHE_STORE", "redis_cache_store", Some("redis")),
            ("cache_driver", "File", Some("local disk")),
            ("FILESYSTEM_DISK", "local", Some("local disk")),
            ("ACTIVE_STORAGE_SERVICE", "amazon", Some("s3")),
            ("QUEUE_ADAPTER", "inline", Some("in-process")),
            ("QUEUE_ADAPTER", "sidekiq", Some("redis")),
            ("QUEUE_CONNECTION", "sync", Some("in-process")),
            ("DB_CONNECTION", "pgsql", Some("postgres")),
            ("DB_ENGINE", "django.db.backends.sqlite3", Some("sqlite")),
            (
                "DB_ENGINE",
                "django.db.backends.postgresql",
                Some("postgres"),
            ),
            // A keyword under a name that is not listed says nothing.
            ("MODE", "redis", None),
            // A value that is not a listed keyword says nothing either.
            ("CACHE_STORE", "my_custom_store", None),
            // A URL under a keyword name is read by its scheme.
            ("CACHE_STORE", "redis://cache/0", Some("redis")),
        ];
        for (name, value, expected) in table {
            assert_eq!(kind(name, value), expected, "{name}={value}");
        }
    }

    fn image(token: &str) -> Option<String> {
        parse_image(token).map(|i| i.reference())
    }

    #[test]
    fn images() {
        let table = [
            ("postgres:16", Some("postgres:16")),
            ("postgres:16-alpine", Some("postgres:16-alpine")),
            ("docker.io/library/postgres:13", Some("postgres:13")),
            ("library/redis:7.2", Some("redis:7.2")),
            ("ghcr.io/acme/api:v1.2.3", Some("ghcr.io/acme/api:v1.2.3")),
            ("localhost:5000/app:1", Some("localhost:5000/app:1")),
            ("bitnami/redis:7", Some("bitnami/redis:7")),
            (
                "postgres@sha256:0123456789abcdef0123456789abcdef",
                Some("postgres@sha256:0123456789abcdef0123456789abcdef"),
            ),
            // Host and port, not an image.
            ("redis:6379", None),
            ("postgres:5432", None),
            ("localhost:5432", None),
            ("nginx:443", None),
            ("nginx:80", None),
            ("node:20", Some("node:20")),
            // Unknown single names, plain words and paths.
            ("myhost:8", None),
            ("postgres", None),
            ("/usr/bin:/bin", None),
            ("bin:/usr/bin", None),
            ("postgres://db:5432/app", None),
            ("Postgres:16", None),
            ("ghcr.io/acme/api", None),
        ];
        for (token, expected) in table {
            assert_eq!(image(token).as_deref(), expected, "{token}");
        }
    }

    #[test]
    fn images_inside_longer_values() {
        let found: Vec<String> = images_in("--image=postgres:16 redis:7,nothing:1 redis:6379")
            .iter()
            .map(Image::reference)
            .collect();
        assert_eq!(found, ["postgres:16", "redis:7"]);
    }

    proptest::proptest! {
        #[test]
        fn never_panic(name in ".{0,12}", value in ".{0,40}") {
            let _ = kind_of(&name, &value);
            let _ = images_in(&value);
            let _ = url_scheme(&value);
        }
    }
}
