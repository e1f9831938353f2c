//! The admin API: accounts, sessions and the audit log. Core checks the admin role.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use gatehouse_core::oauth::clients::{Actor, ClientPatch, NewClient};
use gatehouse_core::{AuditQuery, Gatehouse, UserPatch, UserQuery};
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{AdminCaller, ClientMeta};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .service(list_users)
            .service(get_user)
            .service(update_user)
            .service(user_sessions)
            .service(revoke_user_sessions)
            .service(revoke_session)
            .service(audit)
            .service(create_client)
            .service(list_clients)
            .service(get_client)
            .service(update_client)
            .service(delete_client)
            .service(rotate_client_secret),
    );
}

#[post("/clients")]
async fn create_client(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    ClientMeta(meta): ClientMeta,
    body: web::Json<NewClient>,
) -> Result<HttpResponse, ApiError> {
    let created = gatehouse
        .create_client(Actor::Admin(&admin), body.into_inner(), &meta)
        .await?;
    Ok(HttpResponse::Created().json(created))
}

#[get("/clients")]
async fn list_clients(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.list_clients(Actor::Admin(&admin)).await?))
}

#[get("/clients/{id}")]
async fn get_client(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.get_client(Actor::Admin(&admin), &id).await?))
}

#[patch("/clients/{id}")]
async fn update_client(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    ClientMeta(meta): ClientMeta,
    id: web::Path<String>,
    body: web::Json<ClientPatch>,
) -> Result<HttpResponse, ApiError> {
    let client = gatehouse
        .update_client(Actor::Admin(&admin), &id, body.into_inner(), &meta)
        .await?;
    Ok(HttpResponse::Ok().json(client))
}

#[delete("/clients/{id}")]
async fn delete_client(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    ClientMeta(meta): ClientMeta,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    gatehouse
        .delete_client(Actor::Admin(&admin), &id, &meta)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[post("/clients/{id}/secret")]
async fn rotate_client_secret(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    ClientMeta(meta): ClientMeta,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let client = gatehouse
        .rotate_client_secret(Actor::Admin(&admin), &id, &meta)
        .await?;
    Ok(HttpResponse::Ok().json(client))
}

#[get("/users")]
async fn list_users(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
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
    AdminCaller(admin): AdminCaller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.admin_get_user(&admin, *id).await?))
}

#[patch("/users/{id}")]
async fn update_user(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
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
    AdminCaller(admin): AdminCaller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.admin_user_sessions(&admin, *id).await?))
}

#[post("/users/{id}/sessions/revoke")]
async fn revoke_user_sessions(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
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
    AdminCaller(admin): AdminCaller,
    ClientMeta(meta): ClientMeta,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    gatehouse.admin_revoke_session(&admin, *id, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[get("/audit")]
async fn audit(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.admin_audit(&admin, query.into_inner()).await?))
}
