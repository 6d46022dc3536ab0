//! macOS specifics: no subreaper, no parent-death signal; the guardian covers
//! the case where pm dies without cleaning up.

pub fn become_subreaper() {}

pub fn children() -> Vec<i32> {
    Vec::new()
}

pub fn set_parent_death_signal() -> std::io::Result<()> {
    Ok(())
}
