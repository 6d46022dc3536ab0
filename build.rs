//! Stamps the version pm prints with the git commit it was built from:
//! `PM_VERSION` is "0.1.0 (abc1234)", or "0.1.0 (unknown)" when there is no
//! git or no repository (a source tarball). Never fails the build.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    if commit.is_some() {
        // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it
        // names (a commit), and packed-refs (a branch packed away). Only
        // files that exist: a missing one would rebuild every time.
        let mut watched = Vec::new();
        if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
            watched.push(PathBuf::from(dir).join("HEAD"));
        }
        if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
            let common = PathBuf::from(common);
            if let Some(name) = git(&["rev-parse", "--symbolic-full-name", "HEAD"])
                && name.starts_with("refs/")
            {
                watched.push(common.join(name));
            }
            watched.push(common.join("packed-refs"));
        }
        for path in watched.into_iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let commit = commit.unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=PM_VERSION={version} ({commit})");
}
