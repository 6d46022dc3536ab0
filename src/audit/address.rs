//! Addresses written by hand: an env value that reaches another process type
//! at a loopback host and that type's address port (`redis://127.0.0.1:5000`
//! where 5000 is `store`'s port), which reaches nothing in a container export.
//!
//! The Plan finds them ([`Plan::loopback_references`], the one detection
//! `pm export` warns with too) and gives the form to use instead
//! ([`crate::plan::Address::form`]); this module only words them as
//! findings. It
//! never prints a value, not even the host and port found in it: a finding
//! names the variable, where it is defined, the type it reaches and the form
//! to write instead.

use super::{Detail, Finding, Rule, Severity};
use crate::plan::Plan;

/// One warning per variable of the local env files that reaches another
/// type at a loopback address written by hand. `located` names where a
/// variable's last definition is (`.env:3`).
pub fn findings(plan: &Plan, located: &dyn Fn(&str) -> String) -> Vec<Finding> {
    plan.loopback_references()
        .into_iter()
        .filter_map(|(name, t)| {
            let address = plan.addresses.get(t)?;
            let form = address.form();
            Some(Finding {
                rule: Rule::Address,
                severity: Severity::Warning,
                message: format!(
                    "{name} reaches process type \"{}\" at a loopback address written by hand, \
                     which no container export can rewrite; use {form} instead",
                    address.type_name
                ),
                local: Some(Detail {
                    reaches: Some(address.type_name.clone()),
                    use_instead: Some(form),
                    ..Detail::default()
                }),
                production: None,
                files: vec![located(&name)],
                name,
            })
        })
        .collect()
}
