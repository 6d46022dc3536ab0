//! `pm audit --against ...`: the glue between the local model and `crate::audit`.

use crate::cli::AuditArgs;
use crate::error::{Error, Result};

pub fn audit(args: AuditArgs) -> Result<i32> {
    let _ = args;
    Err(Error::Invalid("pm audit is not available yet".to_string()))
}
