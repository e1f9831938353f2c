//! HTTP routes, grouped by area. Handlers parse the request into domain values, make one
//! call into `gatehouse-core`, and shape the answer; nothing else.

pub mod admin;
pub mod api;
pub mod authorize;
pub mod health;
pub mod oauth2;
pub mod pages;
pub mod revocations;
pub mod well_known;

use actix_web::web;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::configure)
        .configure(well_known::configure)
        .configure(oauth2::configure)
        .configure(pages::configure)
        .service(
            web::scope("/api/v1")
                .configure(crate::openapi::configure)
                .configure(api::configure)
                .configure(revocations::configure)
                .configure(admin::configure),
        );
}
