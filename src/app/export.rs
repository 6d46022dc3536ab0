//! `pm export FORMAT DIR`: the glue between the Plan and the writers in `crate::export`.

use crate::cli::ExportArgs;
use crate::error::{Error, Result};

pub fn export(args: ExportArgs) -> Result<i32> {
    let _ = args;
    Err(Error::Invalid("pm export is not available yet".to_string()))
}
