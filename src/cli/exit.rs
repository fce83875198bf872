//! Process exit codes (DESIGN §7), in one place.

/// Every checked op passed.
pub const OK: u8 = 0;
/// The run finished with failing ops or op errors.
pub const FAILURES: u8 = 1;
/// Usage or setup error: bad flag, unreadable or invalid file.
pub const SETUP: u8 = 2;
/// Nothing was checked (no op had a golden or a local reference).
pub const NOTHING_CHECKED: u8 = 4;
