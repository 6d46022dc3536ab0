//! `pm attach`: this terminal becomes an instance's console (see
//! `console/`).

use crate::app::control::socket;
use crate::cli::AttachArgs;
use crate::error::Result;

pub fn attach(args: AttachArgs) -> Result<i32> {
    let socket = socket(&args.app)?;
    crate::console::attach(&socket, &args.target)
}
