//! OpenID Connect: app sessions under a browser login, authorization codes, remembered
//! consent, browser sessions of the hosted pages, and the back-channel logout outbox.
//! SQLite cannot add several columns in one statement, so each column is its own change.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // An app session (one per authorization code exchanged) hangs under the browser
        // login it came from and ends with it.
        for mut column in [
            uuid_null(Sessions::ParentId),
            string_len_null(Sessions::ClientId, 64),
            timestamp_with_time_zone_null(Sessions::AuthTime),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_parent_id")
                    .table(Sessions::Table)
                    .col(Sessions::ParentId)
                    .to_owned(),
            )
            .await?;

        for mut column in [
            text(Clients::PostLogoutRedirectUris).default("").to_owned(),
            string_len_null(Clients::BackchannelLogoutUri, 2048),
            boolean(Clients::AlwaysIssueRefreshToken)
                .default(false)
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Clients::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(AuthorizationCodes::Table)
                    .col(string_len(AuthorizationCodes::CodeHash, 64).primary_key())
                    .col(string_len(AuthorizationCodes::ClientId, 64))
                    .col(uuid(AuthorizationCodes::UserId))
                    .col(uuid(AuthorizationCodes::SessionId))
                    .col(text(AuthorizationCodes::RedirectUri))
                    .col(text(AuthorizationCodes::Scope))
                    .col(text_null(AuthorizationCodes::Nonce))
                    .col(string_len_null(AuthorizationCodes::CodeChallenge, 128))
                    .col(timestamp_with_time_zone(AuthorizationCodes::AuthTime))
                    .col(timestamp_with_time_zone(AuthorizationCodes::CreatedAt))
                    .col(timestamp_with_time_zone(AuthorizationCodes::ExpiresAt))
                    .col(timestamp_with_time_zone_null(AuthorizationCodes::UsedAt))
                    .col(uuid_null(AuthorizationCodes::IssuedSessionId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AuthorizationCodes::Table, AuthorizationCodes::ClientId)
                            .to(Clients::Table, Clients::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(AuthorizationCodes::Table, AuthorizationCodes::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_authorization_codes_expires_at")
                    .table(AuthorizationCodes::Table)
                    .col(AuthorizationCodes::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Consents::Table)
                    .col(uuid(Consents::UserId))
                    .col(string_len(Consents::ClientId, 64))
                    .col(text(Consents::Scope))
                    .col(timestamp_with_time_zone(Consents::GrantedAt))
                    .primary_key(
                        Index::create()
                            .col(Consents::UserId)
                            .col(Consents::ClientId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Consents::Table, Consents::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Consents::Table, Consents::ClientId)
                            .to(Clients::Table, Clients::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(BrowserSessions::Table)
                    .col(string_len(BrowserSessions::Id, 64).primary_key())
                    .col(uuid_null(BrowserSessions::SessionId))
                    .col(text(BrowserSessions::State))
                    .col(timestamp_with_time_zone(BrowserSessions::CreatedAt))
                    .col(timestamp_with_time_zone(BrowserSessions::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(BrowserSessions::Table, BrowserSessions::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_browser_sessions_expires_at")
                    .table(BrowserSessions::Table)
                    .col(BrowserSessions::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(BackchannelDeliveries::Table)
                    .col(uuid(BackchannelDeliveries::Id).primary_key())
                    .col(string_len(BackchannelDeliveries::ClientId, 64))
                    .col(uuid(BackchannelDeliveries::SessionId))
                    .col(uuid(BackchannelDeliveries::UserId))
                    .col(timestamp_with_time_zone(BackchannelDeliveries::CreatedAt))
                    .col(integer(BackchannelDeliveries::Attempts))
                    .col(timestamp_with_time_zone_null(
                        BackchannelDeliveries::NextAttemptAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        BackchannelDeliveries::DeliveredAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        BackchannelDeliveries::FailedAt,
                    ))
                    .col(text_null(BackchannelDeliveries::LastError))
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                BackchannelDeliveries::Table,
                                BackchannelDeliveries::ClientId,
                            )
                            .to(Clients::Table, Clients::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_backchannel_deliveries_next_attempt_at")
                    .table(BackchannelDeliveries::Table)
                    .col(BackchannelDeliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            BackchannelDeliveries::Table.into_iden(),
            BrowserSessions::Table.into_iden(),
            Consents::Table.into_iden(),
            AuthorizationCodes::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("idx_sessions_parent_id")
                    .table(Sessions::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Sessions::ParentId, Sessions::ClientId, Sessions::AuthTime] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            Clients::PostLogoutRedirectUris,
            Clients::BackchannelLogoutUri,
            Clients::AlwaysIssueRefreshToken,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Clients::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
    PostLogoutRedirectUris,
    BackchannelLogoutUri,
    AlwaysIssueRefreshToken,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    ParentId,
    ClientId,
    AuthTime,
}

#[derive(DeriveIden)]
enum AuthorizationCodes {
    Table,
    CodeHash,
    ClientId,
    UserId,
    SessionId,
    RedirectUri,
    Scope,
    Nonce,
    CodeChallenge,
    AuthTime,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    IssuedSessionId,
}

#[derive(DeriveIden)]
enum Consents {
    Table,
    UserId,
    ClientId,
    Scope,
    GrantedAt,
}

#[derive(DeriveIden)]
enum BrowserSessions {
    Table,
    Id,
    SessionId,
    State,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum BackchannelDeliveries {
    Table,
    Id,
    ClientId,
    SessionId,
    UserId,
    CreatedAt,
    Attempts,
    NextAttemptAt,
    DeliveredAt,
    FailedAt,
    LastError,
}
