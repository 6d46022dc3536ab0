//! `pm export FORMAT DIR`: the glue between the Plan and the writers in `crate::export`.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::app::load::{self, LoadOptions};
use crate::cli::{ExportArgs, ExportFormat};
use crate::error::{Error, Result};
use crate::export::{self, Format, Options};

pub fn export(args: ExportArgs) -> Result<i32> {
    let format = match args.format {
        ExportFormat::Systemd => Format::Systemd,
        ExportFormat::Compose => Format::Compose,
        ExportFormat::Kubernetes => Format::Kubernetes,
    };
    if format != Format::Systemd && args.image.is_none() {
        return Err(Error::Invalid(format!(
            "pm export {}: --image IMAGE is required (the container image every service runs)",
            format.name()
        )));
    }
    if format == Format::Systemd && args.image.is_some() {
        return Err(Error::Invalid(
            "pm export systemd: --image is for compose and kubernetes".into(),
        ));
    }
    if format != Format::Systemd && args.user.is_some() {
        return Err(Error::Invalid(format!(
            "pm export {}: --user is for systemd (the image decides the user)",
            format.name()
        )));
    }
    if format != Format::Systemd && args.pm_path.is_some() {
        return Err(Error::Invalid(format!(
            "pm export {}: --pm-path is for systemd (containers find pm on the image's PATH)",
            format.name()
        )));
    }
    let pm_path = match &args.pm_path {
        Some(path) if path.is_absolute() => path.clone(),
        Some(path) => {
            return Err(Error::Invalid(format!(
                "--pm-path {}: not an absolute path (systemd runs it from any directory)",
                path.display()
            )));
        }
        None => std::env::current_exe().map_err(|e| Error::os("pm's own path", e))?,
    };
    // The same formation as `pm check` and `pm start`.
    let options = LoadOptions {
        formation: args.formation.clone(),
        ..LoadOptions::default()
    };
    let (plan, _) = load::load(&args.app, &options)?;
    let app = match &args.name {
        Some(name) => name.clone(),
        None => plan
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let options = Options {
        format,
        app,
        image: args.image.clone(),
        user: args.user.clone(),
        dir: absolute(&args.dir)?,
        pm_path,
    };
    for warning in export::not_carried(&plan) {
        eprintln!("pm: warning: {warning}");
    }
    let name = export::app_name(&options)?;
    let files = export::write(&plan, &options)?;
    export::save(&args.dir, &name, format, &files, args.force)?;
    for warning in export::warnings(&plan, &options) {
        eprintln!("pm: warning: {warning}");
    }
    Ok(0)
}

/// The absolute form of a directory that may not exist yet: its nearest
/// existing ancestor canonicalized, the rest joined without `.` or `..`.
fn absolute(dir: &Path) -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(|e| Error::os("current directory", e))?;
    let full = cwd.join(dir);
    let mut existing = full.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = fs::canonicalize(existing) {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return Ok(out);
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(Component::Normal(name))) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            (Some(parent), Some(Component::CurDir)) => existing = parent,
            _ => {
                return Err(Error::File {
                    path: dir.display().to_string(),
                    message: "cannot be resolved to an absolute path".into(),
                });
            }
        }
    }
}
