//! The admin API: accounts, sessions and the audit log. Core checks the admin role.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use gatehouse_core::oauth::clients::{Actor, ClientPatch, NewClient};
use gatehouse_core::{AuditQuery, BanRequest, Gatehouse, UserPatch, UserQuery};
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
            .service(clear_login_lock)
            .service(ban_user)
            .service(unban_user)
            .service(remove_user_mfa)
            .service(user_sessions)
            .service(revoke_user_sessions)
            .service(impersonate)
            .service(revoke_session)
            .service(audit)
            .service(create_client)
            .service(list_clients)
            .service(get_client)
            .service(update_client)
            .service(delete_client)
            .service(rotate_client_secret)
            .service(list_mail)
            .service(retry_mail),
    );
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/clients",
    operation_id = "admin_create_client",
    tag = "admin",
    security(("bearer" = [])),
    request_body = gatehouse_core::oauth::clients::NewClient,
    responses((status = 201, description = "The client, with its secret shown this once (confidential clients)", body = gatehouse_core::oauth::clients::ClientWithSecret)),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/admin/clients",
    operation_id = "admin_list_clients",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "Every client", body = Vec<gatehouse_core::oauth::clients::ClientView>)),
)]
#[get("/clients")]
async fn list_clients(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.list_clients(Actor::Admin(&admin)).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/clients/{id}",
    operation_id = "admin_get_client",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The client_id")),
    responses((status = 200, description = "The client", body = gatehouse_core::oauth::clients::ClientView)),
)]
#[get("/clients/{id}")]
async fn get_client(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.get_client(Actor::Admin(&admin), &id).await?))
}

#[utoipa::path(
    patch,
    path = "/api/v1/admin/clients/{id}",
    operation_id = "admin_update_client",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The client_id")),
    request_body = gatehouse_core::oauth::clients::ClientPatch,
    responses((status = 200, description = "The changed client", body = gatehouse_core::oauth::clients::ClientView)),
)]
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

#[utoipa::path(
    delete,
    path = "/api/v1/admin/clients/{id}",
    operation_id = "admin_delete_client",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The client_id")),
    responses((status = 204, description = "The client is deleted")),
)]
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

#[utoipa::path(
    post,
    path = "/api/v1/admin/clients/{id}/secret",
    operation_id = "admin_rotate_client_secret",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The client_id")),
    responses((status = 200, description = "The client with its new secret, shown this once", body = gatehouse_core::oauth::clients::ClientWithSecret)),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/admin/users",
    operation_id = "admin_list_users",
    tag = "admin",
    security(("bearer" = [])),
    params(gatehouse_core::UserQuery),
    responses((status = 200, description = "One page of accounts", body = gatehouse_core::UserPage)),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/admin/users/{id}",
    operation_id = "admin_get_user",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses((status = 200, description = "The account, with its login lock (`lock`, null unless locked)", body = gatehouse_core::accounts::admin::UserDetail)),
)]
#[get("/users/{id}")]
async fn get_user(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.admin_get_user(&admin, *id).await?))
}

#[utoipa::path(
    patch,
    path = "/api/v1/admin/users/{id}",
    operation_id = "admin_update_user",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    request_body = gatehouse_core::UserPatch,
    responses((status = 200, description = "The changed account", body = gatehouse_core::UserView)),
)]
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

