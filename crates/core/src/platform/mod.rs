//! The plumbing every concept uses, and that knows none of them: the audit log, the clock,
//! the database connection, the error type, the metrics registry, the views of recently
//! read rows, random tokens and the keys derived from the master key, and the stored form
//! of lists.

pub mod audit;
pub mod clock;
pub mod db;
pub mod error;
pub mod lists;
pub mod metrics;
pub(crate) mod read_cache;
pub mod secrets;
