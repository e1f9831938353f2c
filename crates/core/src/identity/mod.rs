//! Identity: the values a person is known by and proves themselves with (email address,
//! password, role), password hashing, second factors (TOTP and recovery codes), and the
//! lockout on failed logins with the device tokens that keep it from locking out the owner.

pub mod calibrate;
pub mod device_tokens;
pub mod hashing;
pub mod lockout;
pub mod second_factor;
pub mod totp;
pub mod types;
