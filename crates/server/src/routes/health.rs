//! Liveness and readiness probes.

use actix_web::{HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use serde_json::json;

use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// 200 while the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process runs", body = crate::openapi::bodies::Status)),
)]
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 when the database answers, 503 with the reason when it does not.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses((status = 200, description = "The database answers", body = crate::openapi::bodies::Status)),
)]
#[get("/readyz")]
async fn readyz(gatehouse: web::Data<Gatehouse>) -> Result<HttpResponse, ApiError> {
    gatehouse.database_ready().await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}
