//! Tokens of the built-in client name the parts of Gatehouse's API they open
//! (`gatehouse:account`, and `gatehouse:admin` for admins). Refresh tokens issued before
//! carry no scope; they get the one a login issues now, so API sessions survive the
//! upgrade.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const BUILTIN_CLIENT: &str = "gatehouse-api";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let admins = Query::select()
            .column((Sessions::Table, Sessions::Id))
            .from(Sessions::Table)
            .inner_join(
                Users::Table,
                Expr::col((Users::Table, Users::Id)).equals((Sessions::Table, Sessions::UserId)),
            )
            .and_where(Expr::col((Users::Table, Users::Role)).eq("admin"))
            .to_owned();
        for (scope, only_admins) in [
            ("gatehouse:account gatehouse:admin", true),
            ("gatehouse:account", false),
        ] {
            let mut update = Query::update();
            update
                .table(RefreshTokens::Table)
                .value(RefreshTokens::Scope, scope)
                .and_where(Expr::col(RefreshTokens::ClientId).eq(BUILTIN_CLIENT))
                .and_where(Expr::col(RefreshTokens::Scope).is_null());
            if only_admins {
                update.and_where(Expr::col(RefreshTokens::SessionId).in_subquery(admins.clone()));
            }
            manager.exec_stmt(update.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::update()
                    .table(RefreshTokens::Table)
                    .value(RefreshTokens::Scope, Option::<String>::None)
                    .and_where(Expr::col(RefreshTokens::ClientId).eq(BUILTIN_CLIENT))
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    SessionId,
    ClientId,
    Scope,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Role,
}
