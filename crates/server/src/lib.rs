//! The `gatehouse` server: configuration, start-up, and the actix-web application.
//! The binary (`main.rs`) adds the command line; tests start the same server in-process.

pub mod app;
pub mod browser;
pub mod client_ip;
pub mod config;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod migrations;
pub mod openapi;
pub mod rate_limit;
pub mod request_limits;
pub mod routes;
pub mod telemetry;
