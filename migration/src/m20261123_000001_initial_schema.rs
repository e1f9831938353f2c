//! Accounts, OAuth clients, sessions, refresh tokens, one-time tokens, signing keys, the
//! revocation feed, failed-login counters and the audit log.
//! Foreign keys are declared with their tables because SQLite cannot add them later.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(uuid(Users::Id).primary_key())
                    .col(string_len(Users::Email, 320).unique_key())
                    .col(string_len_null(Users::Name, 200))
                    .col(text(Users::PasswordHash))
                    .col(string_len(Users::Role, 32))
                    .col(timestamp_with_time_zone_null(Users::EmailVerifiedAt))
                    .col(timestamp_with_time_zone_null(Users::DisabledAt))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Clients::Table)
                    .col(string_len(Clients::Id, 64).primary_key())
                    .col(string_len(Clients::Name, 200))
                    .col(string_len(Clients::ClientType, 16))
                    .col(string_len_null(Clients::SecretHash, 64))
                    .col(text(Clients::GrantTypes))
                    .col(text(Clients::Scopes))
                    .col(string_len_null(Clients::Audience, 200))
                    .col(text(Clients::RedirectUris))
                    .col(boolean(Clients::FirstParty))
                    .col(timestamp_with_time_zone(Clients::CreatedAt))
                    .col(timestamp_with_time_zone(Clients::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(uuid(Sessions::Id).primary_key())
                    .col(uuid(Sessions::UserId))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::LastSeenAt))
                    .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                    .col(timestamp_with_time_zone(Sessions::LastTokenExpiresAt))
                    .col(string_len_null(Sessions::Ip, 64))
                    .col(string_len_null(Sessions::UserAgent, 512))
                    .col(timestamp_with_time_zone_null(Sessions::RevokedAt))
                    .col(string_len_null(Sessions::RevokedReason, 64))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_user_id")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_expires_at")
                    .table(Sessions::Table)
                    .col(Sessions::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(uuid(RefreshTokens::Id).primary_key())
                    .col(uuid(RefreshTokens::SessionId))
                    .col(string_len(RefreshTokens::ClientId, 64))
                    .col(text_null(RefreshTokens::Scope))
                    .col(string_len(RefreshTokens::TokenHash, 64).unique_key())
                    .col(timestamp_with_time_zone(RefreshTokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::RotatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RefreshTokens::Table, RefreshTokens::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(RefreshTokens::Table, RefreshTokens::ClientId)
                            .to(Clients::Table, Clients::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_refresh_tokens_session_id")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::SessionId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OneTimeTokens::Table)
                    .col(uuid(OneTimeTokens::Id).primary_key())
                    .col(uuid(OneTimeTokens::UserId))
                    .col(string_len(OneTimeTokens::Purpose, 32))
                    .col(string_len(OneTimeTokens::TokenHash, 64).unique_key())
                    .col(timestamp_with_time_zone(OneTimeTokens::CreatedAt))
                    .col(timestamp_with_time_zone(OneTimeTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(OneTimeTokens::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(OneTimeTokens::Table, OneTimeTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_one_time_tokens_user_purpose")
                    .table(OneTimeTokens::Table)
                    .col(OneTimeTokens::UserId)
                    .col(OneTimeTokens::Purpose)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .col(string_len(SigningKeys::Kid, 64).primary_key())
                    .col(big_integer(SigningKeys::Generation).unique_key())
                    .col(string_len(SigningKeys::Algorithm, 16))
                    .col(text(SigningKeys::PublicJwk))
                    .col(blob(SigningKeys::PrivateKeyEncrypted))
                    .col(timestamp_with_time_zone(SigningKeys::CreatedAt))
                    .col(timestamp_with_time_zone(SigningKeys::ActivatesAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(pk_auto(AuditEvents::Id).big_integer())
                    .col(timestamp_with_time_zone(AuditEvents::OccurredAt))
                    .col(string_len(AuditEvents::Event, 64))
                    .col(uuid_null(AuditEvents::ActorUserId))
                    .col(uuid_null(AuditEvents::SubjectUserId))
                    .col(uuid_null(AuditEvents::SessionId))
                    .col(string_len_null(AuditEvents::Ip, 64))
                    .col(string_len_null(AuditEvents::UserAgent, 512))
                    .col(text_null(AuditEvents::Details))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SessionRevocations::Table)
                    .col(pk_auto(SessionRevocations::Id).big_integer())
                    .col(uuid(SessionRevocations::SessionId))
                    .col(timestamp_with_time_zone(SessionRevocations::RevokedAt))
                    .col(big_integer(SessionRevocations::TokensExpireAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_session_revocations_expiry")
                    .table(SessionRevocations::Table)
                    .col(SessionRevocations::TokensExpireAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(LoginFailures::Table)
                    .col(pk_auto(LoginFailures::Id).big_integer())
                    .col(string_len(LoginFailures::KeyHash, 64))
                    .col(timestamp_with_time_zone(LoginFailures::FailedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_login_failures_key")
                    .table(LoginFailures::Table)
                    .col(LoginFailures::KeyHash)
                    .col(LoginFailures::FailedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_subject")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::SubjectUserId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            LoginFailures::Table.into_iden(),
            SessionRevocations::Table.into_iden(),
            AuditEvents::Table.into_iden(),
            SigningKeys::Table.into_iden(),
            OneTimeTokens::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
            Clients::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    PasswordHash,
    Role,
    EmailVerifiedAt,
    DisabledAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    CreatedAt,
    LastSeenAt,
    ExpiresAt,
    LastTokenExpiresAt,
    Ip,
    UserAgent,
    RevokedAt,
    RevokedReason,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    SessionId,
    ClientId,
    Scope,
    TokenHash,
    CreatedAt,
    RotatedAt,
}

#[derive(DeriveIden)]
enum OneTimeTokens {
    Table,
    Id,
    UserId,
    Purpose,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Generation,
    Algorithm,
    PublicJwk,
    PrivateKeyEncrypted,
    CreatedAt,
    ActivatesAt,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
    Name,
    ClientType,
    SecretHash,
    GrantTypes,
    Scopes,
    Audience,
    RedirectUris,
    FirstParty,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum LoginFailures {
    Table,
    Id,
    KeyHash,
    FailedAt,
}

#[derive(DeriveIden)]
enum SessionRevocations {
    Table,
    Id,
    SessionId,
    RevokedAt,
    TokensExpireAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    OccurredAt,
    Event,
    ActorUserId,
    SubjectUserId,
    SessionId,
    Ip,
    UserAgent,
    Details,
}
