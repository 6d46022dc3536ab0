//! `pm check`: validate the inputs and show what `pm start` would run.

use crate::app::load::{self, LoadOptions};
use crate::cli::CheckArgs;
use crate::error::Result;

pub fn check(args: CheckArgs) -> Result<i32> {
    let options = LoadOptions {
        formation: args.formation.clone(),
        ..LoadOptions::default()
    };
    let (plan, env_read) = load::load(&args.app, &options)?;
    let mut text = String::new();
    let count = plan.types.len();
    let s = if count == 1 { "" } else { "s" };
    let names: Vec<&str> = plan.types.iter().map(|t| t.name.as_str()).collect();
    // foreman's wording first, so scripts written for `foreman check` still match.
    text.push_str(&format!("valid procfile detected ({})\n", names.join(", ")));
    text.push_str(&format!("{}: {count} process type{s}\n", plan.procfile));
    if env_read.is_empty() {
        text.push_str("env files: none\n");
    } else {
        let variables = plan
            .env
            .iter()
            .map(|(k, _)| k)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let s = if variables == 1 { "" } else { "s" };
        text.push_str(&format!(
            "env files: {} ({variables} variable{s})\n",
            env_read
                .iter()
                .map(|file| file.shown.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let width = plan.types.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for spec in &plan.types {
        let ports: Vec<u16> = plan
            .instances
            .iter()
            .filter(|i| plan.types[i.type_index].name == spec.name)
            .map(|i| i.port)
            .collect();
        let ports = match (ports.first(), ports.last()) {
            (None, _) | (_, None) => "not started".to_string(),
            (Some(a), Some(b)) if a == b => format!("port {a}"),
            (Some(a), Some(b)) => format!("ports {a}-{b}"),
        };
        text.push_str(&format!(
            "  {:<width$}  x{}  {:<16} {}\n",
            spec.name, spec.count, ports, spec.command
        ));
    }
    // Where the other types reach each one: PM_<TYPE>_HOST:PM_<TYPE>_PORT.
    text.push_str("addresses (PM_<TYPE>_HOST:PM_<TYPE>_PORT):\n");
    for (spec, address) in plan.types.iter().zip(&plan.addresses) {
        let via = if spec.proxy.is_some() { " (proxy)" } else { "" };
        text.push_str(&format!(
            "  {:<width$}  {}:{}{via}\n",
            spec.name, address.host, address.port
        ));
    }
    print!("{text}");
    Ok(0)
}
