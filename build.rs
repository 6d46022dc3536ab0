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
    hot_text_first();
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let commit = commit.unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=PM_VERSION={version} ({commit})");
}

/// Places the functions `pm start` runs ahead of the rest of the code, in
/// the order layout/hot-text.ld lists them (layout/generate.py writes it).
///
/// Linux maps a binary's code 64 KiB at a time around each page it runs, so
/// an idle pm's RSS counts every 64 KiB window that holds a function it ran:
/// spread over the whole binary, that was 3 MiB of code for 0.7 MiB run.
/// Together they fill a dozen windows. The script only orders sections
/// (`INSERT BEFORE .text` keeps the linker's own layout for everything
/// else), so a name it lists that the binary lacks changes nothing.
/// Only for the pm binary on Linux (lld and GNU ld read such scripts).
fn hot_text_first() {
    println!("cargo:rerun-if-changed=layout/hot-text.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let script = PathBuf::from(dir).join("layout").join("hot-text.ld");
    let script = script.display().to_string();
    // `-Wl,` splits at commas: a path with one would reach the linker cut.
    if !script.contains(',') && PathBuf::from(&script).exists() {
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{script}");
    }
}