#[utoipa::path(
    delete,
    path = "/api/v1/admin/users/{id}/lock",
    operation_id = "admin_clear_login_lock",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses((status = 204, description = "The account's login lock is over and its failed logins forgotten (audited as `login_lock_cleared`)")),
)]
#[delete("/users/{id}/lock")]
async fn clear_login_lock(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    ClientMeta(meta): ClientMeta,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    gatehouse.admin_clear_login_lock(&admin, *id, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/ban",
    operation_id = "admin_ban_user",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    request_body = gatehouse_core::BanRequest,
    responses((status = 200, description = "The banned account (`banned` shows the ban); every session of it is ended and a login is refused with `403 account_banned` until the ban ends or is lifted (audited as `user_banned`). Banning again replaces the reason and the end", body = gatehouse_core::UserView)),
)]
#[post("/users/{id}/ban")]
async fn ban_user(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    ClientMeta(meta): ClientMeta,
    id: web::Path<Uuid>,
    body: web::Json<BanRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = gatehouse
        .admin_ban_user(&admin, *id, body.into_inner(), &meta)
        .await?;
    Ok(HttpResponse::Ok().json(user))
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/users/{id}/ban",
    operation_id = "admin_unban_user",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses((status = 200, description = "The account, without a ban (audited as `user_unbanned` when it had one; an account without a ban is answered as it is)", body = gatehouse_core::UserView)),
)]
#[delete("/users/{id}/ban")]
async fn unban_user(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    ClientMeta(meta): ClientMeta,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.admin_unban_user(&admin, *id, &meta).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/users/{id}/mfa",
    operation_id = "admin_remove_user_mfa",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses((status = 204, description = "Two-factor authentication is off for the account, every session of it ended, the owner mailed (audited as `mfa_disabled` with the admin as actor)")),
)]
#[delete("/users/{id}/mfa")]
async fn remove_user_mfa(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    ClientMeta(meta): ClientMeta,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    gatehouse.admin_remove_mfa(&admin, *id, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/users/{id}/sessions",
    operation_id = "admin_user_sessions",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses((status = 200, description = "The account's live sessions", body = Vec<gatehouse_core::SessionView>)),
)]
#[get("/users/{id}/sessions")]
async fn user_sessions(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.admin_user_sessions(&admin, *id).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/impersonate",
    operation_id = "admin_impersonate",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses((status = 200, description = "A short session as the user, marked as the admin's (`act` in its token), for the account API only", body = gatehouse_core::sessions::impersonation::ImpersonationToken)),
)]
#[post("/users/{id}/impersonate")]
async fn impersonate(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    ClientMeta(meta): ClientMeta,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let token = gatehouse.admin_impersonate(&admin, *id, &meta).await?;
    Ok(HttpResponse::Ok().json(token))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/sessions/revoke",
    operation_id = "admin_revoke_user_sessions",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses((status = 200, description = "How many sessions were ended", body = crate::openapi::bodies::RevokedCount)),
)]
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

#[utoipa::path(
    delete,
    path = "/api/v1/admin/sessions/{id}",
    operation_id = "admin_revoke_session",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Any session")),
    responses((status = 204, description = "The session is ended")),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    operation_id = "admin_audit",
    tag = "admin",
    security(("bearer" = [])),
    params(gatehouse_core::AuditQuery),
    responses((status = 200, description = "One page of audit events, newest first", body = gatehouse_core::AuditPage)),
)]
#[get("/audit")]
async fn audit(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.admin_audit(&admin, query.into_inner()).await?))
}

// The mail outbox: what was queued, what was sent, what is dead; a dead mail can be retried.

#[utoipa::path(
    get,
    path = "/api/v1/admin/mail",
    operation_id = "admin_list_mail",
    tag = "admin",
    security(("bearer" = [])),
    params(gatehouse_core::mail::MailQuery),
    responses((status = 200, description = "One page of queued mail, oldest first (never the message or its link)", body = gatehouse_core::mail::MailPage)),
)]
#[get("/mail")]
async fn list_mail(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    query: web::Query<gatehouse_core::mail::MailQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(
        gatehouse
            .admin_list_mail(&admin, query.into_inner())
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/mail/{id}/retry",
    operation_id = "admin_retry_mail",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The mail's id")),
    responses(
        (status = 200, description = "The mail, pending again with a fresh set of attempts", body = gatehouse_core::mail::MailView),
        (status = 409, description = "`mail_not_dead`: only dead mail can be retried"),
    ),
)]
#[post("/mail/{id}/retry")]
async fn retry_mail(
    gatehouse: web::Data<Gatehouse>,
    AdminCaller(admin): AdminCaller,
    ClientMeta(meta): ClientMeta,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(gatehouse.admin_retry_mail(&admin, *id, &meta).await?))
}
