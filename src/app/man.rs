//! `pm man DIR`: writes pm's man pages, pm.1 and one pm-SUBCOMMAND.1 per
//! visible subcommand, rendered from the same definition as `--help` (so
//! they cannot drift from it). Writes only into DIR, which it creates.

use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};
use crate::error::{Error, Result, io_message};

pub fn man(args: ManArgs) -> Result<i32> {
    let failed = |e: std::io::Error| Error::File {
        path: args.dir.display().to_string(),
        message: io_message(&e),
    };
    std::fs::create_dir_all(&args.dir).map_err(failed)?;
    clap_mangen::generate_to(Cli::command(), &args.dir).map_err(failed)?;
    Ok(0)
}
