//! The admin API: accounts, sessions and the audit log. Core checks the admin role.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use gatehouse_core::{AuditQuery, Gatehouse, UserPatch, UserQuery};
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Authenticated, ClientMeta};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .service(list_users)
            .service(get_user)
            .service(update_user)
            .service(user_sessions)
            .service(revoke_user_sessions)
            .service(revoke_session)
            .service(audit),
    );
}

#[get("/users")]
async fn list_users(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(admin): Authenticated,
    query: web::Query<UserQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(
        gatehouse
            .admin_list_users(&admin, query.into_inner())
            .await?,
    ))
}

#[get("/users/{id}")]
async fn get_user(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(admin): Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.admin_get_user(&admin, *id).await?))
}

#[patch("/users/{id}")]
async fn update_user(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(admin): Authenticated,
    ClientMeta(meta): ClientMeta,
    id: web::Path<Uuid>,
    body: web::Json<UserPatch>,
) -> Result<HttpResponse, ApiError> {
    let user = gatehouse
        .admin_update_user(&admin, *id, body.into_inner(), &meta)
        .await?;
    Ok(HttpResponse::Ok().json(user))
}

#[get("/users/{id}/sessions")]
async fn user_sessions(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(admin): Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.admin_user_sessions(&admin, *id).await?))
}

#[post("/users/{id}/sessions/revoke")]
async fn revoke_user_sessions(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(admin): Authenticated,
    ClientMeta(meta): ClientMeta,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let revoked = gatehouse
        .admin_revoke_user_sessions(&admin, *id, &meta)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "revoked": revoked })))
}

#[delete("/sessions/{id}")]
async fn revoke_session(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(admin): Authenticated,
    ClientMeta(meta): ClientMeta,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    gatehouse.admin_revoke_session(&admin, *id, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[get("/audit")]
async fn audit(
    gatehouse: web::Data<Gatehouse>,
    Authenticated(admin): Authenticated,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.admin_audit(&admin, query.into_inner()).await?))
}
