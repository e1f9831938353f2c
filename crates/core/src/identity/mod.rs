//! Identity: the values a person is known by and proves themselves with (email address,
//! password, role), password hashing, and the throttle on failed logins.

pub mod hashing;
pub mod throttle;
pub mod types;
