//! The foreign syntaxes pm writes and reads back, one module per format:
//! each holds the writer (`pm export`) and the reader (`pm audit`) side by
//! side, and its tests write values and read them back, so an export and
//! its audit cannot disagree.
//!
//! Pure text in, text or values out: nothing here does I/O, knows the Plan
//! or the audit's findings, or decides what an export contains.

pub mod compose;
pub mod kubernetes;
pub mod sh;
pub mod systemd;
pub mod yaml;
